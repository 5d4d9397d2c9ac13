//! Integration tests of the external sampler: real perf events on real
//! processes (this machine has no PMU, so `cpu-clock` is what runs).

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

#[cfg(feature = "record")]
mod accuracy;
mod agent;
mod cpython;
mod labels;
#[cfg(feature = "axum")]
mod layer;
mod period;
#[cfg(feature = "record")]
mod record;
mod sampler;
#[cfg(feature = "record")]
mod versus_perf;

/// The sampling tests measure CPU-bound programs on a 2-core machine: run
/// them one at a time so that they do not disturb each other's numbers.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

//! Integration tests of the external sampler: real perf events on real
//! processes (this machine has no PMU, so `cpu-clock` is what runs).

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod accuracy;
mod record;
mod versus_perf;

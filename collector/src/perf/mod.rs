//! Linux perf events: opening the sampling event, reading its ring buffer,
//! parsing its records.

pub mod event;
pub mod records;
pub mod ring;

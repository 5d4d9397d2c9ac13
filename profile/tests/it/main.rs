//! Integration tests of flameshift-profile: golden files, round-trip
//! properties, bad input, and agreement with inferno on perf input.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod bad_input;
mod golden;
mod inferno_agreement;
mod roundtrip;
mod support;

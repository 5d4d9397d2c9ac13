//! Regression detection: pure functions over data (DESIGN.md, Detection).
//! This session: change points in series ([`changepoint`]); the deploy
//! comparison comes next.

pub mod changepoint;
pub mod stats;

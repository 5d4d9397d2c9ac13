//! What flameshift's tests and benches share, written once: a server
//! running in the test's process ([`TestServer`]), every store a test
//! runs on ([`Place`], [`on_every_store!`]), a real ClickHouse server
//! ([`clickhouse::ClickHouseServer`]), the simulated fleet's uploads
//! ([`upload_fleet`]) and a few HTTP helpers.
//!
//! Used by the analyzer's tests and benches, the dashboard's end-to-end
//! test and the binary's tests; never by shipped code.
//!
//! ```no_run
//! # async fn example() {
//! use flameshift_testkit::{get, Place};
//! let server = Place::dir().server().await;
//! let (status, _services) = get(&format!("{}/api/v1/services", server.url)).await;
//! assert_eq!(status, 200);
//! server.stop().await;
//! # }
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test kit fails loudly")]

pub mod clickhouse;
mod fleet;
mod http;
mod lines;
mod place;
mod server;

pub use fleet::{reported_regressions, upload_fleet, FleetUpload};
pub use http::{client, get, get_text, install_tls_provider, now_ms, post};
pub use lines::profile_with_lines;
pub use place::Place;
pub use server::{disk, test_config, TestServer};

/// Runs each named `async fn(Place)` as a test on the embedded store, on
/// one ClickHouse server and on a two-shard ClickHouse cluster: a module
/// `disk`, `clickhouse` and `cluster` of tests each.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod disk {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Place::dir()).await
                }
            )*
        }
        mod clickhouse {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Place::clickhouse()).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Place::cluster()).await
                }
            )*
        }
    };
}

//! The smallest service that links the agent: it starts the agent (the
//! `FLAMESHIFT_*` environment says where to ship), then idles or burns
//! CPU for SECONDS (argv[1], default 30) and ships its last interval.
//! BENCHMARKS.md measures what the agent's HTTP client costs with it:
//! binary size, RSS, threads and idle CPU (scripts/agent-client-cost.py).
//!
//! ```text
//! FLAMESHIFT_ANALYZER=http://127.0.0.1:7411 cargo run --release -p flameshift-collector --example agent_service -- 30 idle
//! ```

use std::time::{Duration, Instant};

use flameshift_collector::agent::{Agent, AgentConfig};

fn main() -> Result<(), flameshift_collector::Error> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let busy = args.next().is_some_and(|mode| mode == "busy");
    let agent = Agent::start(AgentConfig::new("agent-cost", "v1"))?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut x = 0u64;
    while Instant::now() < until {
        if busy {
            let slice = Instant::now() + Duration::from_millis(10);
            while Instant::now() < slice {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    agent.shutdown();
    Ok(())
}

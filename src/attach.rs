//! `flameshift attach --pid PID`: profile a running process.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::sampling::{say, stop_flag, summary, SamplingArgs};

/// Profile a running process (all its threads) until Ctrl-C or --duration.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The process to profile.
    #[arg(long)]
    pid: u32,
    /// Stop after this long (`30s`, `500ms`, `2m`, `1d`; a bare number is seconds).
    #[arg(long, value_parser = crate::parse::duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Attaches until Ctrl-C, `--duration` or the target's exit, then writes
/// what was collected.
pub fn run(args: AttachArgs) -> anyhow::Result<ExitCode> {
    let options = args.sampling.record_options();
    let stop = stop_flag()?;
    let started = Instant::now();
    let attachment = flameshift_collector::recorder::attach(args.pid, &options, args.duration, &stop)?;
    if attachment.target_exited {
        say(&format!(
            "flameshift: pid {} exited; writing what was collected",
            args.pid
        ));
    }
    say(&summary(
        &attachment.profile,
        attachment.event,
        attachment.lost,
        started.elapsed(),
    ));
    if let Some(python) = &attachment.python {
        say(&format!("flameshift: {python}"));
    }
    let title = format!(
        "flameshift attach --pid {} ({})",
        args.pid,
        attachment.event.name()
    );
    args.sampling.deliver(&attachment.profile, title)?;
    Ok(ExitCode::SUCCESS)
}

//! `flameshift record -- CMD`: run a command and profile it and its
//! children with perf events (or count its instructions exactly under
//! callgrind).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use flameshift_profile::format;

use crate::sampling::{say, stop_flag, summary, SamplingArgs};

/// Run a command and profile it and its children with perf events.
#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Count instructions exactly under valgrind's callgrind instead of
    /// sampling (deterministic, for CI machines without a PMU; ~50× slower).
    #[arg(long)]
    callgrind: bool,
    /// The command to run, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Records the command, writes the profile, and exits with the command's
/// own exit code (128 + signal when it was killed, as shells report it).
/// Ctrl-C goes to the command; flameshift keeps recording until it exits.
pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    if args.callgrind {
        return callgrind(&args);
    }
    let options = args.sampling.record_options();
    let _stop = stop_flag()?;
    let started = Instant::now();
    let recording = flameshift_collector::recorder::record(&args.command, &options)?;
    say(&summary(
        &recording.profile,
        recording.event,
        recording.lost,
        started.elapsed(),
    ));
    if let Some(python) = &recording.python {
        say(&format!("flameshift: {python}"));
    }
    let title = format!("flameshift record ({})", recording.event.name());
    args.sampling.deliver(&recording.profile, title)?;
    let code = match (recording.status.code(), recording.status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 2,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn command_line(command: &[OsString]) -> String {
    let words: Vec<String> = command.iter().map(|w| w.to_string_lossy().into_owned()).collect();
    format!("`{}`", words.join(" "))
}

/// Runs the command under valgrind's callgrind and delivers its exact
/// instruction counts like a sampled profile; exits with the command's code.
fn callgrind(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let out = dir.path().join("callgrind.out");
    say(&format!(
        "flameshift: counting the instructions of {} under callgrind (exact, ~50× slower)",
        command_line(&args.command)
    ));
    let started = Instant::now();
    let status = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--quiet")
        // Keep glibc's start-up functions apart: merged into `(below
        // main)` they form a cycle through main.
        .arg("--show-below-main=yes")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--")
        .args(&args.command)
        .status()
        .context("running valgrind (apt-get install valgrind)")?;
    let bytes = std::fs::read(&out)
        .with_context(|| format!("callgrind wrote no output (valgrind exited with {status})"))?;
    let profile = format::callgrind::read(&bytes).context("reading callgrind's output")?;
    say(&format!(
        "flameshift: {} instructions in {} distinct stacks, counted in {:.1} s",
        profile.total(0),
        profile.samples().len(),
        started.elapsed().as_secs_f64()
    ));
    args.sampling.deliver(
        &profile,
        "flameshift record --callgrind (instructions, exact)".to_owned(),
    )?;
    Ok(ExitCode::from(status.code().unwrap_or(2).clamp(0, 255) as u8))
}

//! What `record` and `attach` share: how to sample, where the profile
//! goes, and the lines that tell the user what is happening.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flameshift_client::upload::{Destination, Exporter};
use flameshift_collector::perf::event::{CallGraph, EventChoice, EventKind, Rate};
use flameshift_collector::python_frames::PythonMode;
use flameshift_collector::recorder::{RecordOptions, Started};
use flameshift_profile::format::{self, Format, WriteOptions};
use flameshift_profile::render::{self, FlameGraphOptions};
use flameshift_profile::Profile;

use crate::args::AnalyzerAccess;
use crate::output::write_output;

/// How to sample and where the profile goes.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Output: `.svg` draws a flame graph, `.folded`/`.txt` folded stacks,
    /// `.json` speedscope, anything else pprof (`-` for pprof on stdout).
    /// Default `profile.pb.gz`, or none when shipping with --analyzer.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Ship the profile to this analyzer (`flameshift serve`), e.g.
    /// http://127.0.0.1:7411. When --service and --deploy are given
    /// without it, FLAMESHIFT_ANALYZER names the analyzer.
    #[arg(long, requires_all = ["service", "deploy"])]
    analyzer: Option<String>,
    /// Service name for --analyzer.
    #[arg(long)]
    service: Option<String>,
    /// Deploy (version) for --analyzer, e.g. a git SHA.
    #[arg(long)]
    deploy: Option<String>,
    /// Host name for --analyzer (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// The token and CA file for --analyzer.
    #[command(flatten)]
    access: AnalyzerAccess,
    /// Sampling event: instructions when the machine has a PMU, else cpu-clock.
    #[arg(long, value_enum, default_value_t = Event::Auto)]
    event: Event,
    /// Samples per second.
    #[arg(short = 'F', long = "freq", default_value_t = 99, conflicts_with = "period",
          value_parser = clap::value_parser!(u64).range(1..))]
    frequency: u64,
    /// Sample every N units of the event instead (instructions or ns).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    period: Option<u64>,
    /// How stacks are walked: frame pointers, DWARF unwinding of a stack
    /// copy (code without frame pointers), or per sample whichever works.
    #[arg(long, value_enum, default_value_t = CallGraphChoice::Auto)]
    call_graph: CallGraphChoice,
    /// Python frames: in CPython 3.9–3.13 processes, each call of the
    /// interpreter's evaluator is replaced by the Python functions it ran
    /// (`auto`); `on` also fails `attach` when the target is not such a
    /// CPython; `off` keeps native stacks.
    #[arg(long, value_enum, default_value_t = PythonChoice::Auto)]
    python: PythonChoice,
}

/// `--event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Event {
    /// Instructions if the hardware counter opens, else cpu-clock.
    Auto,
    /// Retired instructions only (an error without a PMU).
    Instructions,
    /// CPU time only.
    CpuClock,
}

/// `--call-graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallGraphChoice {
    /// Frame pointers (cheap; needs code built with them).
    Fp,
    /// DWARF unwinding of a copy of the stack.
    Dwarf,
    /// Both; per sample, whichever worked.
    Auto,
}

/// `--python`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PythonChoice {
    /// Python frames wherever a CPython 3.9–3.13 is found.
    Auto,
    /// The same, and `attach` fails when its target is not one.
    On,
    /// Native stacks only.
    Off,
}

impl SamplingArgs {
    /// The recorder's options.
    pub fn record_options(&self) -> RecordOptions {
        RecordOptions {
            event: match self.event {
                Event::Auto => EventChoice::Auto,
                Event::Instructions => EventChoice::Instructions,
                Event::CpuClock => EventChoice::CpuClock,
            },
            rate: match self.period {
                Some(period) => Rate::Period(period),
                None => Rate::Frequency(self.frequency),
            },
            call_graph: match self.call_graph {
                CallGraphChoice::Fp => CallGraph::FramePointers,
                CallGraphChoice::Dwarf => CallGraph::Dwarf,
                CallGraphChoice::Auto => CallGraph::Auto,
            },
            python: match self.python {
                PythonChoice::Auto => PythonMode::Auto,
                PythonChoice::On => PythonMode::On,
                PythonChoice::Off => PythonMode::Off,
            },
            on_start: Some(say_started),
            ..RecordOptions::default()
        }
    }

    /// --analyzer, or FLAMESHIFT_ANALYZER when a service and deploy to
    /// ship as are named.
    fn analyzer(&self) -> Option<String> {
        self.analyzer.clone().or_else(|| {
            let named = self.service.is_some() && self.deploy.is_some();
            let from_env = std::env::var("FLAMESHIFT_ANALYZER")
                .ok()
                .filter(|a| !a.is_empty());
            from_env.filter(|_| named)
        })
    }

    fn destination(&self) -> Option<Destination> {
        let analyzer = self.analyzer()?;
        let mut dest = Destination::new(
            analyzer,
            self.service.clone().unwrap_or_default(),
            self.deploy.clone().unwrap_or_default(),
        );
        if let Some(host) = &self.host {
            dest.host = host.clone();
        }
        dest.token = self.access.token.clone();
        dest.ca_cert = self.access.ca_cert.clone();
        Some(dest)
    }

    fn output(&self) -> Option<PathBuf> {
        match (&self.output, &self.analyzer()) {
            (Some(output), _) => Some(output.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(PathBuf::from("profile.pb.gz")),
        }
    }

    /// Writes the profile to `-o` and/or ships it to the analyzer; says
    /// where it went. A failed upload keeps the profile: it is written to
    /// a file named in the error.
    pub fn deliver(&self, profile: &Profile, title: String) -> anyhow::Result<()> {
        let output = self.output();
        if let Some(output) = &output {
            write_sampled(profile, title, output)?;
            if output != Path::new("-") {
                say(&format!("flameshift: wrote {}", output.display()));
            }
        }
        let Some(dest) = self.destination() else {
            return Ok(());
        };
        match Exporter::new(dest.clone()).and_then(|exporter| exporter.upload_profile(profile)) {
            Ok(receipt) => {
                tracing::info!(analyzer = %dest.analyzer, %receipt, "profile shipped");
                say(&format!(
                    "flameshift: shipped to {} (service {}, deploy {})",
                    dest.analyzer, dest.service, dest.deploy
                ));
                Ok(())
            }
            Err(e) => {
                let keep = output.clone().unwrap_or_else(|| {
                    PathBuf::from(format!("flameshift-unsent-{}.pb.gz", std::process::id()))
                });
                if output.is_none() {
                    write_output(&keep, |out| {
                        Ok(format::write(
                            profile,
                            Format::Pprof,
                            &WriteOptions::default(),
                            out,
                        )?)
                    })?;
                }
                anyhow::bail!("{e}; the profile is kept in {}", keep.display())
            }
        }
    }
}

/// The line that says sampling runs.
fn say_started(started: &Started) {
    let rate = match started.rate {
        Rate::Frequency(hz) => format!("at {hz} Hz"),
        Rate::Period(period) => format!("every {period} units"),
    };
    say(&format!(
        "flameshift: recording pid {} ({}) on {} {rate}; Ctrl-C stops it",
        started.pid,
        started.command,
        started.event.name()
    ));
}

/// One progress line on stderr (stdout may be the profile).
pub fn say(line: &str) {
    eprintln!("{line}");
}

/// The closing summary of a recording.
pub fn summary(profile: &Profile, event: EventKind, lost: u64, elapsed: Duration) -> String {
    // The recorder's profiles count samples in a `samples` sample type.
    let samples = profile
        .sample_type_index(Some("samples"))
        .map(|index| profile.total(index))
        .unwrap_or_default();
    format!(
        "flameshift: {samples} samples ({} distinct stacks) of {} in {:.1} s, {lost} records lost{}",
        profile
            .samples()
            .iter()
            .map(|sample| sample.stack)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        event.name(),
        elapsed.as_secs_f64(),
        if lost > 0 {
            " (the ring buffer overflowed: sample less often with a lower -F)"
        } else {
            ""
        }
    )
}

/// Sets a flag on SIGINT and SIGTERM instead of dying, so that what was
/// collected is still written. (A handler, not SIG_IGN: a child started
/// afterwards gets the default disposition back at exec.)
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone()).context("installing the Ctrl-C handler")?;
    }
    Ok(flag)
}

fn write_sampled(profile: &Profile, title: String, output: &Path) -> anyhow::Result<()> {
    if profile.samples().is_empty() {
        tracing::warn!("no samples: the target ran too briefly or was idle");
    }
    let is_svg = output.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if is_svg {
        let options = FlameGraphOptions {
            title: Some(title),
            ..FlameGraphOptions::default()
        };
        write_output(output, |out| Ok(render::flamegraph(profile, &options, out)?))
    } else {
        let format = Format::from_path(output).unwrap_or(Format::Pprof);
        write_output(output, |out| {
            Ok(format::write(profile, format, &WriteOptions::default(), out)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use flameshift_profile::{LabelSetId, SampleType};

    use super::*;

    #[test]
    fn the_summary_counts_samples_and_distinct_stacks() {
        let mut profile = Profile::new(vec![SampleType::new("samples", "count")]);
        let a = profile.stack_from_names(["main", "a"]);
        let b = profile.stack_from_names(["main", "b"]);
        // The recorder pushes a row per sample: the same stack recurs.
        for stack in [a, b, a] {
            profile.push_sample(stack, LabelSetId::EMPTY, &[1]);
        }
        let line = summary(&profile, EventKind::CpuClock, 0, Duration::from_secs(1));
        assert!(
            line.starts_with("flameshift: 3 samples (2 distinct stacks) of cpu-clock"),
            "{line}"
        );
    }
}

//! The commands behind the CLI, on plain config structs: read, combine,
//! write. All the work happens in the library crates.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use flameshift_profile::format::{self, Format, ReadOptions, WriteOptions};
use flameshift_profile::render::{self, FlameGraphOptions};
use flameshift_profile::{report, LabelSelector, Profile, TopBy};

/// How to read and select input profiles.
pub struct InputConfig {
    pub labels: Vec<String>,
    pub sample_type: Option<String>,
    pub max_decompressed: u64,
}

pub struct FlamegraphConfig {
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    pub title: Option<String>,
    pub inverted: bool,
    pub input: InputConfig,
}

pub struct DiffConfig {
    pub base: PathBuf,
    pub candidate: PathBuf,
    pub output: PathBuf,
    pub title: Option<String>,
    pub inverted: bool,
    pub input: InputConfig,
}

pub struct ConvertConfig {
    pub input: PathBuf,
    pub output: PathBuf,
    pub format: Option<String>,
    pub args: InputConfig,
}

/// Options `record` and `attach` share.
pub struct SamplingConfig {
    pub output: Option<PathBuf>,
    pub ship: Option<flameshift_collector::export::Destination>,
    pub event: String,
    pub frequency: u64,
    pub period: Option<u64>,
    pub call_graph: String,
}

pub struct TopConfig {
    pub inputs: Vec<PathBuf>,
    pub inclusive: bool,
    pub count: usize,
    pub input: InputConfig,
}

fn read_options(config: &InputConfig) -> ReadOptions {
    ReadOptions {
        max_decompressed: config.max_decompressed,
    }
}

pub(crate) fn read_one(path: &Path, config: &InputConfig) -> anyhow::Result<Profile> {
    format::read_path(path, &read_options(config)).map_err(|e| match e {
        // I/O errors already name the path.
        flameshift_profile::Error::Io { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(format!("reading {}", path.display())),
    })
}

/// Reads, merges and filters the inputs.
fn load(paths: &[PathBuf], config: &InputConfig) -> anyhow::Result<Profile> {
    let selectors = config
        .labels
        .iter()
        .map(|s| s.parse::<LabelSelector>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut merged: Option<Profile> = None;
    for path in paths {
        let profile = read_one(path, config)?;
        match merged.as_mut() {
            None => merged = Some(profile),
            Some(m) => m
                .merge(&profile)
                .with_context(|| format!("merging {}", path.display()))?,
        }
    }
    let Some(profile) = merged else {
        bail!("no input profiles")
    };
    Ok(profile.filter_labels(&selectors))
}

fn value_index(profile: &Profile, config: &InputConfig) -> anyhow::Result<usize> {
    Ok(profile.sample_type_index(config.sample_type.as_deref())?)
}

/// Streams the output to stdout, or to a temporary file beside `path`
/// that is renamed over it at the end: a failed render leaves no
/// half-written file behind, and an existing file is replaced whole.
/// Paths that exist but are not regular files (`/dev/null`, a FIFO) are
/// written in place: renaming over them would replace the device.
pub(crate) fn write_output(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        render(&mut stdout)?;
        stdout.flush().context("writing to stdout")?;
        return Ok(());
    }
    let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
    if special {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        render(&mut out)?;
        out.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, temp);
    render(&mut out)?;
    let temp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    // A temporary file is private (0600); the output is an ordinary file.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "wrote");
    Ok(())
}

pub fn flamegraph(config: &FlamegraphConfig) -> anyhow::Result<()> {
    let plain = config.input.labels.is_empty() && config.input.sample_type.is_none();
    if let ([path], true) = (config.inputs.as_slice(), plain) {
        // One folded file and nothing to select: draw it the way inferno
        // does, without building a profile (same picture, less work).
        let bytes = format::read_file(path)?;
        if format::is_folded_text(&bytes) {
            let options = FlameGraphOptions {
                title: config.title.clone(),
                inverted: config.inverted,
                ..FlameGraphOptions::default()
            };
            return write_output(&config.output, |out| {
                render::flamegraph_from_folded(&bytes, &options, out)
                    .with_context(|| format!("reading {}", path.display()))
            });
        }
        let profile = format::read_bytes(&bytes, &read_options(&config.input))
            .with_context(|| format!("reading {}", path.display()))?;
        return draw(&profile, config);
    }
    let profile = load(&config.inputs, &config.input)?;
    draw(&profile, config)
}

fn draw(profile: &Profile, config: &FlamegraphConfig) -> anyhow::Result<()> {
    let options = FlameGraphOptions {
        title: config.title.clone(),
        inverted: config.inverted,
        value_index: Some(value_index(profile, &config.input)?),
        root_label: None,
    };
    write_output(&config.output, |out| {
        Ok(render::flamegraph(profile, &options, out)?)
    })
}

pub fn diff(config: &DiffConfig) -> anyhow::Result<()> {
    let base = load(std::slice::from_ref(&config.base), &config.input)?;
    let candidate = load(std::slice::from_ref(&config.candidate), &config.input)?;
    let options = FlameGraphOptions {
        title: config.title.clone(),
        inverted: config.inverted,
        value_index: Some(value_index(&candidate, &config.input)?),
        root_label: None,
    };
    write_output(&config.output, |out| {
        Ok(render::diff_flamegraph(&base, &candidate, &options, out)?)
    })
}

pub fn convert(config: &ConvertConfig) -> anyhow::Result<()> {
    let profile = load(std::slice::from_ref(&config.input), &config.args)?;
    let format = match &config.format {
        Some(name) => Format::from_name(name).with_context(|| format!("unknown format {name:?}"))?,
        None => Format::from_path(&config.output).with_context(|| {
            format!(
                "cannot tell the output format from {:?}: pass --format pprof|folded|speedscope",
                config.output.display().to_string()
            )
        })?,
    };
    let options = WriteOptions {
        value_index: match config.args.sample_type {
            Some(_) => Some(value_index(&profile, &config.args)?),
            None => None,
        },
        name: config.input.file_name().map(|n| n.to_string_lossy().into_owned()),
    };
    write_output(&config.output, |out| {
        Ok(format::write(&profile, format, &options, out)?)
    })
}

pub fn top(config: &TopConfig) -> anyhow::Result<()> {
    let profile = load(&config.inputs, &config.input)?;
    let index = value_index(&profile, &config.input)?;
    let by = if config.inclusive {
        TopBy::Inclusive
    } else {
        TopBy::SelfCost
    };
    let table = report::top_table(&profile, index, by, config.count)?;
    write_output(Path::new("-"), |out| Ok(out.write_all(table.as_bytes())?))
}

fn record_options(config: &SamplingConfig) -> anyhow::Result<flameshift_collector::recorder::RecordOptions> {
    use flameshift_collector::perf::event::{CallGraph, EventChoice, Rate};
    let event = match config.event.as_str() {
        "instructions" => EventChoice::Instructions,
        "cpu-clock" => EventChoice::CpuClock,
        _ => EventChoice::Auto,
    };
    let rate = match config.period {
        Some(0) => anyhow::bail!("--period must be positive"),
        Some(p) => Rate::Period(p),
        None if config.frequency == 0 => anyhow::bail!("-F must be positive"),
        None => Rate::Frequency(config.frequency),
    };
    let call_graph = match config.call_graph.as_str() {
        "fp" => CallGraph::FramePointers,
        "dwarf" => CallGraph::Dwarf,
        _ => CallGraph::Auto,
    };
    Ok(flameshift_collector::recorder::RecordOptions {
        event,
        rate,
        call_graph,
        ..Default::default()
    })
}

/// Sets a flag on SIGINT and SIGTERM instead of dying, so that what was
/// collected is still written. (A handler, not SIG_IGN: a child started
/// afterwards gets the default disposition back at exec.)
fn stop_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
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

/// Records the command, writes the profile, and exits with the command's
/// own exit code (128 + signal when it was killed, as shells report it).
/// Ctrl-C goes to the command; flameshift keeps recording until it exits.
pub fn record(
    config: &SamplingConfig,
    command: &[std::ffi::OsString],
) -> anyhow::Result<std::process::ExitCode> {
    use std::os::unix::process::ExitStatusExt;
    let options = record_options(config)?;
    let _stop = stop_flag()?;
    let recording = flameshift_collector::recorder::record(command, &options)?;
    let title = format!("flameshift record ({})", recording.event.name());
    deliver(&recording.profile, title, config)?;
    let code = match (recording.status.code(), recording.status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 2,
    };
    Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8))
}

/// Runs `command` under valgrind's callgrind and delivers its exact
/// instruction counts like a sampled profile; exits with the command's code.
pub fn record_callgrind(
    config: &SamplingConfig,
    command: &[std::ffi::OsString],
) -> anyhow::Result<std::process::ExitCode> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let out = dir.path().join("callgrind.out");
    let status = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--quiet")
        // Keep glibc's start-up functions apart: merged into `(below
        // main)` they form a cycle through main.
        .arg("--show-below-main=yes")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--")
        .args(command)
        .status()
        .context("running valgrind (apt-get install valgrind)")?;
    let bytes = std::fs::read(&out)
        .with_context(|| format!("callgrind wrote no output (valgrind exited with {status})"))?;
    let profile = format::callgrind::read(&bytes).context("reading callgrind's output")?;
    deliver(
        &profile,
        "flameshift record --callgrind (instructions, exact)".to_owned(),
        config,
    )?;
    Ok(std::process::ExitCode::from(
        status.code().unwrap_or(2).clamp(0, 255) as u8,
    ))
}

/// Attaches to `pid` until Ctrl-C, `duration` or the target's exit, then
/// writes what was collected.
pub fn attach(config: &SamplingConfig, pid: u32, duration: Option<&str>) -> anyhow::Result<()> {
    let options = record_options(config)?;
    let duration = duration.map(parse_duration).transpose()?;
    let stop = stop_flag()?;
    let attachment = flameshift_collector::recorder::attach(pid, &options, duration, &stop)?;
    if attachment.target_exited {
        tracing::warn!(pid, "the process exited; writing what was collected");
    }
    let title = format!("flameshift attach --pid {pid} ({})", attachment.event.name());
    deliver(&attachment.profile, title, config)
}

/// Writes the profile to `-o` and/or ships it to the analyzer. A failed
/// upload keeps the profile: it is written to a file named in the error.
fn deliver(profile: &Profile, title: String, config: &SamplingConfig) -> anyhow::Result<()> {
    if let Some(output) = &config.output {
        write_sampled(profile, title, output)?;
    }
    let Some(dest) = &config.ship else {
        return Ok(());
    };
    match flameshift_collector::export::upload_profile(dest, profile) {
        Ok(receipt) => {
            tracing::info!(analyzer = %dest.analyzer, %receipt, "profile shipped");
            Ok(())
        }
        Err(e) => {
            let keep = config
                .output
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("flameshift-unsent-{}.pb.gz", std::process::id())));
            if config.output.is_none() {
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

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("bad duration {text:?}: expected e.g. 30s, 500ms, 2m"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => anyhow::bail!("bad duration {text:?}: unit must be ms, s, m or h"),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        anyhow::bail!("bad duration {text:?}: must be positive");
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert_eq!(parse_duration("1.5").unwrap().as_millis(), 1500);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("0s").is_err());
    }
}

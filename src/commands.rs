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

pub struct RecordConfig {
    pub output: PathBuf,
    pub event: String,
    pub frequency: u64,
    pub period: Option<u64>,
    pub command: Vec<std::ffi::OsString>,
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

fn read_one(path: &Path, config: &InputConfig) -> anyhow::Result<Profile> {
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
fn write_output(
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

/// Records the command, writes the profile, and exits with the command's
/// own exit code (128 + signal when it was killed, as shells report it).
pub fn record(config: &RecordConfig) -> anyhow::Result<std::process::ExitCode> {
    use flameshift_collector::perf::event::{EventChoice, Rate};
    use flameshift_collector::recorder::{self, RecordOptions};
    use std::os::unix::process::ExitStatusExt;

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
    let options = RecordOptions {
        event,
        rate,
        ..RecordOptions::default()
    };
    let recording = recorder::record(&config.command, &options)?;
    let profile = &recording.profile;
    let is_svg = config
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if profile.samples().is_empty() {
        tracing::warn!("no samples: the command ran too briefly for the sampling rate");
    }
    if is_svg {
        let options = FlameGraphOptions {
            title: Some(format!("flameshift record ({})", recording.event.name())),
            ..FlameGraphOptions::default()
        };
        write_output(&config.output, |out| {
            Ok(render::flamegraph(profile, &options, out)?)
        })?;
    } else {
        let format = Format::from_path(&config.output).unwrap_or(Format::Pprof);
        let options = WriteOptions::default();
        write_output(&config.output, |out| {
            Ok(format::write(profile, format, &options, out)?)
        })?;
    }
    tracing::info!(
        samples = profile.samples().len(),
        lost = recording.lost,
        event = recording.event.name(),
        "recorded"
    );
    let code = match (recording.status.code(), recording.status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 2,
    };
    Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8))
}

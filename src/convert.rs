//! `flameshift convert`: a profile to pprof, folded stacks or speedscope.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flameshift_profile::format::{self, Format, WriteOptions};

use crate::input::InputArgs;
use crate::output::write_output;

/// Convert a profile to pprof, folded stacks or speedscope JSON.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The profile to convert.
    input: PathBuf,
    /// Output file (`-` for stdout).
    #[arg(short, long)]
    output: PathBuf,
    /// Output format; default: from the output's extension.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    #[command(flatten)]
    args: InputArgs,
}

/// The formats `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Gzipped pprof `profile.proto`.
    Pprof,
    /// Folded stacks (`a;b;c 12`).
    Folded,
    /// speedscope's JSON.
    Speedscope,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Format {
        match format {
            OutputFormat::Pprof => Format::Pprof,
            OutputFormat::Folded => Format::Folded,
            OutputFormat::Speedscope => Format::Speedscope,
        }
    }
}

/// Converts.
pub fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let profile = args.args.load(std::slice::from_ref(&args.input))?;
    let format = match args.format {
        Some(format) => Format::from(format),
        None => Format::from_path(&args.output).with_context(|| {
            format!(
                "cannot tell the output format from {:?}: pass --format pprof|folded|speedscope",
                args.output.display().to_string()
            )
        })?,
    };
    let options = WriteOptions {
        value_index: match args.args.sample_type {
            Some(_) => Some(args.args.value_index(&profile)?),
            None => None,
        },
        name: args.input.file_name().map(|n| n.to_string_lossy().into_owned()),
    };
    write_output(&args.output, |out| {
        Ok(format::write(&profile, format, &options, out)?)
    })?;
    Ok(ExitCode::SUCCESS)
}

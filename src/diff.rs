//! `flameshift diff`: a differential flame graph from BASE to CANDIDATE.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flameshift_profile::render;

use crate::flamegraph::GraphArgs;
use crate::input::InputArgs;
use crate::output::write_output;

/// Draw a differential flame graph from BASE to CANDIDATE (normalised by total).
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The profile before the change.
    base: PathBuf,
    /// The profile after the change.
    candidate: PathBuf,
    /// Output SVG (`-` for stdout).
    #[arg(short, long, default_value = "diff.svg")]
    output: PathBuf,
    #[command(flatten)]
    graph: GraphArgs,
    #[command(flatten)]
    input: InputArgs,
}

/// Draws the differential graph.
pub fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let base = args.input.load(std::slice::from_ref(&args.base))?;
    let candidate = args.input.load(std::slice::from_ref(&args.candidate))?;
    let options = args.graph.options(Some(args.input.value_index(&candidate)?));
    write_output(&args.output, |out| {
        Ok(render::diff_flamegraph(&base, &candidate, &options, out)?)
    })?;
    Ok(ExitCode::SUCCESS)
}

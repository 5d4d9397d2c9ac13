//! `flameshift flamegraph`: one or more profiles, merged, drawn as an SVG
//! flame graph.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use flameshift_profile::format;
use flameshift_profile::render::{self, FlameGraphOptions};
use flameshift_profile::Profile;

use crate::input::InputArgs;
use crate::output::write_output;

/// Draw a flame graph (SVG) from one or more profiles, merged.
#[derive(Debug, Args)]
pub struct FlamegraphArgs {
    /// Profiles in any supported format (pprof, folded, perf script); `-` for stdin.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output SVG (`-` for stdout).
    #[arg(short, long, default_value = "flamegraph.svg")]
    output: PathBuf,
    #[command(flatten)]
    graph: GraphArgs,
    #[command(flatten)]
    input: InputArgs,
}

/// How a graph looks.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Title of the graph.
    #[arg(long)]
    pub title: Option<String>,
    /// Draw an icicle graph (root at the top).
    #[arg(long)]
    pub inverted: bool,
}

impl GraphArgs {
    /// The renderer's options for the sample type at `value_index`.
    pub fn options(&self, value_index: Option<usize>) -> FlameGraphOptions {
        FlameGraphOptions {
            title: self.title.clone(),
            inverted: self.inverted,
            value_index,
            root_label: None,
        }
    }
}

/// Draws the graph.
pub fn run(args: FlamegraphArgs) -> anyhow::Result<ExitCode> {
    if let ([path], true) = (args.inputs.as_slice(), args.input.is_plain()) {
        // One folded file and nothing to select: draw it the way inferno
        // does, without building a profile (same picture, less work).
        let bytes = format::read_file(path)?;
        if format::is_folded_text(&bytes) {
            let options = args.graph.options(None);
            write_output(&args.output, |out| {
                render::flamegraph_from_folded(&bytes, &options, out)
                    .with_context(|| format!("reading {}", path.display()))
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        let profile = format::read_bytes(&bytes, &args.input.read_options())
            .with_context(|| format!("reading {}", path.display()))?;
        return draw(&profile, &args);
    }
    let profile = args.input.load(&args.inputs)?;
    draw(&profile, &args)
}

fn draw(profile: &Profile, args: &FlamegraphArgs) -> anyhow::Result<ExitCode> {
    let options = args.graph.options(Some(args.input.value_index(profile)?));
    write_output(&args.output, |out| {
        Ok(render::flamegraph(profile, &options, out)?)
    })?;
    Ok(ExitCode::SUCCESS)
}

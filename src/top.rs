//! `flameshift top`: the most expensive functions as a table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use flameshift_profile::{report, TopBy};

use crate::input::InputArgs;
use crate::output::write_output;

/// Print the most expensive functions as a table.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Profiles in any supported format, merged.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Rank by self cost (the default).
    #[arg(long = "self", conflicts_with = "inclusive")]
    self_cost: bool,
    /// Rank by inclusive cost.
    #[arg(long)]
    inclusive: bool,
    /// How many functions to show.
    #[arg(short = 'n', long, default_value_t = 20)]
    count: usize,
    #[command(flatten)]
    input: InputArgs,
}

/// Prints the table.
pub fn run(args: TopArgs) -> anyhow::Result<ExitCode> {
    let profile = args.input.load(&args.inputs)?;
    let index = args.input.value_index(&profile)?;
    let by = if args.inclusive {
        TopBy::Inclusive
    } else {
        TopBy::SelfCost
    };
    let table = report::top_table(&profile, index, by, args.count)?;
    write_output(Path::new("-"), |out| Ok(out.write_all(table.as_bytes())?))?;
    Ok(ExitCode::SUCCESS)
}

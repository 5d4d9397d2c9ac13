//! `flameshift completions SHELL` and `flameshift manpage`: generated from
//! the same clap definitions the command line parses with, so they never
//! drift from it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Cli;

/// Print a shell completion script (e.g. `flameshift completions bash > /etc/bash_completion.d/flameshift`).
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the completion script on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "flameshift", &mut out);
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Write man pages: `flameshift.1` and one `flameshift-COMMAND.1` per command.
#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// Directory to write the pages into (created if missing); without it,
    /// `flameshift.1` goes to stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Renders the pages.
pub fn manpage(args: ManpageArgs) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(command)
            .render(&mut out)
            .context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(command, &dir)
        .with_context(|| format!("writing man pages to {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

//! `flameshift deploy`: tells the analyzer a deploy happened (a marker on
//! its charts) and, with `--commits BASE..HEAD`, which commits it brought
//! and what each changed, so that the analyzer names the likeliest
//! causes of the deploy's regressions (docs/ci.md, "Suspect commits").

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use flameshift_client::api::Analyzer;
use flameshift_client::http::ClientOptions;

use crate::args::AnalyzerAccess;

/// Post a deploy event, with the commits it brought (`--commits`).
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The service deployed.
    #[arg(long)]
    service: String,
    /// The deploy (the version its profiles carry).
    #[arg(long)]
    deploy: String,
    /// The commits the deploy brought: those of HEAD not in BASE (e.g.
    /// `v1.4..v1.5`, or the previous deploy's SHA..HEAD), each with the
    /// lines it left in HEAD (git blame) and the files it touched.
    #[arg(long, value_name = "BASE..HEAD")]
    commits: Option<String>,
    /// The git repository of --commits (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    repo: PathBuf,
    /// The deploy's commit (default with --commits: HEAD's SHA).
    #[arg(long)]
    commit: Option<String>,
    /// Who deployed, or whose commit it is (default with --commits:
    /// HEAD's author).
    #[arg(long)]
    author: Option<String>,
    /// A message (default with --commits: HEAD's title).
    #[arg(long)]
    message: Option<String>,
    /// When, ms since the Unix epoch (default: when the analyzer
    /// receives it).
    #[arg(long)]
    time_ms: Option<i64>,
    /// The analyzer (or FLAMESHIFT_ANALYZER).
    #[arg(long, env = "FLAMESHIFT_ANALYZER", default_value = "http://127.0.0.1:7411")]
    analyzer: String,
    /// The token and CA file.
    #[command(flatten)]
    access: AnalyzerAccess,
    /// Print the event (JSON) instead of posting it.
    #[arg(long)]
    dry_run: bool,
}

/// Builds the event, then posts or prints it.
pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    if args.service.is_empty() || args.deploy.is_empty() {
        bail!("--service and --deploy must not be empty");
    }
    let mut event = serde_json::json!({ "service": args.service, "deploy": args.deploy });
    let mut defaults = (None, None, None);
    let mut count = 0;
    if let Some(range) = &args.commits {
        match crate::commits::read(&args.repo, range) {
            Ok(changes) => {
                for note in &changes.notes {
                    eprintln!("flameshift: note: {note}");
                }
                count = changes.commits.len();
                event["commits"] = serde_json::to_value(&changes.commits)?;
                let head = range.split_once("..").map_or("HEAD", |(_, head)| head);
                if let Ok((sha, author, title)) = crate::commits::describe(&args.repo, head) {
                    defaults = (Some(sha), Some(author), Some(title));
                }
            }
            // The deploy still happened: its marker goes out, without
            // the commits, and the reason is said.
            Err(why) => eprintln!("flameshift: warning: {why}; the deploy is posted without its commits"),
        }
    }
    let fields = [
        ("commit", args.commit.or(defaults.0)),
        ("author", args.author.or(defaults.1)),
        ("message", args.message.or(defaults.2)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            event[key] = value.into();
        }
    }
    if let Some(time_ms) = args.time_ms {
        event["time_ms"] = time_ms.into();
    }
    if args.dry_run {
        #[allow(clippy::print_stdout, reason = "the event is the command's output")]
        {
            println!("{event}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let analyzer = Analyzer::new(
        &args.analyzer,
        args.access.token.as_deref(),
        &ClientOptions {
            timeout: Duration::from_secs(60),
            ..args.access.client_options()
        },
    )?;
    analyzer
        .post_deploy(&event)
        .with_context(|| format!("posting the deploy event to {}", args.analyzer))?;
    eprintln!(
        "flameshift: deploy {} of {} posted{}",
        args.deploy,
        args.service,
        if args.commits.is_some() {
            format!(" with {count} commit(s)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

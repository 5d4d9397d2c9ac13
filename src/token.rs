//! `flameshift token new`: a fresh random token, and the line of an
//! access file (`serve --auth FILE`) that lets it in, which holds only
//! the token's SHA-256.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use flameshift_analyzer::access::{new_token, sha256_hex, Scope};

/// Make tokens for `serve --auth FILE`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a fresh random token (stdout, first line) and its entry for
    /// the access file (second line; it holds the hash, not the token).
    New(NewArgs),
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The token's name, as logs and refusals call it.
    #[arg(long, default_value = "token")]
    name: String,
    /// What the token may do (repeatable): ingest, read, admin.
    #[arg(long = "scope", value_name = "SCOPE", default_value = "ingest", value_parser = parse_scope)]
    scopes: Vec<Scope>,
    /// Limit the token to these services (repeatable; `*` globs, e.g.
    /// `shop-*`); without it, every service.
    #[arg(long = "service", value_name = "PATTERN")]
    services: Vec<String>,
}

/// A string or a list of strings as JSON.
fn json(value: impl Into<serde_json::Value>) -> String {
    value.into().to_string()
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
}

/// Runs `flameshift token …`.
pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TokenCommand::New(new) => new_entry(new),
    }
}

fn new_entry(args: NewArgs) -> anyhow::Result<ExitCode> {
    if args.name.is_empty() {
        bail!("--name is empty");
    }
    if args.services.iter().any(String::is_empty) {
        bail!("--service is empty");
    }
    let token = new_token();
    let mut scopes: Vec<&str> = Vec::new();
    for scope in &args.scopes {
        if !scopes.contains(&scope.as_str()) {
            scopes.push(scope.as_str());
        }
    }
    // Written by hand to keep the file's order: name, hash, scopes, services.
    let mut entry = format!(
        "{{\"name\": {}, \"sha256\": \"{}\", \"scopes\": {}",
        json(args.name.as_str()),
        sha256_hex(&token),
        json(scopes),
    );
    if !args.services.is_empty() {
        entry.push_str(&format!(", \"services\": {}", json(args.services)));
    }
    entry.push('}');
    #[allow(
        clippy::print_stdout,
        reason = "the token and its entry are the command's output"
    )]
    {
        println!("{token}");
        println!("{entry}");
    }
    eprintln!(
        "flameshift: the first line is the token (give it to its holder; it is not kept anywhere); \
         add the second to the `tokens` list of the access file and send serve SIGHUP"
    );
    Ok(ExitCode::SUCCESS)
}

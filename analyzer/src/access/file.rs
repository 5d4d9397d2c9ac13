//! The access file of `flameshift serve --auth FILE`: JSON, one entry a
//! token, each with the SHA-256 of the token (never the token), its
//! scopes and, optionally, the services it is limited to. Everything is
//! checked before anything is used: a file that does not load changes
//! nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::pattern::ServicePattern;
use super::{Grant, Keyring, Scope, Scopes};

/// Why an access file did not load.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file could not be read.
    #[error("access file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The file was read but is not a valid access file.
    #[error("access file {}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    tokens: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    scopes: Vec<String>,
    #[serde(default)]
    services: Option<Vec<String>>,
}

/// Reads and checks the access file at `path`.
pub fn load(path: &Path) -> Result<Keyring, AccessError> {
    let text = std::fs::read(path).map_err(|error| AccessError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text).map_err(|why| AccessError::Invalid {
        path: path.to_owned(),
        why,
    })
}

/// Checks an access file's text; the error says what is wrong and in
/// which entry.
pub fn parse(text: &[u8]) -> Result<Keyring, String> {
    let body: FileBody = serde_json::from_slice(text).map_err(|e| {
        format!("not an access file ({e}); expected {{\"tokens\": [{{\"name\": …, \"sha256\": …, \"scopes\": […]}}]}}")
    })?;
    if body.tokens.is_empty() {
        return Err("`tokens` is empty: every request would be refused".to_owned());
    }
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut keys = Vec::with_capacity(body.tokens.len());
    for (i, entry) in body.tokens.into_iter().enumerate() {
        let at = if entry.name.is_empty() {
            format!("token {}", i + 1)
        } else {
            format!("token `{}`", entry.name)
        };
        if entry.name.is_empty() {
            return Err(format!("{at}: `name` is empty (it names the token in logs)"));
        }
        if !names.insert(entry.name.clone()) {
            return Err(format!("{at}: the name is used twice"));
        }
        let digest = digest_from_hex(&entry.sha256).ok_or_else(|| {
            format!(
                "{at}: `sha256` must be 64 hex digits (the SHA-256 of the token; `flameshift token new` prints it), not {:?}",
                entry.sha256
            )
        })?;
        if !digests.insert(digest) {
            return Err(format!("{at}: the same token hash appears twice"));
        }
        if entry.scopes.is_empty() {
            return Err(format!(
                "{at}: `scopes` is empty; give some of ingest, read, admin"
            ));
        }
        let mut scopes = Scopes::default();
        for scope in &entry.scopes {
            let scope: Scope = scope.parse().map_err(|e| format!("{at}: {e}"))?;
            scopes = scopes.with(scope);
        }
        let services = match entry.services {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(format!(
                    "{at}: `services` is empty; leave it out for every service"
                ))
            }
            Some(list) => Some(
                list.iter()
                    .map(|s| ServicePattern::new(s).ok_or_else(|| format!("{at}: an empty service pattern")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        keys.push((
            digest,
            Arc::new(Grant {
                name: entry.name,
                scopes,
                services,
            }),
        ));
    }
    Ok(Keyring { keys })
}

fn digest_from_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        out[i] = (high * 16 + low) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::sha256_hex;

    fn file(entries: &str) -> String {
        format!("{{\"tokens\": [{entries}]}}")
    }

    #[test]
    fn a_valid_file_gives_each_token_its_scopes_and_services() {
        let text = file(&format!(
            r#"{{"name": "agents", "sha256": "{}", "scopes": ["ingest"]}},
               {{"name": "team-a", "sha256": "{}", "scopes": ["read"], "services": ["a", "a-*"]}}"#,
            sha256_hex("agent-secret"),
            sha256_hex("team-a-secret").to_uppercase(),
        ));
        let ring = parse(text.as_bytes()).unwrap();
        let agents = ring.identify("agent-secret").unwrap();
        assert_eq!(agents.name, "agents");
        assert!(agents.has(Scope::Ingest) && !agents.has(Scope::Read));
        assert!(agents.covers("anything"));
        let team = ring.identify("team-a-secret").unwrap();
        assert!(team.has(Scope::Read) && !team.has(Scope::Admin));
        assert!(team.covers("a") && team.covers("a-api") && !team.covers("b"));
        assert!(ring.identify("nope").is_none());
        assert!(ring.identify("").is_none());
    }

    #[test]
    fn each_mistake_is_named() {
        let hash = sha256_hex("x");
        let cases = [
            ("[]".to_owned(), "not an access file"),
            ("{\"tokens\": []}".to_owned(), "`tokens` is empty"),
            (
                file(r#"{"name": "a", "sha256": "abc", "scopes": ["read"]}"#),
                "token `a`: `sha256` must be 64 hex",
            ),
            (
                file(&format!(
                    r#"{{"name": "a", "sha256": "{}", "scopes": ["read"]}}"#,
                    "g".repeat(64)
                )),
                "64 hex",
            ),
            (
                file(&format!(
                    r#"{{"name": "a", "sha256": "{hash}", "scopes": ["write"]}}"#
                )),
                "token `a`: unknown scope `write`",
            ),
            (
                file(&format!(r#"{{"name": "a", "sha256": "{hash}", "scopes": []}}"#)),
                "`scopes` is empty",
            ),
            (
                file(&format!(
                    r#"{{"name": "", "sha256": "{hash}", "scopes": ["read"]}}"#
                )),
                "token 1: `name` is empty",
            ),
            (
                file(&format!(
                    r#"{{"name": "a", "sha256": "{hash}", "scopes": ["read"], "services": []}}"#
                )),
                "`services` is empty",
            ),
            (
                file(&format!(
                    r#"{{"name": "a", "sha256": "{hash}", "scopes": ["read"], "services": [""]}}"#
                )),
                "empty service pattern",
            ),
            (
                file(&format!(
                    r#"{{"name": "a", "sha256": "{hash}", "scopes": ["read"], "token": "x"}}"#
                )),
                "unknown field `token`",
            ),
            (
                file(&format!(
                    r#"{{"name": "a", "sha256": "{hash}", "scopes": ["read"]}}, {{"name": "a", "sha256": "{}", "scopes": ["read"]}}"#,
                    sha256_hex("y")
                )),
                "token `a`: the name is used twice",
            ),
            (
                file(&format!(
                    r#"{{"name": "a", "sha256": "{hash}", "scopes": ["read"]}}, {{"name": "b", "sha256": "{hash}", "scopes": ["read"]}}"#
                )),
                "token `b`: the same token hash appears twice",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{text} loaded"));
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_missing_file_names_itself() {
        let error = load(Path::new("/nonexistent/auth.json")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("access file /nonexistent/auth.json: "),
            "{error}"
        );
    }
}

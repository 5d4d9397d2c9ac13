//! Who may do what: tokens with scopes (`ingest`, `read`, `admin`),
//! limited to some services or not, kept only as SHA-256 hashes and
//! compared in constant time. `flameshift serve --auth FILE` loads them
//! from an access file ([`Keys::load`]; a `SIGHUP` reads it again,
//! [`Keys::reload`]); `--token` is one token with every scope
//! ([`Keys::single`]). docs/operations.md, "Access", is the user's side.
//!
//! ```
//! use flameshift_analyzer::access::{new_token, sha256_hex, Keys, Scope};
//!
//! let token = new_token();
//! let file = tempfile::NamedTempFile::new()?;
//! std::fs::write(
//!     file.path(),
//!     format!(
//!         r#"{{"tokens": [{{"name": "team-a", "sha256": "{}", "scopes": ["read"], "services": ["a-*"]}}]}}"#,
//!         sha256_hex(&token)
//!     ),
//! )?;
//! let keys = Keys::load(file.path())?;
//! let grant = keys.identify(&token).expect("a known token");
//! assert_eq!(grant.name, "team-a");
//! assert!(grant.has(Scope::Read) && !grant.has(Scope::Ingest));
//! assert!(grant.covers("a-api") && !grant.covers("b"));
//! assert!(keys.identify("a guess").is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod file;
mod pattern;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use file::AccessError;
pub use pattern::ServicePattern;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send profiles, request statistics and deploy events (also through
    /// Pyroscope's and OpenTelemetry's routes).
    Ingest,
    /// Every `GET` of the API: what the dashboard and `flameshift
    /// regressions` read.
    Read,
    /// Change state: acknowledge or resolve regressions, run detection.
    Admin,
}

impl Scope {
    /// The scope as the access file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("unknown scope `{text}`: use ingest, read or admin"))
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope.
    pub fn all() -> Scopes {
        Scope::ALL.into_iter().fold(Scopes::default(), Scopes::with)
    }

    /// This set and `scope`.
    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    /// Whether `scope` is in the set.
    pub fn has(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// What one token may do, by the name that stands for it in logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's name (never the token).
    pub name: String,
    scopes: Scopes,
    /// `None`: every service.
    services: Option<Vec<ServicePattern>>,
}

impl Grant {
    /// A grant of every scope on every service.
    pub fn everything(name: &str) -> Grant {
        Grant {
            name: name.to_owned(),
            scopes: Scopes::all(),
            services: None,
        }
    }

    /// Whether the token has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.has(scope)
    }

    /// Whether the token may see or write `service`.
    pub fn covers(&self, service: &str) -> bool {
        self.services
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(service)))
    }

    /// Whether the token covers every service (fleet-wide views that
    /// cannot be split by service need it).
    pub fn is_fleet_wide(&self) -> bool {
        self.services.is_none()
    }
}

/// A set of tokens, by hash.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<([u8; 32], Arc<Grant>)>,
}

impl Keyring {
    /// The grant of `token`, if it is one of the set. Every hash is
    /// compared, each in constant time, whatever matched.
    pub fn identify(&self, token: &str) -> Option<Arc<Grant>> {
        let digest = sha256(token);
        let mut found = None;
        for (hash, grant) in &self.keys {
            if constant_time_eq(hash, &digest) {
                found = Some(grant.clone());
            }
        }
        found
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The server's tokens, replaced whole when the access file is read
/// again.
#[derive(Debug)]
pub struct Keys {
    file: Option<PathBuf>,
    current: RwLock<Arc<Keyring>>,
}

impl Keys {
    /// The tokens of the access file at `path`.
    pub fn load(path: &Path) -> Result<Keys, AccessError> {
        Ok(Keys {
            file: Some(path.to_owned()),
            current: RwLock::new(Arc::new(file::load(path)?)),
        })
    }

    /// One token with every scope on every service, named `token`
    /// (`serve --token`).
    pub fn single(token: &str) -> Keys {
        let keyring = Keyring {
            keys: vec![(sha256(token), Arc::new(Grant::everything("token")))],
        };
        Keys {
            file: None,
            current: RwLock::new(Arc::new(keyring)),
        }
    }

    /// The access file, if the tokens came from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the access file again; on failure the old tokens stay. The
    /// number of tokens now in force.
    pub fn reload(&self) -> Result<usize, AccessError> {
        let Some(path) = &self.file else {
            return Ok(self.keyring().len());
        };
        let keyring = Arc::new(file::load(path)?);
        let count = keyring.len();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = keyring;
        Ok(count)
    }

    /// The grant of `token`, if it is a known token.
    pub fn identify(&self, token: &str) -> Option<Arc<Grant>> {
        self.keyring().identify(token)
    }

    fn keyring(&self) -> Arc<Keyring> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn sha256(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The SHA-256 of `token` in lowercase hex: what an access file stores.
pub fn sha256_hex(token: &str) -> String {
    hex(&sha256(token))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh token: `fs_` and 256 random bits from the system's generator,
/// in hex.
pub fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    // The system generator (getrandom) only fails where there is none at
    // all; then no token can be made safely.
    #[allow(clippy::expect_used, reason = "no random source is no token")]
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator");
    format!("fs_{}", hex(&bytes))
}

/// Equality of two byte strings in time that depends only on their
/// lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_standard_one() {
        // FIPS 180-2's "abc".
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn fresh_tokens_differ_and_have_their_shape() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert!(a.starts_with("fs_") && a[3..].bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_single_token_has_every_scope_and_service() {
        let keys = Keys::single("s3cret");
        let grant = keys.identify("s3cret").unwrap();
        assert!(Scope::ALL.into_iter().all(|s| grant.has(s)));
        assert!(grant.covers("any") && grant.is_fleet_wide());
        assert!(keys.identify("s3cre").is_none());
        assert_eq!(keys.reload().unwrap(), 1);
    }

    #[test]
    fn a_reload_that_fails_keeps_the_old_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let entry = |name: &str, token: &str| {
            format!(
                r#"{{"tokens": [{{"name": "{name}", "sha256": "{}", "scopes": ["read"]}}]}}"#,
                sha256_hex(token)
            )
        };
        std::fs::write(&path, entry("old", "one")).unwrap();
        let keys = Keys::load(&path).unwrap();
        std::fs::write(&path, "{not json").unwrap();
        assert!(keys
            .reload()
            .unwrap_err()
            .to_string()
            .contains("not an access file"));
        assert_eq!(keys.identify("one").unwrap().name, "old");
        std::fs::write(&path, entry("new", "two")).unwrap();
        assert_eq!(keys.reload().unwrap(), 1);
        assert!(keys.identify("one").is_none());
        assert_eq!(keys.identify("two").unwrap().name, "new");
    }
}

//! Reading profiles: the options every command that reads profiles
//! shares, and the reading, merging and label filtering behind them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use flameshift_profile::format::{self, ReadOptions};
use flameshift_profile::{LabelSelector, Profile};

/// Options every command that reads profiles shares.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Keep only samples with this label (repeatable; all must match).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label_selector)]
    pub labels: Vec<LabelSelector>,
    /// Which sample type to use (`cpu`, `samples`, `cpu/nanoseconds`, a unit); default: the profile's.
    #[arg(long, value_name = "NAME")]
    pub sample_type: Option<String>,
    /// Refuse gzipped input that decompresses to more than this (`512MiB`; a bare number is bytes).
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = crate::parse::size)]
    pub max_decompressed: u64,
}

fn label_selector(text: &str) -> Result<LabelSelector, String> {
    text.parse::<LabelSelector>().map_err(|e| e.to_string())
}

impl InputArgs {
    /// Whether the input is used as it is (no label filter, the default sample type).
    pub fn is_plain(&self) -> bool {
        self.labels.is_empty() && self.sample_type.is_none()
    }

    /// How the profile crate should read.
    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            max_decompressed: self.max_decompressed,
        }
    }

    /// Reads one profile; errors name the file.
    pub fn read_one(&self, path: &Path) -> anyhow::Result<Profile> {
        format::read_path(path, &self.read_options()).map_err(|e| match e {
            // I/O errors already name the path.
            flameshift_profile::Error::Io { .. } => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!("reading {}", path.display())),
        })
    }

    /// Reads, merges and filters the inputs.
    pub fn load(&self, paths: &[PathBuf]) -> anyhow::Result<Profile> {
        let mut merged: Option<Profile> = None;
        for path in paths {
            let profile = self.read_one(path)?;
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
        Ok(profile.filter_labels(&self.labels))
    }

    /// The index of the chosen sample type in `profile`.
    pub fn value_index(&self, profile: &Profile) -> anyhow::Result<usize> {
        Ok(profile.sample_type_index(self.sample_type.as_deref())?)
    }
}

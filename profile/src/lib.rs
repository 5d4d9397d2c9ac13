//! # flameshift-profile
//!
//! The profile data model every part of flameshift shares, and its file
//! formats: pprof `profile.proto` (read/write, gzipped or not), folded
//! stacks (read/write), `perf script` (read) and speedscope JSON (write).
//! With the `render` feature, flame graphs, icicle graphs and differential
//! flame graphs as SVG through inferno.
//!
//! A [`Profile`] interns strings, frames, stacks and label sets; each
//! sample has a stack, a label set and one value per [`SampleType`]. The
//! unit travels with the profile, and [`Profile::merge`] refuses to mix
//! units.
//!
//! ```
//! use flameshift_profile::{format, FoldOptions, Profile, SampleType, TopBy};
//!
//! // Read any supported format; the format is detected from the content.
//! let profile = format::read_bytes(b"main;parse;lex 30\nmain;eval 70\n", &Default::default())?;
//! assert_eq!(profile.total(0), 100);
//!
//! // Top functions by self cost.
//! let top = profile.top_functions(0, TopBy::SelfCost);
//! assert_eq!((top[0].name.as_str(), top[0].self_value), ("eval", 70));
//!
//! // Round trip through pprof.
//! let bytes = format::pprof::to_proto_bytes(&profile);
//! let again = format::pprof::read(&bytes, format::DEFAULT_MAX_DECOMPRESSED)?;
//! assert_eq!(again.fold(&FoldOptions::default()), profile.fold(&FoldOptions::default()));
//! # Ok::<(), flameshift_profile::Error>(())
//! ```

mod error;
pub mod format;
mod intern;
mod model;
mod ops;
#[cfg(feature = "render")]
pub mod render;
pub mod report;
pub mod units;
pub mod wire;

pub use error::{Error, Result};
pub use intern::Interner;
pub use model::{
    Frame, FrameId, Label, LabelSetId, LabelValue, Mapping, Period, Profile, Sample, SampleType, StackId,
    StrId,
};
pub use ops::{folded_name, FoldOptions, FunctionCost, LabelSelector, TopBy};

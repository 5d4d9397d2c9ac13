//! Google's pprof `profile.proto`, gzipped or not: what Go's
//! `runtime/pprof`, pprof-rs, Pyroscope and Parca exchange.
//!
//! pprof has no profile-level labels; flameshift writes them as comments
//! `flameshift.label:key=value` (`flameshift.numlabel:key=42 unit` for
//! numbers) and reads them back from there. Other tools show them as
//! ordinary comments.

mod decode;
mod encode;
pub mod proto;

use std::io::Write;

use flate2::write::GzEncoder;
use prost::Message;

use crate::{Error, Profile, Result};

pub(crate) const LABEL_COMMENT: &str = "flameshift.label:";
pub(crate) const NUM_LABEL_COMMENT: &str = "flameshift.numlabel:";

/// Decodes pprof bytes, gunzipping first when they start with the gzip
/// magic; the decompressed size is capped at `max_decompressed` bytes.
pub fn read(bytes: &[u8], max_decompressed: u64) -> Result<Profile> {
    if super::is_gzip(bytes) {
        let raw = super::gunzip(bytes, max_decompressed)?;
        decode::decode(&raw)
    } else {
        decode::decode(bytes)
    }
}

/// Encodes `profile` as an uncompressed `profile.proto` message.
pub fn to_proto_bytes(profile: &Profile) -> Vec<u8> {
    encode::encode(profile).encode_to_vec()
}

/// Writes `profile` as gzipped `profile.proto` (what `go tool pprof` and
/// every pprof consumer expect on disk and on the wire).
pub fn write(profile: &Profile, out: &mut dyn Write) -> Result<()> {
    let raw = to_proto_bytes(profile);
    let mut gz = GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&raw).map_err(Error::io)?;
    gz.finish().map_err(Error::io)?;
    Ok(())
}

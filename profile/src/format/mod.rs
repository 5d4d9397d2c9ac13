//! Reading and writing profiles: pprof, folded stacks, `perf script`
//! (read), callgrind (read), OpenTelemetry's OTLP profiles and
//! Pyroscope's push requests (read), speedscope (write). The input
//! format is detected from the content, so a misnamed file still reads.

pub mod callgrind;
pub mod folded;
mod location;
pub mod otlp;
pub mod perf_script;
pub mod pprof;
pub mod pyroscope_push;
pub mod speedscope;

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::ops::FoldOptions;
use crate::{Error, Profile, Result};

/// The default cap on decompressed input: 512 MiB.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 512 * 1024 * 1024;

/// A profile file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// pprof `profile.proto`, gzipped on write.
    Pprof,
    /// Folded stacks (`a;b;c 42`).
    Folded,
    /// `perf script` text (read only).
    PerfScript,
    /// speedscope JSON (write only).
    Speedscope,
    /// valgrind callgrind output (read only).
    Callgrind,
    /// An OTLP `ExportProfilesServiceRequest` (read only; its profiles
    /// merged).
    Otlp,
    /// A Pyroscope push request, protobuf or Connect JSON (read only; its
    /// profiles merged).
    PyroscopePush,
}

impl Format {
    /// The format a file name suggests: `.pb.gz`/`.pprof`/`.pb` → pprof,
    /// `.folded`/`.txt`/`.collapsed` → folded, `.speedscope.json`/`.json`
    /// → speedscope, `.perf`/`.script` → perf script.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let ends = |suffixes: &[&str]| suffixes.iter().any(|s| name.ends_with(s));
        if ends(&[".pb.gz", ".pprof", ".pb", ".prof", ".proto"]) {
            Some(Format::Pprof)
        } else if ends(&[".folded", ".collapsed", ".txt", ".stacks"]) {
            Some(Format::Folded)
        } else if ends(&[".json"]) {
            Some(Format::Speedscope)
        } else if ends(&[".perf", ".script", ".perf-script"]) {
            Some(Format::PerfScript)
        } else if name.starts_with("callgrind.out") {
            Some(Format::Callgrind)
        } else {
            None
        }
    }

    /// Parses a `--format` value.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "pprof" => Some(Format::Pprof),
            "folded" | "collapsed" => Some(Format::Folded),
            "perf" | "perf-script" => Some(Format::PerfScript),
            "speedscope" => Some(Format::Speedscope),
            "callgrind" => Some(Format::Callgrind),
            "otlp" => Some(Format::Otlp),
            "pyroscope-push" | "push" => Some(Format::PyroscopePush),
            _ => None,
        }
    }
}

/// Options for reading.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Cap on the decompressed size of gzipped input, in bytes.
    pub max_decompressed: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_decompressed: DEFAULT_MAX_DECOMPRESSED,
        }
    }
}

/// Byte ranges of the lines of `bytes` (without their `\n`), found with
/// SIMD memchr; the same pieces as `split(|&b| b == b'\n')`.
fn line_ranges(bytes: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', bytes);
    std::iter::from_fn(move || {
        if start > bytes.len() {
            return None;
        }
        let end = ends.next().unwrap_or(bytes.len());
        let range = start..end;
        start = end + 1;
        Some(range)
    })
}

/// The lines of `bytes`, without their `\n`.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    line_ranges(bytes).map(move |r| &bytes[r])
}

/// [`lines`] for text: `\n` is ASCII, so every cut is a char boundary.
#[cfg_attr(not(feature = "render"), allow(dead_code))]
pub(crate) fn str_lines(text: &str) -> impl Iterator<Item = &str> {
    line_ranges(text.as_bytes()).map(move |r| &text[r])
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Gunzips `bytes`, failing with [`Error::TooLarge`] past `limit` bytes.
pub fn gunzip(bytes: &[u8], limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(Error::Gzip)?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok(out)
}

/// Guesses the format of (already decompressed) `bytes` from their content.
pub fn detect(bytes: &[u8]) -> Result<Format> {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let text = head
        .iter()
        .all(|&b| b >= 0x20 || b == b'\n' || b == b'\r' || b == b'\t');
    if !text {
        // OTLP first: its requests can also decode as a push.
        return Ok(if otlp::looks_like(bytes) {
            Format::Otlp
        } else if pyroscope_push::looks_like(bytes) {
            Format::PyroscopePush
        } else {
            Format::Pprof
        });
    }
    if pyroscope_push::looks_like_json(head) {
        return Ok(Format::PyroscopePush);
    }
    let first = head.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first == Some(b'{') || first == Some(b'[') {
        return Ok(Format::Speedscope);
    }
    if callgrind::looks_like_callgrind(head) {
        return Ok(Format::Callgrind);
    }
    if looks_like_perf_script(head) {
        return Ok(Format::PerfScript);
    }
    Ok(Format::Folded)
}

/// perf script: an unindented header followed by an indented hex address.
fn looks_like_perf_script(head: &[u8]) -> bool {
    let mut lines = head
        .split(|&b| b == b'\n') // only the first 64 KiB
        .filter(|l| !l.is_empty() && l[0] != b'#');
    while let Some(line) = lines.next() {
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(next) = lines.next() {
            if next[0] == b' ' || next[0] == b'\t' {
                let token = next.split(|b| b.is_ascii_whitespace()).find(|t| !t.is_empty());
                return token.is_some_and(|t| t.iter().all(u8::is_ascii_hexdigit));
            }
        }
        // A lone header line with `event:` and a frame also counts.
        return line.windows(2).any(|w| w == b": ") && line.contains(&b'/');
    }
    false
}

/// Reads a profile from bytes in any readable format, gunzipping first.
pub fn read_bytes(bytes: &[u8], options: &ReadOptions) -> Result<Profile> {
    let raw;
    let bytes = if is_gzip(bytes) {
        raw = gunzip(bytes, options.max_decompressed)?;
        &raw[..]
    } else {
        bytes
    };
    match detect(bytes)? {
        Format::Pprof => pprof::read(bytes, options.max_decompressed),
        Format::Folded => folded::read(bytes),
        Format::PerfScript => perf_script::read(bytes),
        Format::Callgrind => callgrind::read(bytes),
        Format::Otlp => otlp::read_merged(bytes, options.max_decompressed),
        Format::PyroscopePush => {
            let encoding = if pyroscope_push::looks_like_json(&bytes[..bytes.len().min(64 * 1024)]) {
                pyroscope_push::Encoding::Json
            } else {
                pyroscope_push::Encoding::Protobuf
            };
            pyroscope_push::read_merged(bytes, encoding, options.max_decompressed)
        }
        Format::Speedscope => Err(Error::UnknownFormat(
            "JSON input (speedscope is a write-only format here; use pprof or folded)".into(),
        )),
    }
}

/// Reads a profile file in any readable format (`-` for standard input).
pub fn read_path(path: &Path, options: &ReadOptions) -> Result<Profile> {
    read_bytes(&read_file(path)?, options)
}

/// The raw bytes of a file, or of standard input for `-`.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(Error::io)?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| Error::io_at(path, e))
    }
}

/// Whether `bytes` are folded-stack text (not gzipped, not another format).
pub fn is_folded_text(bytes: &[u8]) -> bool {
    !is_gzip(bytes) && matches!(detect(bytes), Ok(Format::Folded))
}

/// Options for writing.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// For single-valued formats (folded), which sample type to write;
    /// `None` for the profile's default.
    pub value_index: Option<usize>,
    /// A name for formats that carry one (speedscope).
    pub name: Option<String>,
}

/// Writes `profile` in `format`.
pub fn write(profile: &Profile, format: Format, options: &WriteOptions, out: &mut dyn Write) -> Result<()> {
    let value_index = options
        .value_index
        .unwrap_or_else(|| profile.default_value_index());
    match format {
        Format::Pprof => pprof::write(profile, out),
        Format::Folded => folded::write(
            profile,
            &FoldOptions {
                value_index,
                root_label: None,
            },
            out,
        ),
        Format::Speedscope => {
            speedscope::write(profile, options.name.as_deref().unwrap_or("flameshift"), out)
        }
        Format::PerfScript | Format::Callgrind | Format::Otlp | Format::PyroscopePush => {
            Err(Error::UnknownFormat(
                "perf script, callgrind, OTLP and Pyroscope push are read-only formats; write pprof, folded or speedscope"
                    .into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_the_standard_library() {
        for text in ["", "\n", "a", "a\n", "a\nb", "a\n\nb\n", "é\nü"] {
            let ours: Vec<&[u8]> = lines(text.as_bytes()).collect();
            let std: Vec<&[u8]> = text.as_bytes().split(|&b| b == b'\n').collect();
            assert_eq!(ours, std, "{text:?}");
            let ours: Vec<&str> = str_lines(text).collect();
            let std: Vec<&str> = text.split('\n').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn content_detection() {
        assert_eq!(detect(b"main;f 1\n").unwrap(), Format::Folded);
        assert_eq!(detect(b"{\"a\": 1}").unwrap(), Format::Speedscope);
        assert_eq!(
            detect(b"prog 12/13 1.0: 1 cpu-clock:\n\t  abc f (x)\n").unwrap(),
            Format::PerfScript
        );
        assert_eq!(
            detect(&[0x0a, 0x04, 0x08, 0x01, 0x10, 0x02]).unwrap(),
            Format::Pprof
        );
        assert_eq!(Format::from_path(Path::new("x/cpu.pb.gz")), Some(Format::Pprof));
        assert_eq!(
            Format::from_path(Path::new("a.speedscope.json")),
            Some(Format::Speedscope)
        );
        assert_eq!(Format::from_path(Path::new("noext")), None);
    }
}

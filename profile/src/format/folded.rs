//! Folded stacks, one per line: `root;caller;leaf 42`, as written by
//! Brendan Gregg's `stackcollapse-*` scripts and inferno's collapsers.
//!
//! Reading: the count is the last whitespace-separated field; frames are
//! separated by `;`; blank lines and lines starting with `#` are skipped.
//! Each line becomes one sample of type `samples/count` (the unit folded
//! files carry implicitly). Writing: see [`Profile::fold`]. Comment lines
//! start with `# ` (hash and space, as inferno has it), so a frame may
//! still begin with `#`.

use std::io::Write;

use rustc_hash::FxHashMap;

use crate::ops::FoldOptions;
use crate::{Error, FrameId, LabelSetId, Profile, Result, SampleType};

/// The sample type a folded file is read as.
pub fn folded_sample_type() -> SampleType {
    SampleType::new("samples", "count")
}

/// Parses folded stacks. Invalid UTF-8 in names is replaced with U+FFFD.
pub fn read(bytes: &[u8]) -> Result<Profile> {
    let mut profile = Profile::new(vec![folded_sample_type()]);
    let mut frame_ids: FxHashMap<&[u8], FrameId> = FxHashMap::default();
    let mut stack: Vec<FrameId> = Vec::new();
    for (index, raw_line) in super::lines(bytes).enumerate() {
        let Some((frames, count)) = parse_line(index, raw_line)? else {
            continue;
        };
        stack.clear();
        for name in frames.split(|&b| b == b';') {
            let id = match frame_ids.get(name) {
                Some(&id) => id,
                None => {
                    let id = profile.frame_named(&String::from_utf8_lossy(name));
                    frame_ids.insert(name, id);
                    id
                }
            };
            stack.push(id);
        }
        let stack_id = profile.intern_stack(&stack);
        profile.push_sample(stack_id, LabelSetId::EMPTY, &[count]);
    }
    Ok(profile)
}

/// One line of folded text (0-based `index`): `None` for blank lines and
/// comments, else the stack text and its count, or an error naming the line.
pub(crate) fn parse_line(index: usize, raw_line: &[u8]) -> Result<Option<(&[u8], i64)>> {
    let line = raw_line.trim_ascii_end();
    if is_blank_or_comment(line) {
        return Ok(None);
    }
    split_count(line).map(Some).map_err(|problem| Error::Parse {
        format: "folded",
        line: index + 1,
        problem,
    })
}

/// Blank lines and `# ` comments carry no stack.
fn is_blank_or_comment(line: &[u8]) -> bool {
    line.is_empty() || line.starts_with(b"# ") || line == b"#"
}

/// Splits `a;b;c 42` into (`a;b;c`, 42).
fn split_count(line: &[u8]) -> std::result::Result<(&[u8], i64), String> {
    let Some(space) = line.iter().rposition(|&b| b == b' ' || b == b'\t') else {
        return Err("missing count: expected `frame;frame;... COUNT`".into());
    };
    let (frames, count) = (line[..space].trim_ascii_end(), &line[space + 1..]);
    let count = std::str::from_utf8(count)
        .ok()
        .and_then(|c| c.parse::<i64>().ok())
        .ok_or_else(|| {
            format!(
                "count field {:?} is not an integer: expected `frame;frame;... COUNT`",
                String::from_utf8_lossy(count)
            )
        })?;
    if frames.is_empty() {
        return Err("empty stack before the count".into());
    }
    Ok((frames, count))
}

/// Writes folded stacks for the chosen sample type, sorted by stack.
pub fn write(profile: &Profile, options: &FoldOptions, out: &mut dyn Write) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    for (stack, value) in profile.fold(options) {
        writeln!(out, "{stack} {value}").map_err(Error::io)?;
    }
    out.flush().map_err(Error::io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counts_after_the_last_space_and_keeps_spaces_in_names() {
        let p = read(b"main;do work;f 3\n\n# comment\nmain;g 4\r\n").unwrap();
        assert_eq!(p.total(0), 7);
        let folded = p.fold(&FoldOptions::default());
        assert_eq!(folded.get("main;do work;f"), Some(&3));
        assert_eq!(folded.get("main;g"), Some(&4));
    }

    #[test]
    fn hash_space_starts_a_comment_but_a_hash_name_is_a_frame() {
        let p = read(b"# a comment 1\n#define;x 2\n").unwrap();
        assert_eq!(p.fold(&FoldOptions::default()).get("#define;x"), Some(&2));
        assert_eq!(p.total(0), 2);
    }

    #[test]
    fn a_line_without_count_names_its_line_number() {
        let err = read(b"a;b 1\na;b;c x\n").unwrap_err().to_string();
        assert!(err.contains("folded line 2"), "{err}");
        assert!(err.contains("not an integer"), "{err}");
        let err = read(b"a;b 1\nabc\n").unwrap_err().to_string();
        assert!(err.contains("line 2: missing count"), "{err}");
    }
}

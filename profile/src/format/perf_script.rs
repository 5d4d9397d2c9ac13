//! `perf script` text (from `perf record -g`), read-only.
//!
//! Each event is a header line (`comm pid/tid [cpu] time: period event:`)
//! followed by stack lines (`\taddr symbol+0xoff (module)`, leaf first) and
//! a blank line. Names are cleaned the way `stackcollapse-perf` and
//! inferno's perf collapser clean them: symbol offsets are dropped,
//! argument lists are cut (Go methods and C++ anonymous namespaces are
//! kept), `;` becomes `:`, and an `[unknown]` symbol in a known module is
//! named `[module]`. Unlike those tools, the process name is not made a
//! frame: it becomes the `thread` label, next to numeric `pid` and `tid`.
//!
//! Weights: when headers carry a period, each sample weighs its period in
//! the event's unit (nanoseconds for `cpu-clock`/`task-clock`, instructions,
//! cycles, ...) and a second sample type counts samples; otherwise each
//! sample counts 1. Only the first event type seen is kept, because
//! merging `cycles` with `instructions` would mix units; the number of
//! skipped samples is recorded in a comment.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use crate::{Error, Frame, FrameId, LabelSetId, Period, Profile, Result, SampleType};

/// The unit of a perf event's period.
pub fn event_unit(event: &str) -> &'static str {
    let base = event.split(':').next().unwrap_or(event);
    match base {
        "cpu-clock" | "task-clock" => "nanoseconds",
        "instructions" | "inst_retired.any" => "instructions",
        "cycles" | "cpu-cycles" | "ref-cycles" => "cycles",
        _ => "count",
    }
}

/// Inputs larger than this are parsed in parallel chunks.
const PARALLEL_THRESHOLD: usize = 8 << 20;

/// Parses `perf script` output. Large inputs are split at event
/// boundaries and parsed on all cores, then merged.
pub fn read(bytes: &[u8]) -> Result<Profile> {
    let Some(first) = first_event(bytes)? else {
        return Ok(Profile::new(vec![SampleType::new("samples", "count")]));
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunks = split_at_events(
        bytes,
        if bytes.len() < PARALLEL_THRESHOLD {
            1
        } else {
            threads
        },
    );
    let mut readers = if chunks.len() == 1 {
        vec![read_chunk(bytes, 0, &first)?]
    } else {
        let first = &first;
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|&(chunk, line)| scope.spawn(move || read_chunk(chunk, line, first)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect::<Result<Vec<_>>>()
        })?
    };
    let mut merged = readers.remove(0);
    for reader in readers {
        merged.profile.merge(&reader.profile)?;
        merged.skipped_other_events += reader.skipped_other_events;
    }
    Ok(merged.finish())
}

/// The event every sample must have, from the first header.
struct FirstEvent {
    event: String,
    period: Option<i64>,
}

fn first_event(bytes: &[u8]) -> Result<Option<FirstEvent>> {
    for (index, raw) in super::lines(bytes).enumerate() {
        let line = raw.trim_ascii_end();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(stray_stack_line(index));
        }
        let header = parse_header(line).ok_or_else(|| header_error(index))?;
        return Ok(Some(FirstEvent {
            event: String::from_utf8_lossy(header.event).into_owned(),
            period: header.period,
        }));
    }
    Ok(None)
}

fn stray_stack_line(index: usize) -> Error {
    Error::Parse {
        format: "perf script",
        line: index + 1,
        problem: "stack line outside an event (expected `comm pid/tid ... event:` first)".into(),
    }
}

fn header_error(index: usize) -> Error {
    Error::Parse {
        format: "perf script",
        line: index + 1,
        problem: "event header without a pid/tid field".into(),
    }
}

/// Splits into about `parts` pieces, each ending after a blank line, with
/// the 0-based line number each starts at.
fn split_at_events(bytes: &[u8], parts: usize) -> Vec<(&[u8], usize)> {
    let mut chunks = Vec::with_capacity(parts);
    let target = bytes.len() / parts.max(1) + 1;
    let (mut start, mut line) = (0, 0);
    while start < bytes.len() {
        let want = (start + target).min(bytes.len());
        let end = match memchr::memmem::find(&bytes[want..], b"\n\n") {
            Some(i) if chunks.len() + 1 < parts => want + i + 2,
            _ => bytes.len(),
        };
        chunks.push((&bytes[start..end], line));
        line += memchr::memchr_iter(b'\n', &bytes[start..end]).count();
        start = end;
    }
    chunks
}

fn read_chunk<'a>(bytes: &'a [u8], first_line: usize, first: &FirstEvent) -> Result<Reader<'a>> {
    let mut reader = Reader::new(first);
    let mut lines = super::lines(bytes).enumerate().peekable();
    let mut stack: Vec<&[u8]> = Vec::new();
    while let Some((index, raw)) = lines.next() {
        let line = raw.trim_ascii_end();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(stray_stack_line(first_line + index));
        }
        let header = parse_header(line).ok_or_else(|| header_error(first_line + index))?;
        stack.clear();
        if let Some(inline) = header.inline_frame {
            stack.push(inline);
        }
        while let Some((_, raw)) = lines.peek() {
            let line = raw.trim_ascii_end();
            if line.is_empty() {
                break;
            }
            if line[0] == b'#' {
                lines.next();
                continue;
            }
            if line[0] != b' ' && line[0] != b'\t' {
                break; // the next header: perf sometimes omits the blank line
            }
            stack.push(line);
            lines.next();
        }
        reader.add_event(&header, &stack);
    }
    Ok(reader)
}

struct Header<'a> {
    comm: &'a [u8],
    pid: Option<i64>,
    tid: i64,
    event: &'a [u8],
    period: Option<i64>,
    inline_frame: Option<&'a [u8]>,
}

/// Parses `comm [pid/]tid [cpu] time: [period] event: [inline frame]`.
/// The comm may contain spaces; the pid/tid is the first all-digit word.
fn parse_header(line: &[u8]) -> Option<Header<'_>> {
    let mut start = 0;
    let (comm_end, id_word, rest_start) = loop {
        let end = memchr::memchr(b' ', &line[start..]).map_or(line.len(), |i| start + i);
        let word = &line[start..end];
        let is_id = !word.is_empty()
            && word.iter().all(|b| b.is_ascii_digit() || *b == b'/')
            && word[0] != b'/'
            && word[word.len() - 1] != b'/';
        if start > 0 && is_id {
            break (start, word, end);
        }
        if end >= line.len() {
            return None;
        }
        start = end + 1;
    };
    let comm = line[..comm_end].trim_ascii_end();
    let (pid, tid) = match memchr::memchr(b'/', id_word) {
        Some(slash) => (
            Some(parse_i64(&id_word[..slash])?),
            parse_i64(&id_word[slash + 1..])?,
        ),
        None => (None, parse_i64(id_word)?),
    };
    // After the ids: optional [cpu], the time ending in ':', then
    // `[period] event:` and possibly a one-frame stack.
    let rest = &line[rest_start..];
    let time_colon = memchr::memchr(b':', rest)?;
    let after_time = &rest[time_colon + 1..];
    let event_colon = memchr::memchr(b':', after_time)?;
    let period_and_event = after_time[..event_colon].trim_ascii_start();
    let (period, event) = match memchr::memrchr(b' ', period_and_event) {
        Some(space) => (
            parse_i64(period_and_event[..space].trim_ascii_end()),
            &period_and_event[space + 1..],
        ),
        None => (None, period_and_event),
    };
    // Modifiers such as `cycles:u:` or `cycles:ppp:` continue up to a space.
    let mut tail = &after_time[event_colon + 1..];
    let tail_start = tail
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(tail.len());
    tail = tail[tail_start..].trim_ascii_start();
    Some(Header {
        comm,
        pid,
        tid,
        event,
        period,
        inline_frame: (!tail.is_empty()).then_some(tail),
    })
}

fn parse_i64(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

struct Reader<'a> {
    profile: Profile,
    event: Vec<u8>,
    with_period: bool,
    skipped_other_events: u64,
    frames: FxHashMap<&'a [u8], FrameId>,
    labels: FxHashMap<(&'a [u8], Option<i64>, i64), LabelSetId>,
    stack: Vec<FrameId>,
}

impl<'a> Reader<'a> {
    fn new(first: &FirstEvent) -> Self {
        let mut types = vec![SampleType::new("samples", "count")];
        let with_period = first.period.is_some();
        let mut period = None;
        if let Some(value) = first.period {
            let kind = SampleType::new(first.event.clone(), event_unit(&first.event));
            types.push(kind.clone());
            period = Some(Period { kind, value });
        }
        let mut profile = Profile::new(types);
        profile.period = period;
        profile
            .comments
            .push(format!("perf script, event {}", first.event));
        Reader {
            profile,
            event: first.event.as_bytes().to_vec(),
            with_period,
            skipped_other_events: 0,
            frames: FxHashMap::default(),
            labels: FxHashMap::default(),
            stack: Vec::new(),
        }
    }

    fn add_event(&mut self, header: &Header<'a>, lines: &[&'a [u8]]) {
        if header.event != self.event.as_slice() {
            self.skipped_other_events += 1;
            return;
        }
        let profile = &mut self.profile;
        self.stack.clear();
        for line in lines.iter().rev() {
            let id = match self.frames.get(line) {
                Some(&id) => id,
                None => match stack_frame(profile, line) {
                    Some(id) => {
                        self.frames.insert(line, id);
                        id
                    }
                    None => continue,
                },
            };
            self.stack.push(id);
        }
        let stack = profile.intern_stack(&self.stack);
        let key = (header.comm, header.pid, header.tid);
        let labels = *self.labels.entry(key).or_insert_with(|| {
            let mut set = vec![profile.str_label("thread", &String::from_utf8_lossy(header.comm))];
            if let Some(pid) = header.pid {
                set.push(profile.num_label("pid", pid, ""));
            }
            set.push(profile.num_label("tid", header.tid, ""));
            profile.intern_labels(set)
        });
        if self.with_period {
            profile.push_sample(stack, labels, &[1, header.period.unwrap_or(1)]);
        } else {
            profile.push_sample(stack, labels, &[1]);
        }
    }

    fn finish(self) -> Profile {
        let mut profile = self.profile;
        if self.skipped_other_events > 0 {
            tracing::warn!(
                skipped = self.skipped_other_events,
                "perf script: kept only the first event type"
            );
            profile.comments.push(format!(
                "skipped {} samples of other events (units are never mixed)",
                self.skipped_other_events
            ));
        }
        profile
    }
}

/// Parses `addr symbol+0xoff (module)` into a frame; `None` for lines
/// that are not frames (perf prints `(process)` pseudo-frames to skip).
fn stack_frame(profile: &mut Profile, line: &[u8]) -> Option<FrameId> {
    let line = lossy(line.trim_ascii_start());
    let (pc, rest) = line.split_once(' ').unwrap_or((&line, ""));
    let (symbol, module) = match rest.rfind(' ') {
        Some(space) if rest.ends_with(')') && rest[space + 1..].starts_with('(') => {
            (rest[..space].trim(), &rest[space + 2..rest.len() - 1])
        }
        _ if rest.starts_with('(') && rest.ends_with(')') => ("", &rest[1..rest.len() - 1]),
        _ => (rest.trim(), ""),
    };
    let symbol = strip_offset(symbol);
    if symbol.starts_with('(') {
        return None;
    }
    let address = u64::from_str_radix(pc.trim(), 16).unwrap_or(0);
    let name = if symbol == "[unknown]" || symbol.is_empty() {
        match module.rsplit('/').next() {
            Some(base) if !base.is_empty() && module != "[unknown]" => format!("[{base}]"),
            _ => "[unknown]".to_owned(),
        }
    } else {
        tidy_name(symbol)
    };
    let function = profile.intern_str(&name);
    let binary = if module.is_empty() || module == "[unknown]" {
        crate::StrId::EMPTY
    } else {
        profile.intern_str(module)
    };
    Some(profile.intern_frame(Frame {
        function,
        binary,
        address,
        ..Frame::default()
    }))
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn strip_offset(symbol: &str) -> &str {
    if let Some(at) = symbol.rfind("+0x") {
        let hex = &symbol[at + 3..];
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return &symbol[..at];
        }
    }
    symbol
}

/// Cuts a C/C++ argument list (`f(int, char*)` → `f`) and replaces `;`,
/// keeping Go methods (`pkg.(*T).M`), C++ `(anonymous namespace)` and
/// parentheses nested in templates or closures.
pub fn tidy_name(name: &str) -> String {
    let mut depth = 0i32;
    let mut after_dot = None;
    let mut cut = name.len();
    for (i, c) in name.char_indices() {
        match c {
            '<' | '{' | '[' => depth += 1,
            '>' | '}' | ']' | ')' => depth -= 1,
            '(' => {
                if depth == 0 && after_dot != Some(i) && !name[i..].starts_with("(anonymous namespace)") {
                    cut = i;
                    break;
                }
                depth += 1;
            }
            '.' => after_dot = Some(i + 1),
            _ => {}
        }
    }
    name[..cut].replace(';', ":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::FoldOptions;

    const SCRIPT: &str = "\
V8 Worker 4242/4243 [001] 123.456: 250000 cpu-clock:u: \n\
\t    55d0 leaf+0x1f (/usr/bin/app)\n\
\t    55e0 std::vector<int>::push(int const&)+0x4 (/usr/bin/app)\n\
\t    7f00 [unknown] (/lib/libc.so.6)\n\
\t    0 [unknown] ([unknown])\n\
\n\
V8 Worker 4242/4243 [001] 123.457: 250000 cpu-clock:u: \n\
\t    55d0 leaf+0x1f (/usr/bin/app)\n\
\t    55f0 net/http.(*Client).Do+0x2 (/usr/bin/app)\n\
\n\
other 7 [000] 1.0: 5 cycles: \n\
\t    1 x (/bin/x)\n\
";

    #[test]
    fn parses_events_names_and_labels() {
        let p = read(SCRIPT.as_bytes()).unwrap();
        assert_eq!(p.sample_types[1], SampleType::new("cpu-clock", "nanoseconds"));
        assert_eq!(p.total(0), 2);
        assert_eq!(p.total(1), 500_000);
        let folded = p.fold(&FoldOptions {
            value_index: 1,
            root_label: Some("thread".into()),
        });
        let lines: Vec<_> = folded.iter().map(|(k, v)| format!("{k} {v}")).collect();
        assert_eq!(
            lines,
            vec![
                "V8 Worker;[unknown];[libc.so.6];std::vector<int>::push;leaf 250000",
                "V8 Worker;net/http.(*Client).Do;leaf 250000",
            ]
        );
        assert!(p.comments.iter().any(|c| c.contains("skipped 1 samples")));
        assert_eq!(p.filter_labels(&["tid=4243".parse().unwrap()]).total(0), 2);
        assert_eq!(p.filter_labels(&["pid=4242".parse().unwrap()]).total(0), 2);
    }

    #[test]
    fn header_without_period_and_with_inline_frame() {
        let p = read(b"perf 12 1.5: cycles:  ffff8 do_syscall+0x3 ([kernel.kallsyms])\n").unwrap();
        assert_eq!(p.sample_types.len(), 1);
        assert_eq!(p.fold(&FoldOptions::default()).get("do_syscall"), Some(&1));
    }

    #[test]
    fn parallel_chunks_give_the_same_profile_as_one() {
        let mut big = String::new();
        for _ in 0..50 {
            big.push_str(SCRIPT);
            big.push('\n');
        }
        let whole = read_chunk(big.as_bytes(), 0, &first_event(big.as_bytes()).unwrap().unwrap())
            .unwrap()
            .finish();
        let chunks = split_at_events(big.as_bytes(), 3);
        assert_eq!(chunks.len(), 3);
        assert!(chunks[1].1 > 0 && chunks[1].0.starts_with(b"V8") || chunks[1].0.starts_with(b"other"));
        let first = first_event(big.as_bytes()).unwrap().unwrap();
        let mut merged = read_chunk(chunks[0].0, chunks[0].1, &first).unwrap();
        for &(chunk, line) in &chunks[1..] {
            let part = read_chunk(chunk, line, &first).unwrap();
            merged.profile.merge(&part.profile).unwrap();
            merged.skipped_other_events += part.skipped_other_events;
        }
        let merged = merged.finish();
        assert_eq!(
            merged.fold(&FoldOptions::default()),
            whole.fold(&FoldOptions::default())
        );
        assert_eq!(merged.comments, whole.comments);
        assert_eq!(merged.total(0), 100);
    }

    #[test]
    fn error_line_numbers_count_across_chunks() {
        let text = format!("{SCRIPT}\n{SCRIPT}\nbroken line\n");
        let chunks = split_at_events(text.as_bytes(), 2);
        let first = first_event(text.as_bytes()).unwrap().unwrap();
        let (chunk, line) = chunks[1];
        let err = read_chunk(chunk, line, &first).err().unwrap().to_string();
        let expected = text.lines().position(|l| l == "broken line").unwrap() + 1;
        assert!(err.contains(&format!("perf script line {expected}:")), "{err}");
    }

    #[test]
    fn tidy_cuts_argument_lists_only() {
        assert_eq!(tidy_name("foo(int)"), "foo");
        assert_eq!(tidy_name("main.(*T).Run"), "main.(*T).Run");
        assert_eq!(
            tidy_name("(anonymous namespace)::f(int)"),
            "(anonymous namespace)::f"
        );
        assert_eq!(tidy_name("a;b"), "a:b");
    }

    #[test]
    fn stray_stack_line_is_an_error_with_its_line() {
        let err = read(b"\tdeadbeef f (x)\n").unwrap_err().to_string();
        assert!(err.contains("perf script line 1"), "{err}");
    }
}

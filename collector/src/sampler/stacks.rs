//! Where this process's thread stacks are, for the signal handler: a
//! snapshot of the stack mappings in `/proc/self/maps`, readable from a
//! signal handler without a lock or a system call.
//!
//! A thread's stack is one mapping from its stack pointer up to the top
//! of the stack, so every address in `[sp, top)` is readable: the walk
//! reads frames there directly, as pprof-rs and the Go runtime do, and
//! keeps the `process_vm_readv` system call (which fails instead of
//! faulting) for frame pointers outside that range. The snapshot holds
//! the main thread's `[stack]` and every private anonymous read-write
//! mapping that sits right above a no-access guard mapping (how glibc
//! and Rust's standard library lay out thread stacks). It is taken
//! before any thread is armed and again whenever the scanner arms a new
//! thread: a thread is only signalled once its stack is in the snapshot,
//! and a live thread's own stack mapping does not change (the main
//! stack grows down, below a snapshot's start, where the walk falls back
//! to the system call). Stacks a runtime allocates and frees under a
//! running thread (stackful coroutines) are not guard-page thread stacks
//! of this kind unless they use the same layout (docs/architecture.md,
//! "The agent").
//!
//! The table is a sequence lock over atomics: the writer makes the
//! sequence odd, rewrites, makes it even; a reader that sees it odd or
//! changed uses the system call instead.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Stacks the table holds (threads beyond it use the system call).
pub const CAPACITY: usize = 4096;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static STARTS: [AtomicU64; CAPACITY] = [const { AtomicU64::new(0) }; CAPACITY];
static ENDS: [AtomicU64; CAPACITY] = [const { AtomicU64::new(0) }; CAPACITY];
static WRITER: Mutex<()> = Mutex::new(());

/// One line of `/proc/self/maps`: (start, end, permissions, path).
fn parse_line(line: &str) -> Option<(u64, u64, &str, &str)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let (start, end) = range.split_once('-')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
        perms,
        path,
    ))
}

/// The stack mappings of a `/proc/PID/maps` text, by start address: the
/// main `[stack]`, and anonymous private read-write mappings directly
/// above an anonymous no-access guard mapping.
pub fn stack_ranges(maps: &str) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut guard_end: Option<u64> = None;
    for (start, end, perms, path) in maps.lines().filter_map(parse_line) {
        let readable = perms.starts_with("rw") && perms.ends_with('p');
        let thread_stack = readable && path.is_empty() && guard_end == Some(start);
        if (readable && path == "[stack]") || thread_stack {
            ranges.push((start, end));
        }
        guard_end = (perms.starts_with("---") && path.is_empty()).then_some(end);
    }
    ranges.sort_unstable();
    ranges.truncate(CAPACITY);
    ranges
}

/// Re-reads `/proc/self/maps` into the table.
pub fn refresh() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    store(&stack_ranges(&maps));
}

/// Replaces the table's contents.
pub fn store(ranges: &[(u64, u64)]) {
    let _writer = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    SEQUENCE.fetch_add(1, Ordering::AcqRel); // odd: being written
    for (i, &(start, end)) in ranges.iter().take(CAPACITY).enumerate() {
        STARTS[i].store(start, Ordering::Relaxed);
        ENDS[i].store(end, Ordering::Relaxed);
    }
    COUNT.store(ranges.len().min(CAPACITY), Ordering::Relaxed);
    SEQUENCE.fetch_add(1, Ordering::AcqRel); // even: readable
}

/// The end (top) of the stack mapping holding `sp`, if the table has it
/// and was not being rewritten. Async-signal-safe: atomics only.
pub fn top_of(sp: u64) -> Option<u64> {
    let before = SEQUENCE.load(Ordering::Acquire);
    if before % 2 == 1 {
        return None;
    }
    let count = COUNT.load(Ordering::Relaxed).min(CAPACITY);
    // The last range starting at or below sp.
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if STARTS[mid].load(Ordering::Relaxed) <= sp {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let found = lo.checked_sub(1).map(|i| ENDS[i].load(Ordering::Relaxed));
    std::sync::atomic::fence(Ordering::Acquire);
    if SEQUENCE.load(Ordering::Relaxed) != before {
        return None;
    }
    found.filter(|&end| sp < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0000000-55d0c0100000 r-xp 00000000 08:01 1234 /usr/bin/service
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 ---p 00000000 00:00 0
7f0000001000-7f0000201000 rw-p 00000000 00:00 0
7f0000201000-7f0000300000 rw-p 00000000 00:00 0
7f0000400000-7f0000401000 ---p 00000000 08:01 99 /usr/lib/libc.so.6
7f0000401000-7f0000402000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn finds_thread_stacks_above_guard_pages_and_the_main_stack() {
        assert_eq!(
            stack_ranges(MAPS),
            vec![
                (0x7f00_0000_1000, 0x7f00_0020_1000),
                (0x7ffd_0000_0000, 0x7ffd_0002_1000)
            ],
            "the heap, a plain anonymous mapping and one above a file's no-access mapping are not stacks"
        );
    }

    #[test]
    fn this_threads_stack_is_found_and_reaches_above_its_stack_pointer() {
        refresh();
        let local = 0u64;
        let sp = std::ptr::addr_of!(local) as u64;
        let top = top_of(sp).expect("a test thread's stack is a guard-page thread stack");
        assert!(top > sp);
        // Outside every stack: a code address.
        assert_eq!(
            top_of(finds_thread_stacks_above_guard_pages_and_the_main_stack as *const () as u64),
            None
        );
    }
}

//! From raw addresses to frames: the mappings each process had when a
//! sample was taken (from MMAP2 records), then ELF symbols, DWARF lines and
//! inlined functions through blazesym, demangled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use flameshift_profile::{Frame, FrameId, Profile};

/// Where an address lives: a file and an offset in it, or nowhere known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// In a mapped file (or a pseudo mapping such as `[vdso]`).
    File {
        /// The mapping's path.
        path: Arc<str>,
        /// File offset of the address.
        offset: u64,
    },
    /// JIT-compiled code named by the runtime in `/tmp/perf-PID.map`.
    Jit {
        /// The name the runtime gave it.
        name: Arc<str>,
        /// The address.
        addr: u64,
    },
    /// In no known mapping.
    Unknown(u64),
}

#[derive(Debug, Clone)]
struct MapEntry {
    start: u64,
    end: u64,
    pgoff: u64,
    path: Arc<str>,
}

/// The executable mappings of each process seen so far.
#[derive(Debug, Default)]
pub struct Maps {
    /// Per process, mappings by start address (they never overlap: a new
    /// mapping replaces what it covers), so that a lookup is a range query
    /// even in processes with thousands of mappings.
    by_pid: HashMap<u32, BTreeMap<u64, MapEntry>>,
    paths: HashMap<String, Arc<str>>,
    /// `/tmp/perf-PID.map` of each process, read on first need.
    jit: HashMap<u32, Vec<(u64, u64, Arc<str>)>>,
}

impl Maps {
    /// Records a new mapping.
    pub fn mmap(&mut self, pid: u32, start: u64, len: u64, pgoff: u64, path: &str) {
        let path = match self.paths.get(path) {
            Some(p) => p.clone(),
            None => {
                let p: Arc<str> = Arc::from(path);
                self.paths.insert(path.to_owned(), p.clone());
                p
            }
        };
        let maps = self.by_pid.entry(pid).or_default();
        let end = start.saturating_add(len);
        // Drop what the new mapping replaces: entries starting inside it,
        // and one starting before it that reaches into it.
        let covered: Vec<u64> = maps.range(start..end).map(|(&s, _)| s).collect();
        for s in covered {
            maps.remove(&s);
        }
        if let Some((&s, m)) = maps.range(..start).next_back() {
            if m.end > start {
                maps.remove(&s);
            }
        }
        maps.insert(
            start,
            MapEntry {
                start,
                end,
                pgoff,
                path,
            },
        );
    }

    #[cfg(any(test, feature = "record"))]
    /// A new process starts with its parent's mappings.
    pub fn fork(&mut self, pid: u32, ppid: u32) {
        if pid != ppid && !self.by_pid.contains_key(&pid) {
            if let Some(parent) = self.by_pid.get(&ppid).cloned() {
                self.by_pid.insert(pid, parent);
            }
        }
    }

    #[cfg(any(test, feature = "record"))]
    /// `exec` replaces the address space.
    pub fn exec(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    #[cfg(any(test, feature = "record"))]
    /// The mappings of `pid`: start, end, file offset, path.
    pub fn entries(&self, pid: u32) -> Vec<(u64, u64, u64, Arc<str>)> {
        self.by_pid
            .get(&pid)
            .map(|maps| {
                maps.values()
                    .map(|m| (m.start, m.end, m.pgoff, m.path.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Like [`Maps::locate`], but code outside every mapped file is looked
    /// up in the process's `/tmp/perf-PID.map` (written by JIT runtimes:
    /// the JVM with perf-map-agent, Node with `--perf-basic-prof`, ...).
    pub fn locate_with_jit(&mut self, pid: u32, addr: u64) -> Location {
        let location = self.locate(pid, addr);
        let outside_files = match &location {
            Location::File { path, .. } => !path.starts_with('/') || path.starts_with("//anon"),
            _ => true,
        };
        if !outside_files {
            return location;
        }
        let symbols = self.jit.entry(pid).or_insert_with(|| {
            std::fs::read_to_string(format!("/tmp/perf-{pid}.map"))
                .map(|text| parse_perf_map(&text))
                .unwrap_or_default()
        });
        symbols
            .iter()
            .rev() // later lines win: code can be re-jitted at the same address
            .find(|(start, end, _)| *start <= addr && addr < *end)
            .map(|(_, _, name)| Location::Jit {
                name: name.clone(),
                addr,
            })
            .unwrap_or(location)
    }

    #[cfg(feature = "record")]
    /// Whether `addr` lies in a mapped file (not a pseudo mapping) of `pid`.
    pub fn is_mapped(&self, pid: u32, addr: u64) -> bool {
        matches!(self.locate(pid, addr), Location::File { path, .. } if path.starts_with('/'))
    }

    /// Where `addr` of process `pid` lives now.
    pub fn locate(&self, pid: u32, addr: u64) -> Location {
        self.by_pid
            .get(&pid)
            .and_then(|maps| maps.range(..=addr).next_back().map(|(_, m)| m))
            .filter(|m| addr < m.end)
            .map(|m| Location::File {
                path: m.path.clone(),
                offset: addr - m.start + m.pgoff,
            })
            .unwrap_or(Location::Unknown(addr))
    }
}

/// Parses `START SIZE name` lines (hex, without `0x` as perf writes them,
/// or with it) of a perf map file.
fn parse_perf_map(text: &str) -> Vec<(u64, u64, Arc<str>)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let start = hex(parts.next()?)?;
            let size = hex(parts.next()?)?;
            let name = parts.next()?.trim();
            Some((start, start.saturating_add(size), Arc::from(name)))
        })
        .collect()
}

/// One frame of a symbolized location, independent of any profile: what
/// [`Resolver`] keeps between profiles.
#[derive(Debug, Clone)]
struct SymbolicFrame {
    function: Arc<str>,
    /// Source file, empty when unknown.
    file: Arc<str>,
    line: u32,
    inlined: bool,
}

/// Turns locations into interned frames of `profile`, symbolizing each
/// distinct location once for the resolver's whole life: the symbols of
/// a location (function, file, line, inlined frames; none for an address
/// without a symbol) are kept by location, the frame ids only for the
/// profile they were interned in ([`Resolver::forget_frames`]). Each
/// location gives one or more frames, root first (a function and the
/// functions inlined into it). An agent's next interval re-interns the
/// symbols it already has, without asking blazesym or reading the binary.
pub struct Resolver {
    symbolizer: Symbolizer,
    /// Symbols by location, for the resolver's life (empty: no symbol).
    symbols: HashMap<Location, Arc<[SymbolicFrame]>>,
    /// PLT stubs of each file, read once.
    plts: HashMap<Arc<str>, PltMap>,
    /// Frame ids in the current profile.
    cache: HashMap<Location, Vec<FrameId>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            symbolizer: Symbolizer::builder()
                .enable_code_info(true)
                .enable_inlined_fns(true)
                .enable_demangling(true)
                .build(),
            symbols: HashMap::new(),
            plts: HashMap::new(),
            cache: HashMap::new(),
        }
    }
}

impl Resolver {
    /// Interns the frames of every location in `locations` into
    /// `profile`, symbolizing (one blazesym call per file) only the
    /// locations this resolver has never seen.
    pub fn prepare(&mut self, profile: &mut Profile, locations: impl IntoIterator<Item = Location>) {
        let mut fresh: Vec<Location> = Vec::new();
        let mut by_path: HashMap<Arc<str>, Vec<u64>> = HashMap::new();
        for location in locations {
            if self.cache.contains_key(&location) {
                continue;
            }
            if !self.symbols.contains_key(&location) {
                if let Location::File { path, offset } = &location {
                    if is_file(path) {
                        by_path.entry(path.clone()).or_default().push(*offset);
                    }
                }
                self.symbols.insert(location.clone(), Arc::from([]));
            }
            self.cache.insert(location.clone(), Vec::new());
            fresh.push(location);
        }
        for (path, mut offsets) in by_path {
            offsets.sort_unstable();
            offsets.dedup();
            self.symbolize_file(&path, &offsets);
        }
        for location in fresh {
            let frames = self.intern(profile, &location);
            self.cache.insert(location, frames);
        }
    }

    /// Symbolizes `offsets` of the file at `path` into `self.symbols`.
    fn symbolize_file(&mut self, path: &Arc<str>, offsets: &[u64]) {
        let source = Source::Elf(Elf::new(&**path));
        let results = match self.symbolizer.symbolize(&source, Input::FileOffset(offsets)) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(path = &**path, "cannot symbolize: {e}");
                return;
            }
        };
        let plt = self
            .plts
            .entry(path.clone())
            .or_insert_with(|| PltMap::load(path));
        for (offset, result) in offsets.iter().zip(results) {
            let location = Location::File {
                path: path.clone(),
                offset: *offset,
            };
            if let Some(name) = plt.name(*offset) {
                let frame = SymbolicFrame {
                    function: Arc::from(name),
                    file: Arc::from(""),
                    line: 0,
                    inlined: false,
                };
                self.symbols.insert(location, Arc::from([frame]));
                continue;
            }
            let Symbolized::Sym(sym) = result else { continue };
            // A symbol does not cover addresses past its end: those are
            // code without a symbol (PLT stubs after `_init`, say).
            if sym.size.is_some_and(|size| sym.offset >= size.max(1)) {
                continue;
            }
            let frame = |name: &str, info: Option<&blazesym::symbolize::CodeInfo<'_>>, inlined: bool| {
                let (file, line) = match info {
                    Some(info) => (
                        Arc::from(info.to_path().to_string_lossy().as_ref()),
                        info.line.unwrap_or(0),
                    ),
                    None => (Arc::from(""), 0),
                };
                SymbolicFrame {
                    function: Arc::from(name),
                    file,
                    line,
                    inlined,
                }
            };
            let mut frames = Vec::with_capacity(1 + sym.inlined.len());
            frames.push(frame(&sym.name, sym.code_info.as_deref(), false));
            for inlined in sym.inlined.iter() {
                frames.push(frame(&inlined.name, inlined.code_info.as_ref(), true));
            }
            self.symbols.insert(location, Arc::from(frames));
        }
    }

    /// The frames of `location` interned into `profile`: its symbols, or
    /// a frame naming its binary and offset when it has none.
    fn intern(&self, profile: &mut Profile, location: &Location) -> Vec<FrameId> {
        let symbols = self.symbols.get(location).filter(|s| !s.is_empty());
        let (Some(symbols), Location::File { path, offset }) = (symbols, location) else {
            return vec![unknown_frame(profile, location)];
        };
        let binary = profile.intern_str(path);
        symbols
            .iter()
            .map(|s| {
                let frame = Frame {
                    function: profile.intern_str(&s.function),
                    file: match s.file.is_empty() {
                        true => flameshift_profile::StrId::EMPTY,
                        false => profile.intern_str(&s.file),
                    },
                    line: s.line,
                    binary,
                    address: *offset,
                    inlined: s.inlined,
                };
                profile.intern_frame(frame)
            })
            .collect()
    }

    /// Forgets the frame ids interned so far: they belong to the profile
    /// they were prepared for, so a resolver used for a new profile must
    /// start here. The symbols stay.
    pub fn forget_frames(&mut self) {
        self.cache.clear();
    }

    /// Locations whose symbols are kept.
    #[cfg(test)]
    fn symbolized(&self) -> usize {
        self.symbols.len()
    }

    /// The frames of a location (after [`Resolver::prepare`]).
    pub fn frames(&self, location: &Location) -> &[FrameId] {
        self.cache.get(location).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Names the PLT stubs of an ELF file `target@plt`, as perf does: stub i
/// of `.plt` (after its 16-byte header) or of `.plt.sec` jumps through
/// the i-th `R_X86_64_JUMP_SLOT` relocation. Without this, samples in
/// stubs take the name of whatever symbol precedes them (often `_init`).
#[derive(Default)]
struct PltMap {
    /// (file offset range, bytes of header before stub 0).
    sections: Vec<(std::ops::Range<u64>, u64)>,
    targets: Vec<String>,
}

impl PltMap {
    fn load(path: &str) -> PltMap {
        use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, RelocationTarget};
        // Through a read cache: only the headers, `.plt*`, the dynamic
        // symbols and relocations are read, not the whole binary.
        let Ok(handle) = std::fs::File::open(path) else {
            return PltMap::default();
        };
        let cache = object::ReadCache::new(handle);
        let Ok(file) = object::File::parse(&cache) else {
            return PltMap::default();
        };
        let mut map = PltMap::default();
        for (name, header) in [(".plt", 16), (".plt.sec", 0)] {
            if let Some((start, size)) = file.section_by_name(name).and_then(|s| s.file_range()) {
                map.sections.push((start..start + size, header));
            }
        }
        let symbols = file.dynamic_symbol_table();
        if let (Some(relocations), Some(symbols)) = (file.dynamic_relocations(), symbols) {
            for (_, relocation) in relocations {
                let object::RelocationFlags::Elf { r_type } = relocation.flags() else {
                    continue;
                };
                if r_type != object::elf::R_X86_64_JUMP_SLOT {
                    continue;
                }
                let name = match relocation.target() {
                    RelocationTarget::Symbol(index) => symbols
                        .symbol_by_index(index)
                        .ok()
                        .and_then(|s| s.name().ok().map(str::to_owned))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                map.targets.push(name);
            }
        }
        if file.section_by_name(".plt.sec").is_some() {
            // With IBT, `.plt` holds only the lazy-binding trampolines.
            map.sections.retain(|(_, header)| *header == 0);
        }
        map
    }

    fn name(&self, offset: u64) -> Option<String> {
        let (range, header) = self.sections.iter().find(|(r, _)| r.contains(&offset))?;
        let index = offset.checked_sub(range.start + header)? / 16;
        match self.targets.get(index as usize) {
            Some(target) if !target.is_empty() => Some(format!("{target}@plt")),
            _ => Some("[plt]".to_owned()),
        }
    }
}

fn is_file(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//anon")
}

/// A frame for an address without a symbol: its binary and offset.
fn unknown_frame(profile: &mut Profile, location: &Location) -> FrameId {
    match location {
        Location::File { path, offset } => {
            let binary = profile.intern_str(path);
            profile.intern_frame(Frame {
                binary,
                address: *offset,
                ..Frame::default()
            })
        }
        Location::Jit { name, addr } => {
            let function = profile.intern_str(name);
            let binary = profile.intern_str("[jit]");
            profile.intern_frame(Frame {
                function,
                binary,
                address: *addr,
                ..Frame::default()
            })
        }
        Location::Unknown(addr) => profile.intern_frame(Frame {
            address: *addr,
            ..Frame::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_follow_fork_and_exec() {
        let mut maps = Maps::default();
        maps.mmap(10, 0x1000, 0x1000, 0x5000, "/bin/a");
        assert_eq!(
            maps.locate(10, 0x1010),
            Location::File {
                path: "/bin/a".into(),
                offset: 0x5010
            }
        );
        assert_eq!(maps.locate(10, 0x2000), Location::Unknown(0x2000));
        maps.fork(11, 10);
        assert!(matches!(maps.locate(11, 0x1010), Location::File { .. }));
        maps.exec(11);
        assert_eq!(maps.locate(11, 0x1010), Location::Unknown(0x1010));
        maps.mmap(10, 0x1000, 0x800, 0, "/bin/b");
        assert_eq!(
            maps.locate(10, 0x1010),
            Location::File {
                path: "/bin/b".into(),
                offset: 0x10
            }
        );
    }

    #[test]
    fn ten_thousand_mappings_and_replacements() {
        let mut maps = Maps::default();
        for i in 0..10_000u64 {
            maps.mmap(
                1,
                0x10_0000 + i * 0x2000,
                0x1000,
                i * 0x1000,
                &format!("/lib/l{}.so", i % 100),
            );
        }
        assert_eq!(maps.entries(1).len(), 10_000);
        let addr = 0x10_0000 + 7_777 * 0x2000 + 0x10;
        assert_eq!(
            maps.locate(1, addr),
            Location::File {
                path: "/lib/l77.so".into(),
                offset: 7_777 * 0x1000 + 0x10
            }
        );
        assert_eq!(
            maps.locate(1, addr + 0x1000),
            Location::Unknown(addr + 0x1000),
            "in a gap"
        );
        // A mapping over the middle of an old one replaces it.
        maps.mmap(1, 0x10_0000 + 0x800, 0x2000, 0, "/bin/new");
        assert!(
            matches!(maps.locate(1, 0x10_0000 + 0x10), Location::Unknown(_)),
            "the old one is gone"
        );
        assert_eq!(
            maps.locate(1, 0x10_0000 + 0x900),
            Location::File {
                path: "/bin/new".into(),
                offset: 0x100
            }
        );
        assert_eq!(maps.entries(1).len(), 10_000 - 2 + 1);
    }

    #[test]
    fn jit_code_is_named_from_the_perf_map() {
        let pid = 4_000_000 + std::process::id() % 100_000; // no such process
        let path = format!("/tmp/perf-{pid}.map");
        std::fs::write(
            &path,
            "7f0000001000 100 LazyCompile:~handler app.js:10\n0x7f0000002000 0x20 stub\n",
        )
        .unwrap();
        let mut maps = Maps::default();
        maps.mmap(pid, 0x7f00_0000_0000, 0x10_0000, 0, "//anon");
        let named = maps.locate_with_jit(pid, 0x7f00_0000_1010);
        let other = maps.locate_with_jit(pid, 0x7f00_0000_2010);
        let outside = maps.locate_with_jit(pid, 0x7f00_0000_3000);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            named,
            Location::Jit {
                name: "LazyCompile:~handler app.js:10".into(),
                addr: 0x7f00_0000_1010
            }
        );
        assert_eq!(
            other,
            Location::Jit {
                name: "stub".into(),
                addr: 0x7f00_0000_2010
            }
        );
        assert!(matches!(outside, Location::File { .. }), "{outside:?}");
        let mut profile = Profile::default();
        let mut resolver = Resolver::default();
        resolver.prepare(&mut profile, [named.clone()]);
        let frames = resolver.frames(&named);
        assert_eq!(profile.frame_name(frames[0]), "LazyCompile:~handler app.js:10");
    }

    #[test]
    fn symbolizes_this_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();
        // Find our own mapping of the test binary and a code address in it.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| l.ends_with(exe) && l.contains("r-xp"))
            .unwrap();
        let mut parts = line.split_whitespace();
        let range = parts.next().unwrap();
        let pgoff = u64::from_str_radix(parts.nth(1).unwrap(), 16).unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut m = Maps::default();
        m.mmap(1, start, end - start, pgoff, exe);
        let addr = symbolizes_this_test_binary as *const () as usize as u64;
        let location = m.locate(1, addr);
        let mut profile = Profile::default();
        let mut resolver = Resolver::default();
        resolver.prepare(&mut profile, [location.clone()]);
        let frames = resolver.frames(&location);
        let names: Vec<String> = frames
            .iter()
            .map(|&f| profile.frame_name(f).into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.contains("symbolizes_this_test_binary")),
            "{names:?}"
        );
        // The next profile (the agent's next interval) has its own ids:
        // frames cached for the first would name the wrong function, or
        // be out of its bounds.
        let mut next = Profile::default();
        next.intern_str("something interned first");
        let kept = resolver.symbolized();
        resolver.forget_frames();
        resolver.prepare(&mut next, [location.clone()]);
        assert_eq!(
            resolver.symbolized(),
            kept,
            "symbols are kept, not looked up again"
        );
        let names: Vec<String> = resolver
            .frames(&location)
            .iter()
            .map(|&f| next.frame_name(f).into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.contains("symbolizes_this_test_binary")),
            "{names:?}"
        );
    }
}

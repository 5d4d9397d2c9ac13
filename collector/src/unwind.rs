//! DWARF unwinding of copied user stacks with framehop, for code built
//! without frame pointers: `.eh_frame` (with `.eh_frame_hdr`) and
//! `.debug_frame` of each mapped ELF file, read once per file.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection, ObjectSegment};

use crate::symbolize::Maps;

type Data = Arc<[u8]>;

/// The unwind tables and load segments of one ELF file.
struct ElfUnwindInfo {
    text_svma: Option<Range<u64>>,
    text: Option<Data>,
    eh_frame_svma: Option<Range<u64>>,
    eh_frame: Option<Data>,
    eh_frame_hdr_svma: Option<Range<u64>>,
    eh_frame_hdr: Option<Data>,
    debug_frame: Option<Data>,
    /// (file offset, file size, virtual address) of each executable load segment.
    segments: Vec<(u64, u64, u64)>,
}

impl ElfUnwindInfo {
    fn load(path: &str) -> Option<ElfUnwindInfo> {
        let bytes = std::fs::read(path).ok()?;
        let file = object::File::parse(&*bytes).ok()?;
        let section = |name: &str| -> (Option<Range<u64>>, Option<Data>) {
            match file.section_by_name(name) {
                Some(s) => {
                    let range = s.address()..s.address() + s.size();
                    let data = s.uncompressed_data().ok().map(|d| Data::from(&*d));
                    (Some(range), data)
                }
                None => (None, None),
            }
        };
        let (text_svma, text) = section(".text");
        let (eh_frame_svma, eh_frame) = section(".eh_frame");
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr");
        let (_, debug_frame) = section(".debug_frame");
        let segments = file
            .segments()
            .filter(|s| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0))
            .map(|s| {
                let (offset, size) = s.file_range();
                (offset, size, s.address())
            })
            .collect();
        Some(ElfUnwindInfo {
            text_svma,
            text,
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr_svma,
            eh_frame_hdr,
            debug_frame,
            segments,
        })
    }

    /// How far the file was moved when mapped: `start` maps file offset
    /// `pgoff` (page-aligned, so it may lie a little before the executable
    /// segment's own offset: its svma is `vaddr - (offset - pgoff)`).
    fn bias(&self, start: u64, pgoff: u64) -> Option<u64> {
        const PAGE: u64 = 4096;
        let &(offset, _, vaddr) = self
            .segments
            .iter()
            .find(|&&(offset, size, _)| offset & !(PAGE - 1) <= pgoff && pgoff < offset + size.max(1))?;
        let svma = vaddr.wrapping_sub(offset.wrapping_sub(pgoff));
        Some(start.wrapping_sub(svma))
    }

    fn module(&self, path: &str, avma: Range<u64>, bias: u64) -> Module<Data> {
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: self.text_svma.clone(),
            text: self.text.clone(),
            eh_frame_svma: self.eh_frame_svma.clone(),
            eh_frame: self.eh_frame.clone(),
            eh_frame_hdr_svma: self.eh_frame_hdr_svma.clone(),
            eh_frame_hdr: self.eh_frame_hdr.clone(),
            debug_frame: self.debug_frame.clone(),
            ..Default::default()
        };
        Module::new(path.to_owned(), avma, bias, info)
    }
}

/// Unwinds samples of any process seen, keeping one framehop unwinder per
/// process, rebuilt when its mappings change.
#[derive(Default)]
pub struct DwarfUnwinder {
    files: HashMap<Arc<str>, Option<Arc<ElfUnwindInfo>>>,
    processes: HashMap<u32, UnwinderX86_64<Data>>,
    stale: HashSet<u32>,
    cache: Option<CacheX86_64>,
}

impl DwarfUnwinder {
    /// The mappings of `pid` changed (mmap, exec).
    pub fn invalidate(&mut self, pid: u32) {
        self.stale.insert(pid);
    }

    /// Walks the copied stack of one sample: instruction pointer first,
    /// then return addresses. `regs` are BP, SP, IP (perf's bit order).
    ///
    /// Returns the addresses and whether unwinding reached the outermost
    /// frame (rather than stopping on missing unwind tables or the end of
    /// the stack copy).
    pub fn unwind(&mut self, pid: u32, maps: &Maps, regs: &[u64], stack: &[u8]) -> (Vec<u64>, bool) {
        let &[bp, sp, ip] = regs else {
            return (Vec::new(), false);
        };
        if self.stale.remove(&pid) || !self.processes.contains_key(&pid) {
            let unwinder = self.build(pid, maps);
            self.processes.insert(pid, unwinder);
        }
        let Some(unwinder) = self.processes.get(&pid) else {
            return (Vec::new(), false);
        };
        let cache = self.cache.get_or_insert_with(CacheX86_64::new);
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let offset = addr.checked_sub(sp).ok_or(())? as usize;
            let bytes = stack.get(offset..offset + 8).ok_or(())?;
            Ok(u64::from_ne_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let mut frames = unwinder.iter_frames(ip, UnwindRegsX86_64::new(ip, sp, bp), cache, &mut read_stack);
        let mut out = Vec::new();
        let complete = loop {
            match frames.next() {
                Ok(Some(frame)) => out.push(match frame {
                    FrameAddress::InstructionPointer(a) => a,
                    FrameAddress::ReturnAddress(a) => a.get(),
                }),
                Ok(None) => break true,
                Err(_) => break false,
            }
            if out.len() >= 512 {
                break false;
            }
        };
        (out, complete)
    }

    fn build(&mut self, pid: u32, maps: &Maps) -> UnwinderX86_64<Data> {
        let mut unwinder = UnwinderX86_64::new();
        for (start, end, pgoff, path) in maps.entries(pid) {
            if !path.starts_with('/') {
                continue;
            }
            let info = self
                .files
                .entry(path.clone())
                .or_insert_with(|| ElfUnwindInfo::load(&path).map(Arc::new))
                .clone();
            let Some(info) = info else { continue };
            let Some(bias) = info.bias(start, pgoff) else {
                continue;
            };
            unwinder.add_module(info.module(&path, start..end, bias));
        }
        unwinder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_of_a_text_segment_that_does_not_start_on_a_page() {
        // As in a typical PIE: the executable LOAD segment sits at file
        // offset 0x13070 and address 0x14070; the kernel maps its page at
        // file offset 0x13000.
        let info = ElfUnwindInfo {
            text_svma: None,
            text: None,
            eh_frame_svma: None,
            eh_frame: None,
            eh_frame_hdr_svma: None,
            eh_frame_hdr: None,
            debug_frame: None,
            segments: vec![(0x13070, 0x3dc80, 0x14070)],
        };
        let start = 0x5555_5556_7000;
        assert_eq!(info.bias(start, 0x13000), Some(start - 0x14000));
        assert_eq!(
            info.bias(start, 0x60000),
            None,
            "outside every executable segment"
        );
    }
}

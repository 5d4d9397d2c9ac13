//! Reads of a process's memory (this one's or another's) that cannot
//! fault: through `process_vm_readv`, which copies what is mapped and
//! reports what is not (`EFAULT`) instead of crashing the process. The frames another
//! thread is changing while they are read can point anywhere: a stale
//! pointer costs a failed read, never the service.

#![allow(unsafe_code)]

/// Copies of a process's memory (for this process, its pid is taken at
/// creation: a child of `fork` makes its own).
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pid: libc::pid_t,
}

impl Memory {
    /// This process's memory.
    pub fn this_process() -> Memory {
        Memory {
            // SAFETY: getpid takes no arguments and cannot fail.
            pid: unsafe { libc::getpid() },
        }
    }

    /// The memory of process `pid` (reading it takes the right to
    /// ptrace it: root, or its user where `kernel.yama.ptrace_scope` is 0).
    pub fn of(pid: u32) -> Memory {
        Memory {
            pid: pid as libc::pid_t,
        }
    }

    /// The process read.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Copies `buf.len()` bytes at `addr`, or says why not: the `errno`
    /// of the copy (`EPERM`: not allowed to read that process; `ESRCH`:
    /// it is gone; `EFAULT`: not mapped).
    pub fn read_checked(&self, addr: usize, buf: &mut [u8]) -> std::io::Result<()> {
        let fault = || std::io::Error::from_raw_os_error(libc::EFAULT);
        if addr == 0 {
            return Err(fault());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`,
        // which we own; the remote range is only read, and a range that
        // is not mapped is an error, not a fault.
        let copied = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        match copied {
            -1 => Err(std::io::Error::last_os_error()),
            n if n == buf.len() as isize => Ok(()),
            _ => Err(fault()),
        }
    }

    /// Copies `buf.len()` bytes at `addr` into `buf`; false when any of
    /// them is not mapped.
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> bool {
        buf.is_empty() || self.read_checked(addr, buf).is_ok()
    }

    /// Copies several ranges in one call: each `(addr, len)` of `ranges`
    /// into consecutive slices of `buf` (which must hold their sum). How
    /// many ranges were copied whole, from the first: the copy stops at
    /// the first range that is not mapped.
    pub fn read_many(&self, ranges: &[(usize, usize)], buf: &mut [u8]) -> usize {
        let total: usize = ranges.iter().map(|&(_, len)| len).sum();
        assert!(buf.len() >= total, "read_many: {total} bytes into {}", buf.len());
        let mut done = 0;
        let mut offset = 0;
        // The kernel takes at most IOV_MAX (1024) ranges per call.
        for batch in ranges.chunks(1024) {
            let batch_len: usize = batch.iter().map(|&(_, len)| len).sum();
            let local = libc::iovec {
                iov_base: buf[offset..].as_mut_ptr().cast(),
                iov_len: batch_len,
            };
            let remote: Vec<libc::iovec> = batch
                .iter()
                .map(|&(addr, len)| libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: len,
                })
                .collect();
            // SAFETY: as in `read`: the kernel writes at most `batch_len`
            // bytes into `buf[offset..]`, which holds them.
            let copied = unsafe {
                libc::process_vm_readv(
                    self.pid,
                    &local,
                    1,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            let mut copied = usize::try_from(copied).unwrap_or(0);
            for &(_, len) in batch {
                if copied < len {
                    return done;
                }
                copied -= len;
                done += 1;
            }
            offset += batch_len;
        }
        done
    }

    /// The pointer-sized word at `addr`.
    pub fn word(&self, addr: usize) -> Option<usize> {
        let mut buf = [0u8; 8];
        self.read(addr, &mut buf).then(|| usize::from_ne_bytes(buf))
    }
}

/// The pointer-sized word at `offset` of `bytes` (0 past its end).
pub fn word_at(bytes: &[u8], offset: usize) -> usize {
    bytes
        .get(offset..offset + 8)
        .map_or(0, |b| usize::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
}

/// The 32-bit integer at `offset` of `bytes` (0 past its end).
pub fn i32_at(bytes: &[u8], offset: usize) -> i32 {
    bytes
        .get(offset..offset + 4)
        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_memory_is_copied_and_unmapped_memory_is_refused_not_faulted() {
        let memory = Memory::this_process();
        let data: Vec<u8> = (0..=255).collect();
        let mut copy = [0u8; 16];
        assert!(memory.read(data.as_ptr() as usize + 100, &mut copy));
        assert_eq!(copy[0], 100);
        assert_eq!(copy[15], 115);
        // Page zero and the top of the address space are never mapped.
        assert!(!memory.read(8, &mut copy));
        assert!(!memory.read(usize::MAX - 4096, &mut copy));
        assert_eq!(memory.word(0), None);
        let value: usize = 0xfeed_f00d;
        assert_eq!(memory.word(&value as *const usize as usize), Some(0xfeed_f00d));
    }

    #[test]
    fn several_ranges_come_in_one_copy_up_to_the_first_unmapped_one() {
        let memory = Memory::this_process();
        let a = [1u8; 8];
        let b = [2u8; 4];
        let base = |x: &[u8]| x.as_ptr() as usize;
        let mut buf = [0u8; 20];
        let ranges = [(base(&a), 8), (base(&b), 4), (base(&a), 8)];
        assert_eq!(memory.read_many(&ranges, &mut buf), 3);
        assert_eq!(&buf[..8], &[1; 8]);
        assert_eq!(&buf[8..12], &[2; 4]);
        assert_eq!(&buf[12..], &[1; 8]);
        let ranges = [(base(&a), 8), (16, 4), (base(&a), 8)];
        assert_eq!(memory.read_many(&ranges, &mut buf), 1);
        assert_eq!(word_at(&buf, 0), usize::from_ne_bytes([1; 8]));
        assert_eq!(word_at(&buf, 100), 0);
    }
}

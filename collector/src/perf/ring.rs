//! The perf ring buffer: one metadata page followed by 2^n data pages,
//! written by the kernel, read here.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};

use perf_event_open_sys as sys;

use crate::{Error, Result};

/// A mapped ring buffer and the event it belongs to.
pub struct Ring {
    fd: OwnedFd,
    base: *mut u8,
    map_len: usize,
    data_offset: usize,
    data_size: usize,
}

// SAFETY: the mapping is owned by this value; the kernel is the only other
// writer and synchronises through data_head/data_tail as documented.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps `2^pages_log2` data pages for the event `fd`.
    pub fn new(fd: OwnedFd, pages_log2: u32) -> Result<Ring> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let map_len = page * (1 + (1usize << pages_log2));
        // SAFETY: a fresh shared read-write mapping of the perf fd, as
        // perf_event_open(2) documents; the result is checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::Mmap(std::io::Error::last_os_error()));
        }
        let base = base.cast::<u8>();
        let meta = base.cast::<sys::bindings::perf_event_mmap_page>();
        // SAFETY: the first page is the kernel's perf_event_mmap_page.
        let (data_offset, data_size) = unsafe { ((*meta).data_offset as usize, (*meta).data_size as usize) };
        let (data_offset, data_size) = if data_size == 0 {
            (page, map_len - page) // kernels before 4.1 leave these 0
        } else {
            (data_offset, data_size)
        };
        Ok(Ring {
            fd,
            base,
            map_len,
            data_offset,
            data_size,
        })
    }

    /// The event's file descriptor (for `poll`).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Hands every complete record now in the buffer to `each`, then frees
    /// the space. Records that wrap around the end are copied whole.
    pub fn drain(&mut self, mut each: impl FnMut(&[u8])) {
        let meta = self.base.cast::<sys::bindings::perf_event_mmap_page>();
        // SAFETY: data_head is written by the kernel; a volatile read and an
        // acquire fence are the documented protocol before reading data.
        let head = unsafe { std::ptr::addr_of!((*meta).data_head).read_volatile() };
        fence(Ordering::Acquire);
        // SAFETY: data_tail is ours to read and write.
        let mut tail = unsafe { std::ptr::addr_of!((*meta).data_tail).read_volatile() };
        // SAFETY: data_offset..data_offset+data_size lies inside the mapping.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.data_offset), self.data_size) };
        let mut record = Vec::new();
        while tail < head {
            let start = (tail % self.data_size as u64) as usize;
            let size_at = |i: usize| data[(start + i) % self.data_size];
            let size = u16::from_ne_bytes([size_at(6), size_at(7)]) as usize;
            if size < 8 || tail + size as u64 > head {
                break; // corrupt or incomplete: stop here, the rest is lost
            }
            record.clear();
            if start + size <= self.data_size {
                record.extend_from_slice(&data[start..start + size]);
            } else {
                record.extend_from_slice(&data[start..]);
                record.extend_from_slice(&data[..size - (self.data_size - start)]);
            }
            each(&record);
            tail += size as u64;
        }
        fence(Ordering::Release);
        // SAFETY: publishing how far we read, after the reads (release fence).
        unsafe { std::ptr::addr_of_mut!((*meta).data_tail).write_volatile(tail) };
    }

    /// Stops the event (no more samples).
    pub fn disable(&self) {
        // SAFETY: a plain ioctl on a valid perf fd.
        unsafe { sys::ioctls::DISABLE(self.fd.as_raw_fd(), 0) };
    }
}

/// Sends the samples of event `fd` into `ring`'s buffer (same CPU).
pub fn redirect(fd: &OwnedFd, ring: &Ring) -> Result<()> {
    // SAFETY: a plain ioctl on two valid perf fds.
    let rc = unsafe { sys::ioctls::SET_OUTPUT(fd.as_raw_fd(), ring.fd.as_raw_fd()) };
    if rc < 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

//! Parsing the records the kernel writes into a perf ring buffer. Pure:
//! bytes in, records out; a truncated record is skipped, never a panic.

/// `PERF_RECORD_*` types we use.
const RECORD_MMAP: u32 = 1;
const RECORD_LOST: u32 = 2;
const RECORD_COMM: u32 = 3;
const RECORD_EXIT: u32 = 4;
const RECORD_FORK: u32 = 7;
const RECORD_SAMPLE: u32 = 9;
const RECORD_MMAP2: u32 = 10;
/// `PERF_RECORD_MISC_COMM_EXEC`: the COMM record of an `exec`.
const MISC_COMM_EXEC: u16 = 1 << 13;
/// `PERF_RECORD_MISC_MMAP_BUILD_ID`: MMAP2 carries a build id, not inode data.
const MISC_MMAP_BUILD_ID: u16 = 1 << 14;
/// Callchain entries at or above this are context markers (`PERF_CONTEXT_*`).
pub const CONTEXT_MAX: u64 = (-4095i64) as u64;

/// One record from the ring buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A sample, with the sample format flameshift asks for
    /// (`IP | TID | TIME | PERIOD | CALLCHAIN`).
    Sample {
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// Timestamp (perf clock, ns).
        time: u64,
        /// Units this sample stands for.
        period: u64,
        /// Instruction pointers, leaf first, context markers removed.
        callchain: Vec<u64>,
        /// User registers (`sample_regs_user`, in bit order), if asked for.
        regs: Vec<u64>,
        /// A copy of the top of the user stack, if asked for.
        stack: Vec<u8>,
    },
    /// A new executable mapping.
    Mmap {
        /// Process id.
        pid: u32,
        /// Start address.
        start: u64,
        /// Length in bytes.
        len: u64,
        /// File offset of `start`.
        pgoff: u64,
        /// Path, or a pseudo name such as `[vdso]`.
        path: String,
    },
    /// A thread got a name (or the process exec'ed, when `exec`).
    Comm {
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// The name.
        comm: String,
        /// Whether this is an exec (the old mappings are gone).
        exec: bool,
    },
    /// A process or thread was created.
    Fork {
        /// New pid.
        pid: u32,
        /// Parent pid.
        ppid: u32,
        /// New tid.
        tid: u32,
    },
    /// A process or thread exited.
    Exit {
        /// Pid.
        pid: u32,
        /// Tid.
        tid: u32,
    },
    /// The kernel dropped this many records (the buffer was full).
    Lost {
        /// How many.
        count: u64,
    },
    /// Anything else.
    Other,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn u16(&mut self) -> Option<u16> {
        let v = self.bytes.get(self.at..self.at + 2)?;
        self.at += 2;
        Some(u16::from_ne_bytes(v.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        let v = self.bytes.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_ne_bytes(v.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        let v = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_ne_bytes(v.try_into().ok()?))
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        (self.at + n <= self.bytes.len()).then(|| self.at += n)
    }

    /// A NUL-terminated string (the rest of the record is padding).
    fn cstr(&mut self) -> Option<String> {
        let rest = self.bytes.get(self.at..)?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        self.at += end;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

/// When a record happened: a sample's own time, or for other records the
/// time in the `sample_id` trailer (`sample_id_all`, with `TID | TIME`
/// sampled, ends every record with pid, tid, time). 0 when unknown.
pub fn time(bytes: &[u8], record: &Record) -> u64 {
    match record {
        Record::Sample { time, .. } => *time,
        Record::Lost { .. } | Record::Other => 0,
        _ if bytes.len() >= 8 + 16 => {
            let tail = &bytes[bytes.len() - 8..];
            u64::from_ne_bytes(tail.try_into().unwrap_or([0; 8]))
        }
        _ => 0,
    }
}

/// What a sample record carries beyond `IP | TID | TIME | PERIOD | CALLCHAIN`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleFormat {
    /// How many registers `sample_regs_user` asks for (0: none).
    pub user_regs: usize,
    /// Whether `PERF_SAMPLE_STACK_USER` is set.
    pub user_stack: bool,
}

/// Parses one record: `bytes` is the whole record, header included.
pub fn parse(bytes: &[u8], format: SampleFormat) -> Option<Record> {
    let mut c = Cursor { bytes, at: 0 };
    let kind = c.u32()?;
    let misc = c.u16()?;
    let _size = c.u16()?;
    match kind {
        RECORD_SAMPLE => {
            let _ip = c.u64()?;
            let (pid, tid) = (c.u32()?, c.u32()?);
            let time = c.u64()?;
            let period = c.u64()?;
            let nr = c.u64()? as usize;
            if nr > (bytes.len() - c.at) / 8 {
                return None;
            }
            let mut callchain = Vec::with_capacity(nr);
            for _ in 0..nr {
                let ip = c.u64()?;
                if ip < CONTEXT_MAX {
                    callchain.push(ip);
                }
            }
            let mut regs = Vec::new();
            if format.user_regs > 0 {
                let abi = c.u64()?;
                if abi != 0 {
                    for _ in 0..format.user_regs {
                        regs.push(c.u64()?);
                    }
                }
            }
            let mut stack = Vec::new();
            if format.user_stack {
                let size = c.u64()? as usize;
                if size > 0 {
                    let data = bytes.get(c.at..c.at.checked_add(size)?)?;
                    c.skip(size)?;
                    let dyn_size = (c.u64()? as usize).min(size);
                    stack.extend_from_slice(&data[..dyn_size]);
                }
            }
            Some(Record::Sample {
                pid,
                tid,
                time,
                period,
                callchain,
                regs,
                stack,
            })
        }
        RECORD_MMAP | RECORD_MMAP2 => {
            let (pid, _tid) = (c.u32()?, c.u32()?);
            let (start, len, pgoff) = (c.u64()?, c.u64()?, c.u64()?);
            if kind == RECORD_MMAP2 {
                // maj, min, ino, ino_generation — or a build id of the same
                // size (24 bytes) when MISC_MMAP_BUILD_ID is set — then prot, flags.
                let _ = misc & MISC_MMAP_BUILD_ID;
                c.skip(24)?;
                c.skip(8)?;
            }
            let path = c.cstr()?;
            Some(Record::Mmap {
                pid,
                start,
                len,
                pgoff,
                path,
            })
        }
        RECORD_COMM => {
            let (pid, tid) = (c.u32()?, c.u32()?);
            let comm = c.cstr()?;
            Some(Record::Comm {
                pid,
                tid,
                comm,
                exec: misc & MISC_COMM_EXEC != 0,
            })
        }
        RECORD_FORK => {
            let (pid, ppid, tid, _ptid) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
            Some(Record::Fork { pid, ppid, tid })
        }
        RECORD_EXIT => {
            let (pid, _ppid, tid) = (c.u32()?, c.u32()?, c.u32()?);
            Some(Record::Exit { pid, tid })
        }
        RECORD_LOST => {
            let _id = c.u64()?;
            Some(Record::Lost { count: c.u64()? })
        }
        _ => Some(Record::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32, misc: u16, body: &[u8]) -> Vec<u8> {
        let size = (8 + body.len()) as u16;
        let mut out = kind.to_ne_bytes().to_vec();
        out.extend_from_slice(&misc.to_ne_bytes());
        out.extend_from_slice(&size.to_ne_bytes());
        out.extend_from_slice(body);
        out
    }

    fn u64s(values: &[u64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn sample_with_callchain_drops_context_markers() {
        let mut body = u64s(&[0x1000]);
        body.extend_from_slice(&7u32.to_ne_bytes());
        body.extend_from_slice(&8u32.to_ne_bytes());
        body.extend(u64s(&[99, 250_000, 3, (-512i64) as u64, 0x1000, 0x2000]));
        let record = parse(&header(RECORD_SAMPLE, 2, &body), SampleFormat::default()).unwrap();
        assert_eq!(
            record,
            Record::Sample {
                pid: 7,
                tid: 8,
                time: 99,
                period: 250_000,
                callchain: vec![0x1000, 0x2000],
                regs: vec![],
                stack: vec![],
            }
        );
        // The same sample with registers and a stack copy after the callchain.
        body.extend(u64s(&[2, 0xb0, 0x5000, 0x1000, 16]));
        body.extend_from_slice(&[7u8; 16]);
        body.extend(u64s(&[12]));
        let format = SampleFormat {
            user_regs: 3,
            user_stack: true,
        };
        let Some(Record::Sample { regs, stack, .. }) = parse(&header(RECORD_SAMPLE, 2, &body), format) else {
            panic!("a sample")
        };
        assert_eq!(regs, vec![0xb0, 0x5000, 0x1000]);
        assert_eq!(stack, vec![7u8; 12], "only dyn_size bytes are valid");
    }

    #[test]
    fn truncated_sample_is_none_not_a_panic() {
        let mut body = u64s(&[0x1000]);
        body.extend_from_slice(&7u32.to_ne_bytes());
        body.extend_from_slice(&8u32.to_ne_bytes());
        body.extend(u64s(&[99, 1, 1_000_000]));
        assert_eq!(
            parse(&header(RECORD_SAMPLE, 0, &body), SampleFormat::default()),
            None
        );
        assert_eq!(parse(&[1, 2, 3], SampleFormat::default()), None);
        // A stack size larger than the record.
        let mut body = u64s(&[0x1000]);
        body.extend_from_slice(&7u32.to_ne_bytes());
        body.extend_from_slice(&8u32.to_ne_bytes());
        body.extend(u64s(&[99, 1, 0, 0, u64::MAX]));
        let format = SampleFormat {
            user_regs: 3,
            user_stack: true,
        };
        assert_eq!(parse(&header(RECORD_SAMPLE, 0, &body), format), None);
    }

    #[test]
    fn mmap2_and_comm_exec() {
        let mut body = 5u32.to_ne_bytes().to_vec();
        body.extend_from_slice(&5u32.to_ne_bytes());
        body.extend(u64s(&[0x400000, 0x1000, 0x2000, 0, 0, 0, 0]));
        body.extend_from_slice(b"/usr/bin/x\0\0\0\0\0\0");
        let record = parse(&header(RECORD_MMAP2, 0, &body), SampleFormat::default()).unwrap();
        assert_eq!(
            record,
            Record::Mmap {
                pid: 5,
                start: 0x400000,
                len: 0x1000,
                pgoff: 0x2000,
                path: "/usr/bin/x".into()
            }
        );
        let mut body = 5u32.to_ne_bytes().to_vec();
        body.extend_from_slice(&6u32.to_ne_bytes());
        body.extend_from_slice(b"worker\0\0");
        let record = parse(
            &header(RECORD_COMM, MISC_COMM_EXEC, &body),
            SampleFormat::default(),
        )
        .unwrap();
        assert_eq!(
            record,
            Record::Comm {
                pid: 5,
                tid: 6,
                comm: "worker".into(),
                exec: true
            }
        );
    }
}

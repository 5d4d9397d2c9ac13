//! `flameshift record -- CMD`: sample a command and its children with perf
//! events, then build a profile.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use flameshift_profile::{LabelSetId, Profile, SampleType};

use crate::perf::event::{self, EventChoice, EventKind, EventOptions, Rate};
use crate::perf::records::{self, Record};
use crate::perf::ring::Ring;
use crate::symbolize::{Location, Maps, Resolver};
use crate::{Error, Result};

/// How to record.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Which event.
    pub event: EventChoice,
    /// How often.
    pub rate: Rate,
    /// Ring buffer size per CPU, as log2 of pages (default 7: 512 KiB).
    pub pages_log2: u32,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            event: EventChoice::Auto,
            rate: Rate::Frequency(99),
            pages_log2: 7,
        }
    }
}

/// A finished recording.
#[derive(Debug)]
pub struct Recording {
    /// The profile: `samples/count` and the event's unit.
    pub profile: Profile,
    /// How the command ended.
    pub status: ExitStatus,
    /// The event that was used.
    pub event: EventKind,
    /// Records the kernel dropped because a buffer was full.
    pub lost: u64,
}

/// One sample, its addresses already located in the mappings of that moment.
struct RawSample {
    pid: u32,
    tid: u32,
    period: u64,
    stack: Vec<Location>,
}

/// Every record of every CPU's buffer, replayed in time order at the end:
/// each CPU's buffer is in order, but an mmap on one CPU may be read after
/// samples on another that need it.
#[derive(Default)]
struct Collector {
    records: Vec<(u64, Record)>,
    maps: Maps,
    comms: HashMap<u32, String>,
    samples: Vec<RawSample>,
    lost: u64,
}

impl Collector {
    fn on_bytes(&mut self, bytes: &[u8]) {
        match records::parse(bytes) {
            Some(Record::Other) => {}
            Some(Record::Lost { count }) => self.lost += count,
            Some(record) => self.records.push((records::time(bytes, &record), record)),
            None => tracing::debug!(len = bytes.len(), "skipped a malformed perf record"),
        }
    }

    fn replay(&mut self) {
        let mut records = std::mem::take(&mut self.records);
        records.sort_by_key(|(time, _)| *time); // stable: equal times keep buffer order
        for (_, record) in records {
            self.on_record(record);
        }
    }

    fn on_record(&mut self, record: Record) {
        match record {
            Record::Sample {
                pid,
                tid,
                period,
                callchain,
                ..
            } => {
                let stack = callchain
                    .iter()
                    .enumerate()
                    // Callers' entries are return addresses: look one byte
                    // back, into the call instruction.
                    .map(|(i, &ip)| {
                        self.maps
                            .locate(pid, if i == 0 { ip } else { ip.saturating_sub(1) })
                    })
                    .collect();
                self.samples.push(RawSample {
                    pid,
                    tid,
                    period,
                    stack,
                });
            }
            Record::Mmap {
                pid,
                start,
                len,
                pgoff,
                path,
            } => self.maps.mmap(pid, start, len, pgoff, &path),
            Record::Comm { pid, tid, comm, exec } => {
                if exec {
                    self.maps.exec(pid);
                }
                self.comms.insert(tid, comm);
            }
            Record::Fork { pid, ppid, tid } => {
                self.maps.fork(pid, ppid);
                if let Some(comm) = self.comms.get(&ppid).cloned() {
                    self.comms.entry(tid).or_insert(comm);
                }
            }
            Record::Lost { .. } | Record::Exit { .. } | Record::Other => {}
        }
    }

    fn into_profile(mut self, kind: EventKind, comments: Vec<String>) -> Profile {
        self.replay();
        let mut profile = Profile::new(vec![SampleType::new("samples", "count"), kind.sample_type()]);
        profile.comments = comments;
        let mut resolver = Resolver::default();
        resolver.prepare(
            &mut profile,
            self.samples.iter().flat_map(|s| s.stack.iter().cloned()),
        );
        let mut labels: HashMap<(u32, u32), LabelSetId> = HashMap::new();
        let mut frames = Vec::new();
        for sample in &self.samples {
            frames.clear();
            for location in sample.stack.iter().rev() {
                frames.extend_from_slice(resolver.frames(location));
            }
            let stack = profile.intern_stack(&frames);
            let label_set = *labels.entry((sample.pid, sample.tid)).or_insert_with(|| {
                let mut set = vec![
                    profile.num_label("pid", i64::from(sample.pid), ""),
                    profile.num_label("tid", i64::from(sample.tid), ""),
                ];
                if let Some(comm) = self.comms.get(&sample.tid) {
                    set.push(profile.str_label("thread", comm));
                }
                profile.intern_labels(set)
            });
            profile.push_sample(stack, label_set, &[1, sample.period as i64]);
        }
        profile
    }
}

/// Runs `command` and samples it (and every thread and child process it
/// starts) until it exits.
pub fn record(command: &[OsString], options: &RecordOptions) -> Result<Recording> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::Spawn {
            command: String::new(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command given"),
        });
    };
    let cpus = online_cpus();
    // The events follow this thread's future children and switch on when
    // the child calls exec: nothing of flameshift itself is recorded.
    let event_options = |kind| EventOptions {
        kind,
        rate: options.rate,
        inherit: true,
        enable_on_exec: true,
    };
    let (kind, first) = event::choose(options.event, |kind| {
        event::open(&event_options(kind), 0, cpus[0])
    })?;
    let mut rings = vec![Ring::new(first, options.pages_log2)?];
    for &cpu in &cpus[1..] {
        rings.push(Ring::new(
            event::open(&event_options(kind), 0, cpu)?,
            options.pages_log2,
        )?);
    }
    let command_line = command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|error| Error::Spawn {
            command: command_line.clone(),
            error,
        })?;
    let mut collector = Collector::default();
    let status = loop {
        wait_readable(&rings, Duration::from_millis(100));
        for ring in &mut rings {
            ring.drain(|bytes| collector.on_bytes(bytes));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
    };
    for ring in &mut rings {
        ring.disable();
        ring.drain(|bytes| collector.on_bytes(bytes));
    }
    if collector.lost > 0 {
        tracing::warn!(
            lost = collector.lost,
            "the kernel dropped records; raise the buffer size or lower -F"
        );
    }
    let rate = match options.rate {
        Rate::Frequency(hz) => format!("{hz} Hz"),
        Rate::Period(p) => format!("every {p}"),
    };
    let mut comments = vec![
        format!("flameshift record -- {command_line}"),
        format!(
            "event: {} ({rate}), user-space frame-pointer callchains",
            kind.name()
        ),
    ];
    if collector.lost > 0 {
        comments.push(format!("lost {} records", collector.lost));
    }
    let lost = collector.lost;
    let mut profile = collector.into_profile(kind, comments);
    profile.default_sample_type = Some(1);
    if let Rate::Period(p) = options.rate {
        profile.period = Some(flameshift_profile::Period {
            kind: kind.sample_type(),
            value: p as i64,
        });
    }
    Ok(Recording {
        profile,
        status,
        event: kind,
        lost,
    })
}

/// The CPUs that are online, from `/sys/devices/system/cpu/online`
/// (`0-3,5`), falling back to `0..available_parallelism`.
fn online_cpus() -> Vec<i32> {
    let parsed = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| {
            let mut cpus = Vec::new();
            for part in text.trim().split(',') {
                match part.split_once('-') {
                    Some((a, b)) => cpus.extend(a.parse::<i32>().ok()?..=b.parse::<i32>().ok()?),
                    None => cpus.push(part.parse().ok()?),
                }
            }
            (!cpus.is_empty()).then_some(cpus)
        });
    parsed.unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n as i32).collect()
    })
}

/// Waits until some ring has data or `timeout` passes.
fn wait_readable(rings: &[Ring], timeout: Duration) {
    let mut fds: Vec<libc::pollfd> = rings
        .iter()
        .map(|r| libc::pollfd {
            fd: r.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    poll(&mut fds, timeout);
}

#[allow(unsafe_code)]
fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the
    // length passed; poll only writes `revents`.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            timeout.as_millis() as i32,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_cpus_are_listed() {
        let cpus = online_cpus();
        assert!(!cpus.is_empty());
        assert_eq!(cpus[0], 0);
    }
}

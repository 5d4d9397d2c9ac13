//! A location's source lines → frames: the step pprof and OTLP share.
//! Both list a location's lines innermost first; the last line is the
//! function the others were inlined into.

use crate::{Frame, FrameId, Profile, StrId};

/// One source line of a location, its strings already interned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceLine {
    /// The function's name ([`StrId::EMPTY`] when only the system name
    /// is known).
    pub name: StrId,
    /// The function's system (mangled) name.
    pub system_name: StrId,
    /// Its source file.
    pub file: StrId,
    /// The line number (0 or negative: unknown).
    pub line: i64,
}

/// The frames of one location, root first: the inlining function, then
/// what was inlined into it. A location without lines is one frame of
/// its address.
pub(crate) fn location_frames(
    profile: &mut Profile,
    binary: StrId,
    address: u64,
    lines: &[SourceLine],
) -> Vec<FrameId> {
    if lines.is_empty() {
        return vec![profile.intern_frame(Frame {
            binary,
            address,
            ..Frame::default()
        })];
    }
    lines
        .iter()
        .enumerate()
        .rev()
        .map(|(j, line)| {
            let function = if line.name != StrId::EMPTY {
                line.name
            } else {
                line.system_name
            };
            profile.intern_frame(Frame {
                function,
                file: line.file,
                line: u32::try_from(line.line).unwrap_or(0),
                binary,
                address,
                inlined: j + 1 != lines.len(),
            })
        })
        .collect()
}

//! Where a command's output goes: stdout, or a file replaced whole.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Streams the output to stdout, or to a temporary file beside `path`
/// that is renamed over it at the end: a failed render leaves no
/// half-written file behind, and an existing file is replaced whole.
/// Paths that exist but are not regular files (`/dev/null`, a FIFO) are
/// written in place: renaming over them would replace the device.
pub fn write_output(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        render(&mut stdout)?;
        stdout.flush().context("writing to stdout")?;
        return Ok(());
    }
    let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
    if special {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        render(&mut out)?;
        out.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, temp);
    render(&mut out)?;
    let temp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    // A temporary file is private (0600); the output is an ordinary file.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "wrote");
    Ok(())
}

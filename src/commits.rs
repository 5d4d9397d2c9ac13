//! The commits of a range `BASE..HEAD`, read with git, and what each
//! left in HEAD's source: the lines `git blame BASE..HEAD` attributes to
//! it and the files it touched (`gate --commits`).

use std::path::Path;
use std::process::Command;

use flameshift_detect::suspects::{Commit, FileChange};

/// What was read, and what the reader should know about it.
#[derive(Debug, Default)]
pub struct RangeChanges {
    /// The commits, oldest first (merges left out: their lines are
    /// their parents' commits').
    pub commits: Vec<Commit>,
    /// Caveats: a shallow clone, a base that is not an ancestor.
    pub notes: Vec<String>,
}

/// Runs git in `repo`; its stdout, or its stderr's first line as the error.
fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git ({e}); install git"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().next().unwrap_or("git failed").trim().to_owned())
    }
}

/// The files of the repository at `repo` (its index: `git ls-files`).
pub fn tracked_files(repo: &Path) -> Result<Vec<String>, String> {
    Ok(git(repo, &["ls-files"])?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The full SHA, author and title of `rev` in the repository at `repo`.
pub fn describe(repo: &Path, rev: &str) -> Result<(String, String, String), String> {
    let out = git(repo, &["log", "-1", "--format=%H%x1f%an <%ae>%x1f%s", rev, "--"])?;
    let mut fields = out.trim_end_matches('\n').splitn(3, '\u{1f}');
    match (fields.next(), fields.next(), fields.next()) {
        (Some(sha), Some(author), Some(title)) => Ok((sha.to_owned(), author.to_owned(), title.to_owned())),
        _ => Err(format!("git log did not describe {rev}")),
    }
}

/// The commits of `range` (`BASE..HEAD`) in the repository at `repo`.
pub fn read(repo: &Path, range: &str) -> Result<RangeChanges, String> {
    let (base, head) = range
        .split_once("..")
        .filter(|(b, h)| !b.is_empty() && !h.is_empty() && !h.starts_with('.'))
        .ok_or_else(|| format!("--commits {range:?}: expected BASE..HEAD (e.g. v1.2..HEAD)"))?;
    git(repo, &["rev-parse", "--git-dir"])
        .map_err(|e| format!("{} is not a git repository ({e}); use --repo DIR", repo.display()))?;
    for end in [base, head] {
        git(
            repo,
            &["rev-parse", "--verify", "--quiet", &format!("{end}^{{commit}}")],
        )
        .map_err(|_| format!("--commits {range}: {end} is not a commit of {}", repo.display()))?;
    }
    let mut notes = Vec::new();
    if git(repo, &["rev-parse", "--is-shallow-repository"]).is_ok_and(|s| s.trim() == "true") {
        notes.push("the repository is a shallow clone: commits beyond its depth are not seen (git fetch --unshallow)".to_owned());
    }
    if git(repo, &["merge-base", "--is-ancestor", base, head]).is_err() {
        notes.push(format!("{base} is not an ancestor of {head}: the commits are those reachable from {head} and not from {base}"));
    }
    // Commits and the files each touched: records split by RS, fields by US.
    let log = git(
        repo,
        &[
            "log",
            "--reverse",
            "--no-merges",
            "--format=%x1e%H%x1f%h%x1f%s%x1f%an <%ae>%x1f",
            "--name-only",
            range,
        ],
    )?;
    let mut commits: Vec<Commit> = log
        .split('\u{1e}')
        .filter_map(|record| {
            let mut fields = record.splitn(5, '\u{1f}');
            let (sha, short, title, author) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let files = fields
                .next()
                .unwrap_or("")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|path| FileChange {
                    path: path.to_owned(),
                    lines: Vec::new(),
                })
                .collect();
            Some(Commit {
                sha: sha.trim().to_owned(),
                short: short.to_owned(),
                title: title.to_owned(),
                author: author.to_owned(),
                files,
            })
        })
        .collect();
    // The lines of HEAD each commit last changed, file by file.
    let changed = git(repo, &["diff", "--name-only", base, head])?;
    for path in changed.lines().map(str::trim).filter(|p| !p.is_empty()) {
        let Ok(blame) = git(repo, &["blame", "--porcelain", range, "--", path]) else {
            continue; // deleted in HEAD
        };
        for (sha, line) in blamed_lines(&blame) {
            let Some(commit) = commits.iter_mut().find(|c| c.sha == sha) else {
                continue; // older than the range
            };
            let Some(file) = commit.files.iter_mut().find(|f| f.path == path) else {
                continue;
            };
            match file.lines.last_mut() {
                Some((_, last)) if *last + 1 == line => *last = line,
                _ => file.lines.push((line, line)),
            }
        }
    }
    for commit in &mut commits {
        for file in &mut commit.files {
            file.lines.sort_unstable();
        }
    }
    Ok(RangeChanges { commits, notes })
}

/// Each line of `git blame --porcelain` output: the commit it is
/// attributed to and its line number in the blamed version, in order.
fn blamed_lines(porcelain: &str) -> Vec<(&str, u32)> {
    porcelain
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let sha = parts.next()?;
            if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let _original = parts.next()?;
            let final_line = parts.next()?.parse().ok()?;
            Some((sha, final_line))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_headers_give_each_line_its_commit() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let text = format!(
            "{a} 1 1 2\nauthor A\nboundary\nfilename x.c\n\tint x;\n{a} 2 2\n\tint y;\n{b} 3 3 1\nauthor B\nfilename x.c\n\treturn 0;\n"
        );
        assert_eq!(
            blamed_lines(&text),
            [(a.as_str(), 1), (a.as_str(), 2), (b.as_str(), 3)]
        );
    }

    #[test]
    fn a_range_that_is_not_in_the_repository_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let err = read(dir.path(), "v1..v2").unwrap_err();
        assert!(err.contains("is not a git repository"), "{err}");
        let err = read(dir.path(), "v1").unwrap_err();
        assert!(err.contains("expected BASE..HEAD"), "{err}");
    }
}

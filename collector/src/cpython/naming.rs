//! How a Python frame is named in profiles, by the Python agent and by
//! `record`/`attach` alike.

/// A Python function's name in profiles: its qualified name
/// (`co_qualname` on 3.11+, else `co_name`) and its module's file as
/// the import path finds it, `score_items (shop/app.py)`. Qualified
/// names alone collide across modules (every Django app has an `index`),
/// and a line number would split a function at each edit: the line
/// stays in the frame's own field.
pub fn frame_name(qualname: &str, file: &str) -> String {
    format!("{qualname} ({file})")
}

/// `file` relative to the longest of `import_paths` (`sys.path`) it lies
/// under, else its last component: what `import` calls it.
pub fn short_file<'a>(file: &'a str, import_paths: &[String]) -> &'a str {
    import_paths
        .iter()
        .filter(|p| !p.is_empty())
        .filter_map(|p| file.strip_prefix(p.as_str())?.strip_prefix('/'))
        .min_by_key(|rest| rest.len())
        .unwrap_or_else(|| file.rsplit('/').next().unwrap_or(file))
}

/// What `import` likely calls `file` in a process whose `sys.path` is
/// not known (`record`, `attach`): the part after `site-packages/`,
/// `dist-packages/` or the standard library's `lib/python3.N/`, else
/// relative to `cwd` (the script's directory, usually), else its last
/// component.
pub fn guess_short_file<'a>(file: &'a str, cwd: &str) -> &'a str {
    for marker in ["/site-packages/", "/dist-packages/"] {
        if let Some((_, rest)) = file.rsplit_once(marker) {
            return rest;
        }
    }
    if let Some(at) = file.find("/lib/python3.") {
        let after = &file[at + "/lib/python3.".len()..];
        if let Some((minor, rest)) = after.split_once('/') {
            if minor.bytes().all(|b| b.is_ascii_digit()) {
                return rest;
            }
        }
    }
    short_file(file, &[cwd.to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_as_imports_name_them() {
        let paths = vec![
            String::new(),
            "/srv/shop".to_owned(),
            "/usr/lib/python3.11".to_owned(),
            "/usr/lib/python3.11/site-packages".to_owned(),
        ];
        assert_eq!(short_file("/srv/shop/orders/views.py", &paths), "orders/views.py");
        assert_eq!(
            short_file("/usr/lib/python3.11/site-packages/flask/app.py", &paths),
            "flask/app.py"
        );
        assert_eq!(
            short_file("/usr/lib/python3.11/json/decoder.py", &paths),
            "json/decoder.py"
        );
        assert_eq!(short_file("/elsewhere/tool.py", &paths), "tool.py");
        assert_eq!(
            short_file("<frozen importlib._bootstrap>", &paths),
            "<frozen importlib._bootstrap>"
        );
        assert_eq!(
            frame_name("Feed.score", "shop/app.py"),
            "Feed.score (shop/app.py)"
        );
    }

    #[test]
    fn another_process_files_are_named_without_its_import_path() {
        let cwd = "/srv/shop";
        assert_eq!(
            guess_short_file("/root/.pyenv/versions/3.12.1/lib/python3.12/json/encoder.py", cwd),
            "json/encoder.py"
        );
        assert_eq!(
            guess_short_file("/venv/lib/python3.12/site-packages/flask/app.py", cwd),
            "flask/app.py"
        );
        assert_eq!(
            guess_short_file("/usr/lib/python3/dist-packages/yaml/x.py", cwd),
            "yaml/x.py"
        );
        assert_eq!(
            guess_short_file("/srv/shop/orders/views.py", cwd),
            "orders/views.py"
        );
        assert_eq!(guess_short_file("/opt/lib/python3.x/tool.py", cwd), "tool.py");
        assert_eq!(guess_short_file("<string>", cwd), "<string>");
    }
}

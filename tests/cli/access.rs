//! `serve --auth FILE` as a process: `flameshift token new` makes an
//! entry that lets its token in with its scope; a broken file stops
//! `serve` at start (exit 2, the file and the problem named); SIGHUP
//! reads the file again, and a file that does not load keeps the old
//! tokens; refused requests are logged once per token and route, by the
//! token's name, never the token.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flameshift_client::http;

use crate::serve::profile_body;
use crate::serve_process::{address, KillOnDrop};

/// `flameshift token new ARGS`: the token and the access file's entry.
fn new_token(args: &[&str]) -> (String, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["token", "new"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    (lines[0].to_owned(), serde_json::from_str(lines[1]).unwrap())
}

fn write_access_file(path: &Path, entries: &[&serde_json::Value]) {
    std::fs::write(path, serde_json::json!({ "tokens": entries }).to_string()).unwrap();
}

/// A `serve --auth FILE` whose stderr lines are kept.
struct Served {
    child: KillOnDrop,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn serve_with(dir: &Path, auth: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["serve", "--listen", "127.0.0.1:0", "--auth"])
        .arg(auth)
        .arg("--data")
        .arg(dir.join("data"))
        .env("FLAMESHIFT_LOG", "warn,flameshift_analyzer=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, lines) = address(&mut child, "flameshift: listening on ");
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    Served {
        child: KillOnDrop(child),
        url,
        log,
    }
}

impl Served {
    fn status(&self, post: bool, path: &str, token: &str) -> u16 {
        let url = format!("{}{path}", self.url);
        let bearer = format!("Bearer {token}");
        let auth = [("Authorization", bearer.as_str())];
        let timeout = Duration::from_secs(10);
        let response = if post {
            http::post(&url, &auth, &profile_body("leaf"), timeout)
        } else {
            http::get(&url, &auth, timeout)
        };
        response.unwrap().status
    }

    fn upload(&self, token: &str) -> u16 {
        self.status(true, "/api/v1/profiles?service=shop&deploy=v1", token)
    }

    fn services(&self, token: &str) -> u16 {
        self.status(false, "/api/v1/services", token)
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (up to 10 s) for a log line containing `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {text:?}: {:#?}", self.log.lock().unwrap());
    }

    fn log_lines(&self, text: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .cloned()
            .collect()
    }
}

#[test]
fn token_new_entries_let_their_tokens_in_and_sighup_reloads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    let (agent, agent_entry) = new_token(&["--name", "agents", "--scope", "ingest"]);
    assert_eq!(agent_entry["scopes"], serde_json::json!(["ingest"]));
    assert!(
        !agent_entry.to_string().contains(&agent),
        "the entry holds no token"
    );
    let (reader, reader_entry) = new_token(&["--name", "team", "--scope", "read", "--service", "shop*"]);
    assert_eq!(reader_entry["services"], serde_json::json!(["shop*"]));
    write_access_file(&auth, &[&agent_entry]);
    let served = serve_with(dir.path(), &auth);
    assert_eq!(served.upload(&agent), 200);
    assert_eq!(served.services(&agent), 403, "ingest only");
    assert_eq!(served.services(&reader), 401, "not in the file yet");

    // A new file: the reader comes in, the agent goes.
    write_access_file(&auth, &[&reader_entry]);
    served.hangup();
    served.wait_for_log("access file reloaded");
    assert_eq!(served.services(&reader), 200);
    assert_eq!(served.upload(&agent), 401);

    // A file that does not load: logged, and the tokens stay.
    std::fs::write(&auth, "{\"tokens\": [").unwrap();
    served.hangup();
    served.wait_for_log("access file not reloaded");
    assert_eq!(served.services(&reader), 200);
    let lines = served.log_lines("access file not reloaded");
    assert!(lines[0].contains("auth.json"), "{lines:?}");
}

#[test]
fn refusals_are_logged_once_a_minute_per_token_and_route_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    let (agent, entry) = new_token(&["--name", "agents", "--scope", "ingest", "--service", "shop"]);
    write_access_file(&auth, &[&entry]);
    let served = serve_with(dir.path(), &auth);
    for _ in 0..3 {
        assert_eq!(served.services(&agent), 403);
        assert_eq!(served.services("a-guess"), 401);
    }
    assert_eq!(
        served.status(true, "/api/v1/profiles?service=other&deploy=v1", &agent),
        403
    );
    served.wait_for_log("route=\"/api/v1/profiles\"");
    let refused = served.log_lines("request refused");
    let on_services: Vec<_> = refused
        .iter()
        .filter(|l| l.contains("route=\"/api/v1/services\""))
        .collect();
    assert_eq!(
        on_services.len(),
        2,
        "one line each for `agents` and the unknown token: {refused:#?}"
    );
    assert!(on_services
        .iter()
        .any(|l| l.contains("token=\"agents\"") && l.contains("status=403")));
    assert!(on_services
        .iter()
        .any(|l| l.contains("token=\"(unknown token)\"") && l.contains("status=401")));
    let all = served.log.lock().unwrap().join("\n");
    assert!(
        !all.contains(&agent) && !all.contains("a-guess"),
        "no token in the log: {all}"
    );
}

#[test]
fn a_broken_access_file_stops_serve_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    let cases = [
        (
            "{\"tokens\": [{\"name\": \"x\", \"sha256\": \"abc\", \"scopes\": [\"read\"]}]}",
            "token `x`: `sha256` must be 64 hex digits",
        ),
        ("not json", "not an access file"),
    ];
    for (text, expected) in cases {
        std::fs::write(&auth, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_flameshift"))
            .args(["serve", "--listen", "127.0.0.1:0", "--auth"])
            .arg(&auth)
            .arg("--data")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("access file {}", auth.display())) && err.contains(expected),
            "{err}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--auth",
            "/nonexistent/auth.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("access file /nonexistent/auth.json: No such file"));
}

#[test]
fn token_new_refuses_an_unknown_scope() {
    let out = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["token", "new", "--scope", "write"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope `write`"));
}

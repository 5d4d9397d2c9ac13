//! https end to end, with a CA and certificates made in the test:
//! `serve --tls-cert/--tls-key`; `record --analyzer https://…`, the agent
//! in a service, `regressions` and a webhook over https; the wrong CA, an
//! expired certificate, plain http to the TLS port and https to a plain
//! port each fail clearly with the profile kept; `HTTPS_PROXY` is
//! followed through a CONNECT proxy started by the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use super::serve::{address, start_serve, KillOnDrop};

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, as
/// PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str, expired: bool) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("flameshift test CA {name}"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

fn start_tls_serve(data: &Path, pki: &Pki, extra: &[&str]) -> (KillOnDrop, String) {
    let mut args = vec![
        "--tls-cert",
        pki.cert.to_str().unwrap(),
        "--tls-key",
        pki.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    start_serve(data, &args)
}

fn flameshift(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .current_dir(dir)
        .args(args)
        .env_remove("FLAMESHIFT_CA_CERT")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn record_args<'a>(analyzer: &'a str, deploy: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "record",
        "-F",
        "499",
        "--analyzer",
        analyzer,
        "--service",
        "tls",
        "--deploy",
        deploy,
    ];
    args.extend_from_slice(extra);
    args.extend([
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done",
    ]);
    args
}

/// The file a failed `record` names as kept, read back.
fn kept_profile(dir: &Path, out: &Output) -> flameshift_profile::Profile {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kept = stderr
        .split("the profile is kept in ")
        .nth(1)
        .unwrap_or_else(|| panic!("names the kept file: {stderr}"))
        .trim();
    flameshift_profile::format::read_path(&dir.join(kept), &Default::default()).unwrap()
}

/// Samples stored for deploy `deploy` of service `tls`, asked over https.
fn stored_samples(url: &str, ca: &Path, deploy: &str) -> i64 {
    let client = flameshift_client::http::Client::new(&flameshift_client::http::ClientOptions {
        ca_cert: Some(ca.to_owned()),
        ..Default::default()
    })
    .unwrap();
    let target = format!("{url}/api/v1/functions?service=tls&deploy={deploy}");
    let answer = client
        .send(&flameshift_client::http::Request::get(&target).headers(&[("Authorization", "Bearer s3cret")]))
        .unwrap();
    if answer.status == 404 {
        return 0;
    }
    assert_eq!(answer.status, 200, "{}", answer.text());
    let top: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    top["samples"].as_i64().unwrap()
}

#[test]
fn record_and_regressions_over_https_and_each_tls_mistake_is_clear_with_the_profile_kept() {
    let dir = tempfile::tempdir().unwrap();
    let good = make_pki(dir.path(), "good", false);
    let other = make_pki(dir.path(), "other", false);
    let (_server, url) = start_tls_serve(&dir.path().join("data"), &good, &["--token", "s3cret"]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let url = url.replace("127.0.0.1", "localhost");
    let token = [("FLAMESHIFT_TOKEN", "s3cret")];
    let ca = good.ca.to_str().unwrap();

    let out = flameshift(dir.path(), &record_args(&url, "v1", &["--ca-cert", ca]), &token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stored_samples(&url, &good.ca, "v1") > 10);
    // The CA from the environment, and the analyzer by its IP address.
    let by_ip = url.replace("localhost", "127.0.0.1");
    let out = flameshift(
        dir.path(),
        &record_args(&by_ip, "v2", &[]),
        &[("FLAMESHIFT_TOKEN", "s3cret"), ("FLAMESHIFT_CA_CERT", ca)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stored_samples(&url, &good.ca, "v2") > 10);

    // Not trusted: no CA, or another CA. Exit 2, the hint, the profile kept.
    for (deploy, extra) in [
        ("v3", vec![]),
        ("v4", vec!["--ca-cert", other.ca.to_str().unwrap()]),
    ] {
        let out = flameshift(dir.path(), &record_args(&url, deploy, &extra), &token);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("certificate") && stderr.contains("--ca-cert"),
            "{stderr}"
        );
        assert!(kept_profile(dir.path(), &out).total(0) > 10);
        assert_eq!(stored_samples(&url, &good.ca, deploy), 0, "nothing stored");
    }
    // Plain http to the TLS port.
    let plain = url.replace("https://", "http://");
    let out = flameshift(dir.path(), &record_args(&plain, "v5", &[]), &token);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(kept_profile(dir.path(), &out).total(0) > 10);

    // https to a plain http port.
    let (_plain_server, plain_url) = start_serve(&dir.path().join("plain"), &[]);
    let wrong = plain_url.replace("http://", "https://");
    let out = flameshift(dir.path(), &record_args(&wrong, "v6", &["--ca-cert", ca]), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plain http"), "{stderr}");
    assert!(kept_profile(dir.path(), &out).total(0) > 10);

    // `regressions` over https.
    let listed = flameshift(
        dir.path(),
        &[
            "regressions",
            "--analyzer",
            &url,
            "--ca-cert",
            ca,
            "--detect",
            "--json",
        ],
        &token,
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(listed.is_array(), "{listed}");
}

#[test]
fn an_expired_certificate_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let expired = make_pki(dir.path(), "expired", true);
    let (_server, url) = start_tls_serve(&dir.path().join("data"), &expired, &[]);
    let url = url.replace("127.0.0.1", "localhost");
    let out = flameshift(
        dir.path(),
        &record_args(&url, "v1", &["--ca-cert", expired.ca.to_str().unwrap()]),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("expired"), "{stderr}");
    assert!(kept_profile(dir.path(), &out).total(0) > 10);
}

#[test]
fn serve_refuses_tls_files_that_do_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_pki(dir.path(), "a", false);
    let b = make_pki(dir.path(), "b", false);
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases = [
        (vec!["--tls-cert", a.cert.to_str().unwrap()], "--tls-key"),
        (
            vec![
                "--tls-cert",
                a.ca.to_str().unwrap(),
                "--tls-key",
                a.cert.to_str().unwrap(),
            ],
            "no private key",
        ),
        (
            vec![
                "--tls-cert",
                a.cert.to_str().unwrap(),
                "--tls-key",
                b.key.to_str().unwrap(),
            ],
            "does not go with the certificate",
        ),
        (
            vec![
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                a.key.to_str().unwrap(),
            ],
            "/nonexistent.pem",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--data", data];
        all.extend(args);
        let out = flameshift(dir.path(), &all, &[]);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{all:?}: {stderr}");
    }
}

#[test]
fn the_agent_in_a_service_ships_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "agent", false);
    let (_server, url) = start_tls_serve(&dir.path().join("data"), &pki, &["--token", "s3cret"]);
    let url = url.replace("127.0.0.1", "localhost");
    let mut service = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_flameshift"))
            .args([
                "demo-service",
                "--listen",
                "127.0.0.1:0",
                "--service",
                "tls",
                "--deploy",
                "agent",
            ])
            .args(["--analyzer", &url])
            .env("FLAMESHIFT_CA_CERT", &pki.ca)
            .env("FLAMESHIFT_TOKEN", "s3cret")
            .env("FLAMESHIFT_UPLOAD_INTERVAL", "1")
            .env("FLAMESHIFT_FREQUENCY", "999")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (app, lines) = address(&mut service, "flameshift demo-service: listening on ");
    thread::spawn(move || for _ in lines {});
    let mut stored = 0;
    for _ in 0..60 {
        for _ in 0..20 {
            let r =
                flameshift_client::http::get(&format!("{app}/feed"), &[], Duration::from_secs(10)).unwrap();
            assert_eq!(r.status, 200);
        }
        stored = stored_samples(&url, &pki.ca, "agent");
        if stored > 20 {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        stored > 20,
        "the agent's profiles arrived over https: {stored} samples"
    );
}

/// An https webhook receiver: answers 200 and keeps the bodies.
fn https_receiver(pki: &Pki) -> (String, Arc<Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(&pki.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.key).unwrap();
    #[allow(deprecated, reason = "ring, as flameshift itself uses")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            seen.lock().unwrap().push(String::from_utf8(body).unwrap());
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (url, bodies)
}

#[test]
fn regressions_reach_an_https_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "hook", false);
    let (hook, bodies) = https_receiver(&pki);
    let mut child = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--webhook", &hook, "--detect-interval", "1h"])
        .env("FLAMESHIFT_CA_CERT", &pki.ca)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, lines) = address(&mut child, "flameshift: listening on ");
    thread::spawn(move || for _ in lines {});
    let _server = KillOnDrop(child);
    let fleet = super::serve::regressing_fleet(5, 2);
    for d in 0..2 {
        for w in 0..12 {
            super::serve::upload_window(&url, &fleet, d, w);
        }
    }
    let found = flameshift(
        dir.path(),
        &["regressions", "--analyzer", &url, "--detect", "--json"],
        &[],
    );
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    for _ in 0..200 {
        if !bodies.lock().unwrap().is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let payload: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert!(
        payload["text"].as_str().unwrap().contains("regression"),
        "{payload}"
    );
}

/// A CONNECT proxy: tunnels each connection and records the targets.
fn connect_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let targets = Arc::new(Mutex::new(Vec::new()));
    let seen = targets.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let seen = seen.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let target = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                seen.lock().unwrap().push(request.trim().to_owned());
                let Ok(upstream) = TcpStream::connect(&target) else {
                    return;
                };
                let mut answer = client.try_clone().unwrap();
                answer
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut up_read, mut up_write) = (upstream.try_clone().unwrap(), upstream);
                let mut down = client;
                thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut up_write);
                    let _ = up_write.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut up_read, &mut down);
            });
        }
    });
    (url, targets)
}

#[test]
fn https_proxy_is_followed_and_no_proxy_bypasses_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "proxy", false);
    let (_server, url) = start_tls_serve(&dir.path().join("data"), &pki, &[]);
    let url = url.replace("127.0.0.1", "localhost");
    let (proxy, targets) = connect_proxy();
    let ca = pki.ca.to_str().unwrap();
    let list = |env: &[(&str, &str)]| {
        let out = flameshift(
            dir.path(),
            &["regressions", "--analyzer", &url, "--ca-cert", ca],
            env,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    list(&[("HTTPS_PROXY", &proxy), ("NO_PROXY", "")]);
    let port = url.rsplit(':').next().unwrap();
    assert_eq!(
        targets.lock().unwrap().clone(),
        vec![format!("CONNECT localhost:{port} HTTP/1.1")],
        "one tunnel to the analyzer"
    );
    list(&[("HTTPS_PROXY", &proxy), ("NO_PROXY", "localhost")]);
    assert_eq!(targets.lock().unwrap().len(), 1, "NO_PROXY went around the proxy");
}

//! A minimal HTTP/1.1 client over `std::net` for uploads to the analyzer:
//! one request per connection, bounded by a timeout, plain `http://` on
//! the loopback or a private network. The agent links this instead of a
//! full HTTP stack so that it stays small (no async runtime, no TLS);
//! put a TLS-terminating proxy in front of the analyzer across untrusted
//! networks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::{Error, Result};

/// Largest response body read.
const MAX_RESPONSE: u64 = 256 << 20;

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` field of a JSON error body, or the body itself.
    pub fn error_message(&self) -> String {
        let text = self.text();
        text.split_once("\"error\":\"")
            .and_then(|(_, rest)| rest.rsplit_once('"'))
            .map(|(message, _)| message.replace("\\\"", "\""))
            .unwrap_or(text)
    }
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// `http://host:port/path?query`.
    pub url: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (may be empty).
    pub body: &'a [u8],
    /// Connect, write and read timeout, each.
    pub timeout: Duration,
}

fn fail(url: &str, message: impl Into<String>) -> Error {
    Error::Upload {
        url: url.to_owned(),
        message: message.into(),
    }
}

/// Splits `http://host:port/path` into `(host:port, /path)`.
fn split_url(url: &str) -> Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail(url, "only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(fail(url, "no host in the URL"));
    }
    Ok((authority, path))
}

/// Sends a request and reads the whole response.
pub fn send(request: &Request<'_>) -> Result<Response> {
    let url = request.url;
    let (authority, path) = split_url(url)?;
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| fail(url, format!("resolve {authority}: {e}")))?
        .next()
        .ok_or_else(|| fail(url, format!("{authority} has no address")))?;
    let stream = TcpStream::connect_timeout(&addr, request.timeout).map_err(|e| fail(url, e.to_string()))?;
    stream
        .set_read_timeout(Some(request.timeout))
        .map_err(|e| fail(url, e.to_string()))?;
    stream
        .set_write_timeout(Some(request.timeout))
        .map_err(|e| fail(url, e.to_string()))?;
    let mut head = format!(
        "{} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\nUser-Agent: flameshift\r\n",
        request.method,
        request.body.len()
    );
    for (name, value) in request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = &stream;
    writer
        .write_all(head.as_bytes())
        .and_then(|_| writer.write_all(request.body))
        .map_err(|e| fail(url, e.to_string()))?;
    read_response(BufReader::new(&stream).take(MAX_RESPONSE)).map_err(|e| fail(url, e))
}

fn read_response(mut reader: impl BufRead) -> std::result::Result<Response, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).map_err(|e| e.to_string())?;
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(Response { status, body })
}

/// `POST`s `body` and returns the response (any status).
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8], timeout: Duration) -> Result<Response> {
    send(&Request {
        method: "POST",
        url,
        headers,
        body,
        timeout,
    })
}

/// `GET`s `url`.
pub fn get(url: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<Response> {
    send(&Request {
        method: "GET",
        url,
        headers,
        body: &[],
        timeout,
    })
}

/// Percent-encodes a query parameter value.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_and_chunks() {
        let plain = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 17\r\n\r\n{\"error\":\"nope\"}\n";
        let r = read_response(&plain[..]).unwrap();
        assert_eq!((r.status, r.error_message().as_str()), (400, "nope"));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(read_response(&chunked[..]).unwrap().body, b"abcde");
        assert!(read_response(&b"garbage\r\n\r\n"[..]).is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:7411/api/v1/x?a=b").unwrap(),
            ("127.0.0.1:7411", "/api/v1/x?a=b")
        );
        assert_eq!(split_url("http://h").unwrap(), ("h", "/"));
        assert!(split_url("https://h/").is_err());
        assert_eq!(encode_component("GET /a b"), "GET%20%2Fa%20b");
    }

    #[test]
    fn a_dead_server_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = post(&format!("http://{addr}/x"), &[], b"x", Duration::from_secs(2)).unwrap_err();
        assert!(err.to_string().contains("upload to"), "{err}");
    }
}

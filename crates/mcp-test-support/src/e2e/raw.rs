//! Raw HTTP/1.1 over a TCP stream, for clients that misbehave on purpose.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a read found: an answer, or the connection closed without one.
#[derive(Debug)]
pub enum Read {
    /// Status and body of a whole answer.
    Answer(u16, String),
    /// The connection closed (or was reset) with these bytes read.
    Closed(Vec<u8>),
}

pub async fn connect(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    TcpStream::connect(addr).await.unwrap()
}

/// A request head (`Host: localhost`) with extra header lines.
pub fn head(method: &str, path: &str, extra: &[&str]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

pub async fn send(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await
}

/// Reads one answer (`Content-Length` or chunked), or until the connection closes;
/// at most `within`.
pub async fn read(stream: &mut TcpStream, within: Duration) -> Read {
    let mut buf = Vec::new();
    let reading = async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((status, body)) = parse(&buf) {
                return Read::Answer(status, body);
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Read::Closed(buf.clone()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, reading)
        .await
        .unwrap_or_else(|_| panic!("no answer and no close within {within:?}"))
}

/// Whether the connection is closed: a read returns end of file (or an error) within
/// `within`; bytes read meanwhile are returned.
pub async fn closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let reading = async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, reading)
        .await
        .ok()
        .map(|()| buf)
}

/// Status and body of the answer in `buf`, once it is whole.
pub fn parse(buf: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(buf);
    let end = text.find("\r\n\r\n")?;
    let (head, rest) = (&text[..end], &text[end + 4..]);
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let lower = head.to_ascii_lowercase();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return (rest.len() >= len).then(|| (status, rest[..len].to_owned()));
    }
    if lower.contains("transfer-encoding: chunked") {
        let mut body = String::new();
        let mut rest = rest;
        loop {
            let line_end = rest.find("\r\n")?;
            let size = usize::from_str_radix(rest[..line_end].trim(), 16).ok()?;
            if size == 0 {
                return Some((status, body));
            }
            let data = rest.get(line_end + 2..line_end + 2 + size)?;
            body.push_str(data);
            rest = rest.get(line_end + 2 + size + 2..)?;
        }
    }
    Some((status, rest.to_owned()))
}

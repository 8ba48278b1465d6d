//! The limits of client connections, each crossed against a real `proxyd` by a client that
//! misbehaves on purpose: one that sends nothing, headers or a body that trickle, an idle
//! keep-alive connection, HTTP/2 connections (idle, and deaf to pings), one connection
//! more than the limit, a process out of file descriptors, and oversized bodies of 10 and
//! 100 MiB on both kinds of endpoint.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::raw::{self, Read};
use mcp_test_support::e2e::{self, Admin};
use mcp_test_support::proxyd::{ADMIN_TOKEN, Launch, Proxyd};
use mcp_test_support::tools;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

/// Generous bound on anything that should happen within a second or two.
const SOON: Duration = Duration::from_secs(15);

fn closed(reason: &str) -> String {
    format!("mcp_proxy_client_connections_closed_total{{reason=\"{reason}\"}}")
}

async fn start(env: &[(&str, &str)]) -> Proxyd {
    Proxyd::start_with_env(BIN, &[], env).await.unwrap()
}

/// Sends `head` and then `body_prefix`, then one more byte every 100 ms, until an answer
/// or a close comes back.
async fn trickle(stream: &mut TcpStream, head: &str, body_prefix: &[u8]) -> Read {
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body_prefix).await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut buf = Vec::new();
    let reading = async {
        let mut chunk = [0u8; 4096];
        loop {
            tokio::select! {
                _ = tick.tick() => { let _ = stream.write_all(b"a").await; }
                n = stream.read(&mut chunk) => match n {
                    Ok(0) | Err(_) => {
                        return match raw::parse(&buf) {
                            Some((status, body)) => Read::Answer(status, body),
                            None => Read::Closed(buf.clone()),
                        };
                    }
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some((status, body)) = raw::parse(&buf) {
                            return Read::Answer(status, body);
                        }
                    }
                },
            }
        }
    };
    tokio::time::timeout(SOON, reading)
        .await
        .expect("a trickling client is answered or closed")
}

#[tokio::test]
async fn silent_trickling_and_idle_connections_are_closed_by_their_deadlines() {
    let p = start(&[
        ("MCP_PROXY_LISTENER__FIRST_BYTE_TIMEOUT", "1s"),
        ("MCP_PROXY_LISTENER__HEADER_READ_TIMEOUT", "1s"),
        ("MCP_PROXY_LISTENER__IDLE_TIMEOUT", "1s"),
    ])
    .await;
    let admin = Admin::new(&p);

    // sends nothing
    let mut silent = raw::connect(&p.url()).await;
    let seen = raw::closed(&mut silent, SOON).await;
    assert_eq!(seen.as_deref(), Some(&[][..]), "closed without an answer");
    assert_eventually!(
        SOON,
        admin.metric(&closed("first_byte_timeout")).await >= 1.0
    );

    // starts a request and trickles its headers, never finishing them
    let mut slow = raw::connect(&p.url()).await;
    let read = trickle(
        &mut slow,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
        b"",
    )
    .await;
    assert!(
        matches!(read, Read::Closed(ref b) if b.is_empty()),
        "{read:?}"
    );
    assert_eventually!(SOON, admin.metric(&closed("header_timeout")).await >= 1.0);

    // keep-alive: two requests back to back, then nothing
    let mut idle = raw::connect(&p.url()).await;
    for _ in 0..2 {
        raw::send(&mut idle, raw::head("GET", "/healthz", &[]).as_bytes())
            .await
            .unwrap();
        assert!(matches!(
            raw::read(&mut idle, SOON).await,
            Read::Answer(200, _)
        ));
    }
    assert!(raw::closed(&mut idle, SOON).await.is_some());
    assert_eventually!(SOON, admin.metric(&closed("idle_timeout")).await >= 1.0);
}

#[tokio::test]
async fn a_trickling_body_gets_408_on_both_endpoint_kinds() {
    let p = start(&[("MCP_PROXY_LISTENER__BODY_READ_TIMEOUT", "1s")]).await;
    let admin = Admin::new(&p);
    admin
        .register_connected(&tools::mock_stdio_def("m", &["echo"]))
        .await;
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let cases = [
        (
            "/admin/mcps",
            vec![auth.as_str(), "Content-Type: application/json"],
        ),
        (
            "/m/mcp",
            vec![
                "Content-Type: application/json",
                "Accept: application/json, text/event-stream",
            ],
        ),
    ];
    for (path, headers) in cases {
        let mut headers = headers;
        headers.push("Content-Length: 1000");
        let mut stream = raw::connect(&p.url()).await;
        let read = trickle(
            &mut stream,
            &raw::head("POST", path, &headers),
            b"{\"jsonrpc\":",
        )
        .await;
        let Read::Answer(status, body) = read else {
            panic!("{path}: expected an answer, got {read:?}")
        };
        assert_eq!(status, 408, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        if path.starts_with("/admin") {
            assert_eq!(body["code"], "request_timeout", "{body}");
        } else {
            assert_eq!(body["jsonrpc"], "2.0", "{body}");
            assert_eq!(body["error"]["data"]["code"], "request_timeout", "{body}");
        }
    }
    // the proxy serves on
    let (status, _) = admin
        .call("m", "echo", json!({"message": "still here"}))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_slot_then_are_closed() {
    let p = start(&[
        ("MCP_PROXY_LISTENER__MAX_CONNECTIONS", "2"),
        ("MCP_PROXY_LISTENER__CONNECTION_WAIT", "2s"),
    ])
    .await;
    let get = raw::head("GET", "/healthz", &[]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = raw::connect(&p.url()).await;
        raw::send(&mut s, get.as_bytes()).await.unwrap();
        assert!(matches!(
            raw::read(&mut s, SOON).await,
            Read::Answer(200, _)
        ));
        held.push(s);
    }
    // the third waits for a slot, gets none and is closed unanswered
    let mut third = raw::connect(&p.url()).await;
    raw::send(&mut third, get.as_bytes()).await.unwrap();
    let read = raw::read(&mut third, SOON).await;
    assert!(
        matches!(read, Read::Closed(ref b) if b.is_empty()),
        "{read:?}"
    );
    // the fourth is served as soon as a held connection goes away
    let mut fourth = raw::connect(&p.url()).await;
    raw::send(&mut fourth, get.as_bytes()).await.unwrap();
    drop(held.remove(0));
    assert!(matches!(
        raw::read(&mut fourth, SOON).await,
        Read::Answer(200, _)
    ));
    drop((held, fourth));
    let admin = Admin::new(&p);
    assert_eventually!(SOON, admin.metric(&closed("limit_reached")).await >= 1.0);
    assert_eventually!(
        SOON,
        admin.metric("mcp_proxy_client_connections").await == 1.0
    );
}

/// A minimal HTTP/2 client: enough frames by hand to open a connection, send one GET and
/// watch what the server sends.
mod h2 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const PING: u8 = 0x6;
    pub(crate) const GOAWAY: u8 = 0x7;
    pub(crate) const HEADERS: u8 = 0x1;
    const ACK: u8 = 0x1;

    pub(crate) async fn frame(s: &mut TcpStream, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        s.write_all(&out).await.unwrap();
    }

    /// The preface, empty settings, and `GET /healthz` on stream 1 (HPACK without
    /// Huffman: indexed `:method GET`, `:scheme http`, literal `:path`, `:authority`).
    pub(crate) async fn open_and_get(s: &mut TcpStream) {
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        frame(s, SETTINGS, 0, 0, &[]).await;
        let mut block = vec![0x82, 0x86, 0x44, 8];
        block.extend_from_slice(b"/healthz");
        block.extend_from_slice(&[0x41, 9]);
        block.extend_from_slice(b"localhost");
        // END_STREAM | END_HEADERS
        frame(s, HEADERS, 0x5, 1, &block).await;
    }

    /// The next frame (type, flags, payload), or `None` at end of stream.
    pub(crate) async fn next(s: &mut TcpStream) -> Option<(u8, u8, Vec<u8>)> {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.ok()?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], payload))
    }

    /// Acknowledges the server's settings (and, with `pong`, its pings).
    pub(crate) async fn answer(s: &mut TcpStream, kind: u8, flags: u8, payload: &[u8], pong: bool) {
        if kind == SETTINGS && flags & ACK == 0 {
            frame(s, SETTINGS, ACK, 0, &[]).await;
        }
        if pong && kind == PING && flags & ACK == 0 {
            frame(s, PING, ACK, 0, payload).await;
        }
    }
}

#[tokio::test]
async fn http2_connections_are_pinged_and_closed_when_idle_or_deaf() {
    // idle: answers pings, sends nothing more after its request, gets a GOAWAY
    let p = start(&[
        ("MCP_PROXY_LISTENER__IDLE_TIMEOUT", "1s"),
        ("MCP_PROXY_LISTENER__HTTP2_KEEPALIVE_INTERVAL", "300ms"),
    ])
    .await;
    let mut s = raw::connect(&p.url()).await;
    h2::open_and_get(&mut s).await;
    let mut kinds = Vec::new();
    let watched = tokio::time::timeout(SOON, async {
        while let Some((kind, flags, payload)) = h2::next(&mut s).await {
            h2::answer(&mut s, kind, flags, &payload, true).await;
            kinds.push(kind);
        }
    })
    .await;
    assert!(
        watched.is_ok(),
        "the idle connection was not closed: {kinds:?}"
    );
    assert!(kinds.contains(&h2::HEADERS), "answered: {kinds:?}");
    assert!(kinds.contains(&h2::PING), "pinged: {kinds:?}");
    assert!(kinds.contains(&h2::GOAWAY), "closed gracefully: {kinds:?}");
    let admin = Admin::new(&p);
    assert_eventually!(SOON, admin.metric(&closed("idle_timeout")).await >= 1.0);

    // deaf: never answers a ping; idle would take a minute, the ping timeout much less
    let p = start(&[
        ("MCP_PROXY_LISTENER__IDLE_TIMEOUT", "60s"),
        ("MCP_PROXY_LISTENER__HTTP2_KEEPALIVE_INTERVAL", "300ms"),
        ("MCP_PROXY_LISTENER__HTTP2_KEEPALIVE_TIMEOUT", "300ms"),
    ])
    .await;
    let mut s = raw::connect(&p.url()).await;
    h2::open_and_get(&mut s).await;
    let mut kinds = Vec::new();
    let watched = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((kind, flags, payload)) = h2::next(&mut s).await {
            h2::answer(&mut s, kind, flags, &payload, false).await;
            kinds.push(kind);
        }
    })
    .await;
    assert!(watched.is_ok(), "a deaf connection was kept: {kinds:?}");
    assert!(kinds.contains(&h2::PING), "pinged: {kinds:?}");
    let admin = Admin::new(&p);
    assert_eq!(
        admin.metric(&closed("idle_timeout")).await,
        0.0,
        "closed for the unanswered ping, not as idle"
    );
}

#[tokio::test]
async fn accept_keeps_working_when_file_descriptors_run_out() {
    const OPEN_FILES: u64 = 64;
    let launch = Launch {
        open_files: Some(OPEN_FILES),
        ..Launch::default()
    };
    let p = Proxyd::launch(BIN, &[], &[], &launch).await.unwrap();
    let pid = p.pid().unwrap();
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("listener.max_connections lowered")),
        "the default limit is fitted to the open-file limit: {:#?}",
        p.log()
    );
    // stdio upstreams take descriptors (pipes to each child) until fewer are left than
    // the connection limit (32) allows
    let admin = Admin::new(&p);
    let mut upstreams = 0;
    while e2e::open_fds(pid) < OPEN_FILES as usize - 16 {
        let name = format!("u{upstreams}");
        admin
            .register_connected(&tools::mock_stdio_def(&name, &["echo"]))
            .await;
        upstreams += 1;
        assert!(upstreams < 20, "upstreams take no descriptors?");
    }
    // connections until the process has no descriptor left: the extra ones are closed at
    // once instead of hanging in the kernel's queue
    let mut conns = Vec::new();
    for _ in 0..24 {
        conns.push(raw::connect(&p.url()).await);
    }
    // admitted connections wait for their first byte (10 s); shed ones are closed already
    let mut held = Vec::new();
    let mut shed = 0;
    for mut s in conns {
        if raw::closed(&mut s, Duration::from_millis(300))
            .await
            .is_some()
        {
            shed += 1;
        } else {
            held.push(s);
        }
    }
    assert!(shed > 0, "no connection was shed with {} held", held.len());
    drop(held);
    // descriptors are back: everything works again
    assert_eventually!(
        SOON,
        reqwest::get(format!("{}/healthz", p.url()))
            .await
            .is_ok_and(|r| r.status() == 200)
    );
    assert!(admin.metric(&closed("out_of_file_descriptors")).await >= 1.0);
    let (status, body) = admin.call("u0", "echo", json!({"message": "ok"})).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("out of file descriptors")),
        "logged"
    );
}

/// A 10 MiB and a 100 MiB body, declared (`Content-Length`) and chunked, on the Admin API
/// and on an MCP endpoint: every one gets its 413, with the error shape of its endpoint,
/// and the proxy serves on.
#[tokio::test]
async fn oversized_requests_get_413_at_any_size_on_both_endpoint_kinds() {
    let p = start(&[]).await;
    let admin = Admin::new(&p);
    admin
        .register_connected(&tools::mock_stdio_def("m", &["echo"]))
        .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    for mib in [10usize, 100] {
        let body = vec![b' '; mib << 20];
        for path in ["/admin/mcps", "/m/mcp"] {
            let url = format!("{}{path}", p.url());
            let declared = http
                .post(&url)
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.clone());
            let chunks = futures_util::stream::iter(
                (0..mib * 16).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])),
            );
            let chunked = http
                .post(&url)
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(reqwest::Body::wrap_stream(chunks));
            for (how, req) in [("declared", declared), ("chunked", chunked)] {
                let resp = req
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{mib} MiB {how} on {path}: {e:?}"));
                assert_eq!(resp.status(), 413, "{mib} MiB {how} on {path}");
                let answer: Value = resp.json().await.unwrap();
                let code = if path.starts_with("/admin") {
                    &answer["code"]
                } else {
                    assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
                    &answer["error"]["data"]["code"]
                };
                assert_eq!(
                    code, "payload_too_large",
                    "{mib} MiB {how} on {path}: {answer}"
                );
            }
        }
    }
    let (status, _) = admin.call("m", "echo", json!({"message": "after"})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

/// The lingering close after a 413 is bounded both ways: a client that keeps its socket
/// open after the answer loses its slot after `linger_timeout`, and one that keeps sending
/// is cut off after `linger_max_bytes`.
#[tokio::test]
async fn the_lingering_close_after_a_413_is_bounded_in_time_and_bytes() {
    let p = start(&[
        ("MCP_PROXY_MAX_BODY_BYTES", "65536"),
        ("MCP_PROXY_LISTENER__LINGER_TIMEOUT", "5s"),
        ("MCP_PROXY_LISTENER__LINGER_MAX_BYTES", "1048576"),
    ])
    .await;
    let admin = Admin::new(&p);
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let head = raw::head(
        "POST",
        "/admin/mcps",
        &[
            &auth,
            "Content-Type: application/json",
            "Content-Length: 104857600",
        ],
    );
    // sends a part of its body, reads the answer, then neither sends nor closes
    let mut idle = raw::connect(&p.url()).await;
    raw::send(&mut idle, head.as_bytes()).await.unwrap();
    raw::send(&mut idle, &vec![b' '; 128 * 1024]).await.unwrap();
    let read = raw::read(&mut idle, SOON).await;
    assert!(matches!(read, Read::Answer(413, _)), "{read:?}");
    assert!(
        raw::closed(&mut idle, SOON).await.is_some(),
        "FIN after the answer"
    );
    // its slot is held while it lingers, then freed
    assert!(admin.metric("mcp_proxy_client_connections").await >= 2.0);
    assert_eventually!(
        SOON,
        admin.metric("mcp_proxy_client_connections").await == 1.0
    );
    // keeps sending: cut off after a megabyte (plus what socket buffers hold), long
    // before its 100 MiB are through
    let mut pushy = raw::connect(&p.url()).await;
    raw::send(&mut pushy, head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0usize;
    let cut = tokio::time::timeout(SOON, async {
        while raw::send(&mut pushy, &chunk).await.is_ok() {
            sent += chunk.len();
        }
    })
    .await;
    assert!(cut.is_ok(), "still sending after {sent} bytes");
    assert!(sent < 50 << 20, "{sent} bytes went through");
}

//! Retries as a user sees them: a proxy that comes up late is waited for; a tool call that
//! may have reached the proxy is never sent twice unless declared idempotent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcp_proxy_client::{Error, ProxyClient, RetryPolicy};
use mcp_test_support::proxyd::{ADMIN_TOKEN, proxyd_binary};
use mcp_test_support::tools;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn patient() -> RetryPolicy {
    RetryPolicy::try_new(
        200,
        Duration::from_millis(50),
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .unwrap()
}

#[tokio::test]
async fn calls_started_before_the_proxy_succeed_once_it_is_up() {
    let binary = proxyd_binary();
    let port = tools::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let c = ProxyClient::try_new(&url, ADMIN_TOKEN, Duration::from_secs(10))
        .unwrap()
        .with_retry(patient());
    let health = tokio::spawn({
        let c = c.clone();
        async move { c.health().await }
    });
    let register = tokio::spawn({
        let c = c.clone();
        async move { c.register(&tools::server_time_def("time")).await }
    });
    let listing = tokio::spawn({
        let c = c.clone();
        async move { c.list().await }
    });
    // Nothing listens yet: the calls are failing and retrying.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!health.is_finished() && !register.is_finished() && !listing.is_finished());

    let mut proxyd = tokio::process::Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("MCP_PROXY_ADMIN_TOKENS", format!("[\"{ADMIN_TOKEN}\"]"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let within = Duration::from_secs(60);
    let health = tokio::time::timeout(within, health).await.unwrap().unwrap();
    assert_eq!(health.unwrap().status, "ok");
    let entry = tokio::time::timeout(within, register)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.unwrap().definition.name, "time");
    tokio::time::timeout(within, listing)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(c.get("time").await.unwrap().definition.name, "time");
    proxyd.kill().await.unwrap();
}

#[tokio::test]
async fn without_retries_a_missing_proxy_is_a_connect_error() {
    let url = format!("http://127.0.0.1:{}", tools::free_port());
    let c = ProxyClient::try_new(&url, ADMIN_TOKEN, Duration::from_secs(5))
        .unwrap()
        .with_retry(RetryPolicy::none());
    let err = c.health().await.unwrap_err();
    assert!(err.is_connect() && err.is_retryable(), "{err:?}");
    assert!(err.to_string().starts_with("GET /healthz: "), "{err}");
}

/// Answers every request with 503 and counts them.
async fn always_503() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    read_request(&mut sock).await?;
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"error":"upstream \"m\" is not connected","code":"upstream_unavailable","details":null}"#;
                    let resp = format!(
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    sock.write_all(resp.as_bytes()).await
                })
                .await;
            });
        }
    });
    (url, hits)
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(());
            }
        }
    }
}

fn quick(attempts: u32) -> RetryPolicy {
    RetryPolicy::try_new(
        attempts,
        Duration::from_millis(10),
        Duration::from_millis(20),
        Duration::from_secs(30),
    )
    .unwrap()
}

#[tokio::test]
async fn a_tool_call_that_reached_the_proxy_is_not_sent_again() {
    let (url, hits) = always_503().await;
    let c = ProxyClient::try_new(&url, ADMIN_TOKEN, Duration::from_secs(5))
        .unwrap()
        .with_retry(quick(4));
    let err = c.call_tool("m", "send_email", None).await.unwrap_err();
    match &err {
        Error::Unavailable { code, message, .. } => {
            assert_eq!(code, "upstream_unavailable");
            assert!(message.contains("not connected"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "sent exactly once");

    // Declared idempotent: retried like a read.
    hits.store(0, Ordering::SeqCst);
    c.call_idempotent_tool("m", "get_time", None)
        .await
        .unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    // Reads are retried; a create is retried too, since 503 means nothing was created.
    hits.store(0, Ordering::SeqCst);
    c.list().await.unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    hits.store(0, Ordering::SeqCst);
    c.register(&tools::server_time_def("t")).await.unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

//! Security checks of `proxyd` end to end, each as a caller would try to get around it:
//! spellings of admin paths, forged `X-Forwarded-For`, HTTP/2 without `Host`, secrets in
//! configuration errors.

use std::time::Duration;

use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

/// Sends one HTTP/1.1 request exactly as written (path and header bytes untouched) and
/// returns the status code and the whole answer.
async fn raw(base: &str, path: &str, headers: &[(&str, &[u8])]) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    conn.write_all(&req).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the proxy answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (code, text)
}

#[tokio::test]
async fn admin_routes_need_admin_credentials_in_every_spelling() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let auth: &[(&str, &[u8])] = &[("Authorization", bearer.as_bytes())];
    for path in [
        "/metrics",
        "/metrics/",
        "/admin/metrics/",
        "/admin/mcps/",
        "/admin/tools/",
        "/admin/prompts/",
        "/admin/resources/",
    ] {
        let (code, text) = raw(&p.url(), path, &[]).await;
        assert_eq!(code, 401, "{path} without a token: {text}");
        let (code, text) = raw(&p.url(), path, auth).await;
        assert_eq!(code, 200, "{path} with the admin token: {text}");
    }
    // Other spellings reach no route at all; none of them is served without a token.
    for path in [
        "//metrics",
        "/metrics//",
        "//admin/mcps",
        "/admin//mcps",
        "/%61dmin/mcps",
        "/ADMIN/mcps",
        "/Metrics",
        "/metrics%2F",
        "/admin/mcps%2F",
        "/admin/./mcps",
        "/x/../metrics",
    ] {
        let (code, text) = raw(&p.url(), path, &[]).await;
        assert!(code == 401 || code == 404 || code == 400, "{path}: {text}");
        assert!(
            !text.contains("mcp_proxy_"),
            "{path} served metrics: {text}"
        );
        assert!(
            !text.contains("\"mcps\""),
            "{path} served the admin api: {text}"
        );
    }
    // Healthz stays public, with or without a trailing slash.
    assert_eq!(raw(&p.url(), "/healthz/", &[]).await.0, 200);
}

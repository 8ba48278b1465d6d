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

#[tokio::test]
async fn an_unreadable_forwarded_for_makes_the_client_unknown_not_the_proxy() {
    // The proxy in front is 127.0.0.1, which is also in the default admin allow-list.
    let p = Proxyd::start_with_env(
        BIN,
        &[],
        &[("MCP_PROXY_TRUSTED_PROXIES", "[\"127.0.0.1\"]")],
    )
    .await
    .unwrap();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let with = |xff: &'static [u8]| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("Authorization", bearer.clone().into_bytes()),
            ("X-Forwarded-For", xff.to_vec()),
        ]
    };
    let send = |headers: Vec<(&'static str, Vec<u8>)>| {
        let base = p.url();
        async move {
            let refs: Vec<(&str, &[u8])> =
                headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            raw(&base, "/admin/mcps", &refs).await
        }
    };
    // A forwarded loopback client is an admin; a forwarded outside client is not.
    assert_eq!(send(with(b"127.0.0.1")).await.0, 200);
    assert_eq!(send(with(b"203.0.113.9")).await.0, 403);
    for forged in [
        &b"203.0.113.9\xff"[..],
        b"\xc3\xa9, 127.0.0.1",
        b"nonsense",
        b"unknown",
        b"198.51.100.4, ",
    ] {
        let (code, text) = send(with(forged)).await;
        assert_eq!(code, 403, "{}: {text}", String::from_utf8_lossy(forged));
        assert!(text.contains("client address unknown"), "{text}");
    }

    // The same on an MCP endpoint: an allow-list of every address does not admit an
    // unknown client.
    let resp = reqwest::Client::new()
        .post(format!("{}/admin/mcps", p.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({
            "name": "open", "transport": "stdio", "command": "echo",
            "allowedIPs": ["0.0.0.0/0", "::/0"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (code, text) = raw(
        &p.url(),
        "/open/mcp",
        &[("X-Forwarded-For", b"203.0.113.9\xff")],
    )
    .await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("unknown"), "{text}");
    let (code, text) = raw(
        &p.url(),
        "/open/mcp",
        &[("X-Forwarded-For", b"203.0.113.9")],
    )
    .await;
    assert_ne!(code, 403, "a readable address is allowed: {text}");
}

#[tokio::test]
async fn the_host_check_reads_the_http2_authority() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let addr: std::net::SocketAddr = p.url().trim_start_matches("http://").parse().unwrap();
    let port = addr.port();
    // A rebinding attacker's name resolving to this proxy.
    let client = |h2: bool| {
        let b = reqwest::Client::builder().resolve("rebind.example", addr);
        if h2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        }
        .build()
        .unwrap()
    };
    for h2 in [false, true] {
        let resp = client(h2)
            .get(format!("http://rebind.example:{port}/healthz"))
            .send()
            .await
            .unwrap();
        let version = resp.version();
        assert_eq!(resp.status(), 403, "h2={h2} {version:?}");
        let ok = client(h2)
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "h2={h2}");
        assert_eq!(
            ok.version(),
            if h2 {
                reqwest::Version::HTTP_2
            } else {
                reqwest::Version::HTTP_11
            }
        );
    }
}

#[tokio::test]
async fn a_token_setting_that_is_not_a_list_is_refused_without_echoing_it() {
    let out = tokio::process::Command::new(BIN)
        .args(["--check-config"])
        .env("MCP_PROXY_ADMIN_TOKENS", "plainsecret-0123456789")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("admin_tokens"), "{stderr}");
    assert!(!stderr.contains("plainsecret"), "{stderr}");
    assert!(!stdout.contains("plainsecret"), "{stdout}");
}

/// The admin API over reqwest, for the definition tests.
async fn admin(
    method: reqwest::Method,
    url: String,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or_default())
}

/// Whether the proxy endpoint of `name` lets this bearer token through its guard.
async fn token_admitted(base: &str, name: &str, token: &str) -> bool {
    let resp = reqwest::Client::new()
        .get(format!("{base}/{name}/mcp"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    resp.status() != 401
}

#[tokio::test]
async fn a_put_keeps_exactly_the_secrets_its_placeholders_name() {
    use reqwest::Method;
    use serde_json::json;
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let url = format!("{}/admin/mcps/guarded", p.url());
    let def = json!({"name": "guarded", "transport": "stdio", "command": "echo",
                     "env": {"API_KEY": "env-secret-1"},
                     "authTokens": ["compromised-token-1", "good-token-22"]});
    let (code, body) = admin(Method::POST, format!("{}/admin/mcps", p.url()), Some(def)).await;
    assert_eq!(code, 201, "{body}");
    let (_, shown) = admin(Method::GET, url.clone(), None).await;
    let shown = shown["definition"].clone();
    let handles = shown["authTokens"].as_array().unwrap().clone();
    assert_eq!(handles.len(), 2);
    for h in &handles {
        assert!(h.as_str().unwrap().starts_with("***:"), "{shown}");
    }
    assert!(!shown.to_string().contains("token-"), "{shown}");

    // The old way, a bare "***" in the list: refused, nothing changes.
    let mut edit = shown.clone();
    edit["authTokens"] = json!(["***"]);
    let (code, body) = admin(Method::PUT, url.clone(), Some(edit)).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["details"][0]["field"], "authTokens[0]", "{body}");
    assert!(token_admitted(&p.url(), "guarded", "compromised-token-1").await);

    // Revoke the compromised token, which GET showed first, by keeping only the second.
    let mut edit = shown.clone();
    edit["authTokens"] = json!([handles[1]]);
    let (code, body) = admin(Method::PUT, url.clone(), Some(edit)).await;
    assert_eq!(code, 200, "{body}");
    assert!(!token_admitted(&p.url(), "guarded", "compromised-token-1").await);
    assert!(token_admitted(&p.url(), "guarded", "good-token-22").await);

    // A handle of a token no longer stored, "***" where nothing is stored, and a literal
    // "***" as a new token are all refused, each by its field.
    let mut edit = shown.clone();
    edit["authTokens"] = json!([handles[0]]);
    edit["env"] = json!({"API_KEY": "***", "NEW_KEY": "***"});
    let (code, body) = admin(Method::PUT, url.clone(), Some(edit)).await;
    assert_eq!(code, 400, "{body}");
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["env.NEW_KEY", "authTokens[0]"], "{body}");
    let (code, body) = admin(
        Method::POST,
        format!("{}/admin/mcps", p.url()),
        Some(
            json!({"name": "fresh", "transport": "stdio", "command": "echo",
                    "authTokens": ["***"]}),
        ),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(token_admitted(&p.url(), "guarded", "good-token-22").await);
}

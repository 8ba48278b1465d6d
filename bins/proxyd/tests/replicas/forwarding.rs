//! Forwarding between replicas: what only one replica can serve (a per-client stdio
//! process, a legacy event stream, the events a `Last-Event-ID` names, a call waiting for
//! an input-required retry) is reached from any replica.

use super::*;

/// Which replica of `cluster` owns the stdio session: the only one that has not
/// forwarded any of its requests (after requests landed on every replica).
fn owner_of(cluster: &Cluster) -> usize {
    let owners: Vec<usize> = (0..cluster.replicas.len())
        .filter(|i| forwarded(&cluster.replicas[*i]) == 0)
        .collect();
    assert_eq!(owners.len(), 1, "one owner, the others forward: {owners:?}");
    owners[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stdio_session_behind_round_robin_is_served_by_its_owner_on_every_request() {
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(tools::everything_stdio_def("evs")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let url = nginx.url("/evs/mcp");
    let http = McpHttp::new();
    let sid = http.open_session(&url, VERSION).await;
    // Echo calls, then calls with progress, through whichever replica the call lands on.
    calls_with_progress(&http, &url, &sid, 6).await;
    // One process, on the owner: nobody resumed or took the session over.
    let owner = owner_of(&cluster);
    for r in &cluster.replicas {
        assert_eq!(support::log_count(r, "took over"), 0);
        assert_eq!(resumed(r), 0);
    }
    let others: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    let direct = |i: usize| format!("{}/evs/mcp", cluster.replicas[i].url());
    // A GET stream opened on a replica that is not the owner carries the owner's
    // notifications.
    let headers = [
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", VERSION),
    ];
    let (s, h, mut stream) = http.get_sse(&direct(others[0]), &headers).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let toggle = json!({"jsonrpc":"2.0","id":300,"method":"tools/call","params":{
        "name":"toggle-simulated-logging","arguments":{}}});
    let (s, _, body) = http.post(&url, Some(&sid), &[], &toggle).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let seen = support::read_until(&mut stream, "notifications/message").await;
    assert!(
        seen.contains("id: 0-"),
        "events of the standalone stream: {seen}"
    );
    // The client goes away: the forwarded stream ends on the owner too, so the session
    // takes a new standalone stream (one at a time), here through the other replica.
    drop(stream);
    assert_eventually!(Duration::from_secs(15), {
        let (s, _, again) = http.get_sse(&direct(others[1]), &headers).await;
        drop(again);
        s == StatusCode::OK
    });
    // DELETE on a replica that is not the owner ends the session on the owner.
    let del = http
        .http
        .delete(direct(others[0]))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::OK);
    for i in 0..3 {
        let (s, _, body) = http
            .post(&direct(i), Some(&sid), &[], &echo(400, "x"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "replica {i} after delete: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_keeps_a_stdio_session_across_replicas() {
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(tools::everything_stdio_def("evs")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    support::python_client("streamable", &nginx.url("/evs/mcp"), None).await;
    let forwards: usize = cluster.replicas.iter().map(forwarded).sum();
    assert!(forwards >= 2, "the SDK's requests landed on other replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_keeps_a_legacy_sse_session_behind_round_robin() {
    let (_upstream, cluster) = evh_cluster().await;
    let nginx = Nginx::start(&cluster.ports()).await;
    support::python_client("sse", &nginx.url("/evh/sse"), None).await;
    let forwards: usize = cluster.replicas.iter().map(forwarded).sum();
    assert!(forwards >= 2, "the SDK's posts landed on other replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_posts_landing_on_every_replica_are_answered_on_the_stream() {
    let (_upstream, cluster) = evh_cluster().await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let http = McpHttp::new();
    let (s, _, mut stream) = http.get_sse(&nginx.url("/evh/sse"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let first = support::read_until(&mut stream, "\n\n").await;
    let path = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no endpoint event: {first}"))
        .trim()
        .to_owned();
    let post = |body: Value| {
        http.http
            .post(nginx.url(&path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    assert_eq!(post(init).await.unwrap().status(), StatusCode::ACCEPTED);
    let mut seen = support::read_until(&mut stream, "protocolVersion").await;
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(post(note).await.unwrap().status(), StatusCode::ACCEPTED);
    for i in 2..8 {
        let resp = post(echo(i, &format!("legacy{i}"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "post {i}");
    }
    // The answers come in any order.
    for i in 2..8 {
        let needle = format!("legacy{i}");
        if !seen.contains(&needle) {
            seen.push_str(&support::read_until(&mut stream, &needle).await);
        }
    }
    for i in 2..8 {
        assert_eq!(seen.matches(&format!("\"id\":{i}")).count(), 1, "{seen}");
    }
    // Round robin: eight posts, two replicas that do not hold the stream forwarded theirs.
    let forwards: Vec<usize> = cluster.replicas.iter().map(forwarded).collect();
    assert_eq!(
        forwards.iter().filter(|n| **n >= 1).count(),
        2,
        "forwards per replica: {forwards:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_event_id_landing_on_another_replica_replays_there_while_the_writer_lives() {
    let (_upstream, mut cluster) = evh_cluster().await;
    let url = |c: &Cluster, i: usize| format!("{}/evh/mcp", c.replicas[i].url());
    let http = McpHttp::new();
    let sid = http.open_session(&url(&cluster, 0), VERSION).await;
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
        "name":"trigger-long-running-operation","arguments":{"duration":1.0,"steps":4},
        "_meta":{"progressToken":"lei"}}});
    let mut resp = http
        .request(&url(&cluster, 0), Some(&sid), &[])
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let head = support::read_until(&mut resp, "notifications/progress").await;
    let first_id = head
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("no event id: {head}"))
        .trim()
        .to_owned();
    assert!(
        first_id.ends_with("@r0"),
        "ids name the replica: {first_id}"
    );
    // The client loses the answer; it resumes on another replica.
    drop(resp);
    let headers = [
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", VERSION),
        ("last-event-id", first_id.as_str()),
    ];
    let (s, _, mut replay) = http.get_sse(&url(&cluster, 1), &headers).await;
    assert_eq!(s, StatusCode::OK);
    let rest = support::read_until(&mut replay, "\"result\"").await;
    assert!(
        !rest.contains(&format!("id: {first_id}\n")),
        "after it only: {rest}"
    );
    assert!(rest.contains("\"id\":7"), "{rest}");
    assert_eq!(forwarded(&cluster.replicas[1]), 1);
    // The writer dies: while its heartbeat is current, the resume says it cannot reach
    // it; once it is gone, the events are gone (the clear 400).
    drop(replay);
    cluster.replicas[0].kill().await;
    let (s, _, gone) = http.get_sse(&url(&cluster, 1), &headers).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(
        body["error"]["data"]["code"], "replica_unreachable",
        "{body}"
    );
    let mut last;
    assert_eventually!(Duration::from_secs(30), {
        let (s, _, gone) = http.get_sse(&url(&cluster, 2), &headers).await;
        last = gone.json().await.unwrap_or(Value::Null);
        s == StatusCode::BAD_REQUEST
    });
    assert_eq!(last["error"]["data"]["code"], "unknown_event_id", "{last}");
}

/// A stand-in replica: records the head of every request it gets, answers 202.
async fn fake_replica() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    buf.drain(..end + 4 + length);
                    let _ = tx.send(head);
                    let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 8\r\n\r\nAccepted";
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_headers_are_sealed_refused_when_forged_or_expired_and_never_forwarded_again() {
    use mcp_store::SessionRegistry;
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    // A replica "rx" whose heartbeat names a listener of this test.
    let registry = mcp_store::RedisStore::connect(mcp_store::RedisConfig::new(cluster.redis.url()))
        .await
        .unwrap();
    let (port, mut heads) = fake_replica().await;
    registry
        .heartbeat(
            "rx",
            &format!("http://127.0.0.1:{port}"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let http = McpHttp::new();
    let path = "/evh/message?sessionId=0123456789abcdef&replica=rx";
    let post = |i: usize, path: &str, forwarded: Option<&str>| {
        let mut req = http
            .http
            .post(format!("{}{path}", cluster.replicas[i].url()))
            .header("content-type", "application/json")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .body(echo(1, "f").to_string());
        if let Some(f) = forwarded {
            req = req.header("mcp-proxy-forwarded", f);
        }
        req.send()
    };
    // r1 forwards the post to rx, as sent, marked with a sealed header.
    let resp = post(1, path, None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with(&format!("POST {path} HTTP/1.1")), "{head}");
    assert_eq!(header_of(&head, "content-type"), Some("application/json"));
    assert_eq!(header_of(&head, "x-hop"), None, "hop-by-hop: {head}");
    let sealed = header_of(&head, "mcp-proxy-forwarded")
        .unwrap_or_else(|| panic!("no forwarded header: {head}"))
        .to_owned();
    assert!(sealed.starts_with("mcpf1.k1."), "{sealed}");
    let refusal = |body: &Value| {
        body["error"]["data"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // Presented (within its lifetime) to r2: it is sealed for rx alone, so r2 refuses it
    // and forwards nothing. (That a request forwarded to its holder is never forwarded
    // again is the unit test of `mcp/forward.rs`; each holder accepts a header once.)
    let resp = post(2, path, Some(&sealed)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(refusal(&body), "forwarded_header_refused", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("another replica"), "{body}");
    // On another path, changed, or made up: refused, and nothing is forwarded.
    let other = path.replace("0123", "3210");
    let mut forged = sealed.clone().into_bytes();
    let i = forged.len() - 4;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for (what, path, header) in [
        ("another path", other.as_str(), sealed.as_str()),
        ("forged", path, forged.as_str()),
        ("made up", path, "mcpf1.k1.AAAA"),
    ] {
        let resp = post(2, path, Some(header)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(refusal(&body), "forwarded_header_refused", "{what}: {body}");
        assert_eq!(body["error"]["code"], -32600, "{body}");
    }
    // Past its lifetime (10 s): refused.
    let mut last;
    assert_eventually!(Duration::from_secs(30), {
        let resp = post(0, path, Some(&sealed)).await.unwrap();
        let s = resp.status();
        last = resp.json().await.unwrap_or(Value::Null);
        s == StatusCode::BAD_REQUEST
            && last["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("expired"))
    });
    assert_eq!(refusal(&last), "forwarded_header_refused", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("expired"),
        "{last}"
    );
    assert!(
        heads.try_recv().is_err(),
        "nothing but r1's post reached rx"
    );
    assert_eq!(forwarded(&cluster.replicas[0]), 0);
    assert_eq!(forwarded(&cluster.replicas[2]), 0);
    // A holder whose address refuses connections: 503 replica_unreachable.
    let closed = tools::free_port();
    registry
        .heartbeat(
            "rz",
            &format!("http://127.0.0.1:{closed}"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let resp = post(1, &path.replace("rx", "rz"), None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(refusal(&body), "replica_unreachable", "{body}");
}

/// POSTs a 2026-07-28 request; the status and the last JSON-RPC message of the answer.
async fn post_modern(http: &McpHttp, url: &str, body: &Value) -> (StatusCode, Value) {
    let resp = http
        .request(url, None, &[])
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", body["method"].as_str().unwrap_or_default())
        .header(
            "mcp-name",
            body["params"]["name"].as_str().unwrap_or_default(),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let last = support::messages(&headers, &text).last().cloned();
    (status, last.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_input_required_retry_landing_on_another_replica_reaches_its_waiting_call() {
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(tools::mock_stdio_def("iv", &[])).unwrap())
        .await;
    let url = |i: usize| format!("{}/iv/mcp", cluster.replicas[i].url());
    let http = McpHttp::new();
    let interview = |id: &str, retry: Value| {
        let mut params = json!({
            "name": "interview",
            "arguments": {"rounds": [["elicitation/create"]]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            },
        });
        if let Value::Object(extra) = retry {
            params.as_object_mut().unwrap().extend(extra);
        }
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    };
    // The upstream's question parks its call on r0.
    let (s, first) = post_modern(&http, &url(0), &interview("q1", json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    let key = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    // The retry lands on r1: forwarded to r0, where the call takes the answer and ends.
    let answer = json!({key: {"action": "accept", "content": {"answer": "from-r1"}}});
    let retry = interview(
        "q2",
        json!({"requestState": state, "inputResponses": answer}),
    );
    let (s, done) = post_modern(&http, &url(1), &retry).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["id"], "q2", "{done}");
    let text = done["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("from-r1"),
        "the upstream got the answer: {done}"
    );
    assert_eq!(forwarded(&cluster.replicas[1]), 1);
    // Spent: presented again, anywhere, it finds nothing waiting.
    let (_, spent) = post_modern(&http, &url(2), &retry).await;
    assert_eq!(
        spent["error"]["data"]["code"], "request_state_gone",
        "{spent}"
    );
}

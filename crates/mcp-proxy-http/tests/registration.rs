//! A program that embeds the core and calls its registration API
//! ([`Manager::register`], [`Manager::update`], [`Manager::remove`]) gets the same
//! answers as a client of the Admin API: the same refusals, with the same messages and
//! failing fields, and the same definitions stored and running afterwards.

use std::sync::Arc;

use mcp_proxy_core::{Error, Manager, ManagerConfig, TransportConnector};
use mcp_proxy_http::security::TokenSet;
use mcp_proxy_http::{App, HttpConfig, serve};
use mcp_store::{MemoryStore, Store};
use mcp_types::{DefinitionSource, McpDefinition, Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "registration-test-token-0123456789";

/// The rules under test: three definitions at most, and stdio only through `/bin/cat`.
fn config() -> ManagerConfig {
    ManagerConfig {
        max_connections: 3,
        stdio_allowed_commands: vec!["/bin/cat".into()],
        ..ManagerConfig::default()
    }
}

fn manager(store: &Arc<dyn Store>) -> Manager {
    Manager::new(
        store.clone(),
        Arc::new(TransportConnector::default()),
        config(),
    )
}

/// A definition that never connects (nothing listens on port 1) and never retries.
fn def(name: &str) -> Value {
    json!({"name": name, "transport": "streamable-http", "url": "http://127.0.0.1:1/mcp",
           "autoReconnect": false})
}

fn parse(v: &Value) -> McpDefinition {
    serde_json::from_value(v.clone()).unwrap()
}

/// What one side answered: success, or (HTTP status, message, failing fields).
#[derive(Debug, PartialEq)]
enum Answer {
    Done,
    Refused(StatusCode, String, Vec<String>),
}

/// The HTTP answer for an embedder's error: what the Admin API documents for it.
fn embedded(result: Result<(), Error>) -> Answer {
    let Err(e) = result else {
        return Answer::Done;
    };
    let (status, fields) = match &e {
        Error::Invalid(errors) => (
            StatusCode::BAD_REQUEST,
            errors.0.iter().map(|f| f.field.clone()).collect(),
        ),
        Error::TooManyUpstreams(_) | Error::Declared(_) => (StatusCode::CONFLICT, Vec::new()),
        Error::Store(mcp_store::Error::AlreadyExists(_)) => (StatusCode::CONFLICT, Vec::new()),
        Error::Store(mcp_store::Error::VersionMismatch { .. }) => {
            (StatusCode::PRECONDITION_FAILED, Vec::new())
        }
        Error::UnknownMcp(_) => (StatusCode::NOT_FOUND, Vec::new()),
        other => panic!("unexpected error {other}"),
    };
    Answer::Refused(status, comparable(&e.to_string()), fields)
}

/// Store refusals are worded by the HTTP layer ("mcp" where the store says
/// "definition"; an `If-Match` sentence for a version mismatch): only their status and
/// fields are compared. Every other message must be the same text.
fn comparable(message: &str) -> String {
    if message.contains("already exists") {
        "already exists".into()
    } else if message.contains(" is at version ") || message.contains("If-Match") {
        "changed".into()
    } else {
        message.to_owned()
    }
}

struct Admin {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Admin {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        if status.is_success() {
            return Answer::Done;
        }
        let body: Value = resp.json().await.unwrap();
        let fields = body["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|f| f["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        Answer::Refused(status, comparable(body["error"].as_str().unwrap()), fields)
    }
}

async fn names(store: &Arc<dyn Store>) -> Vec<String> {
    store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect()
}

#[tokio::test]
async fn the_core_api_answers_as_the_admin_api_does() {
    // The Admin API, over its own store and manager.
    let http_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let http_manager = manager(&http_store);
    http_manager.start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = Admin {
        base: format!("http://{}", listener.local_addr().unwrap()),
        http: reqwest::Client::new(),
        stop: CancellationToken::new(),
    };
    let cfg = HttpConfig {
        admin_tokens: TokenSet::new([&Secret::new(TOKEN)]),
        ..HttpConfig::default()
    };
    let app = App::new(cfg, http_store.clone(), http_manager.clone());
    tokio::spawn(serve(listener, app, admin.stop.clone().cancelled_owned()));
    // The embedder: the same configuration, no HTTP.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let core = manager(&store);
    core.start().await;
    // One definition declared in a configuration, on both sides.
    let mut declared = parse(&def("declared"));
    declared.source = DefinitionSource::Config;
    for s in [&http_store, &store] {
        s.create(declared.clone()).await.unwrap();
    }

    let mut bad_name = def("no spaces allowed");
    bad_name["url"] = json!("not a url");
    let npx = json!({"name": "npx", "transport": "stdio", "command": "npx", "args": ["-y", "x"]});
    let line = json!({"name": "line", "transport": "stdio", "command": "cat -n"});
    let mut changed = def("a");
    changed["timeout"] = json!("5s");

    let mut answers = Vec::new();
    for (what, body) in [
        ("valid", def("a")),
        ("the same name again", def("a")),
        ("an invalid name and url", bad_name),
        ("a program off the allow-list", npx),
        ("a command line as a program", line),
        ("fills the last place", def("b")),
        ("one over max_connections", def("c")),
    ] {
        let http = admin
            .send(Method::POST, "/admin/mcps", Some(&body), None)
            .await;
        let embed = embedded(core.register(parse(&body)).await.map(drop));
        answers.push((what, http, embed));
    }
    let http = admin
        .send(Method::PUT, "/admin/mcps/a", Some(&changed), Some("\"1\""))
        .await;
    let embed = embedded(core.update(parse(&changed), Some(1)).await.map(drop));
    answers.push(("update naming an old version", http, embed));
    let http = admin
        .send(Method::PUT, "/admin/mcps/a", Some(&changed), None)
        .await;
    let embed = embedded(core.update(parse(&changed), None).await.map(drop));
    answers.push(("update", http, embed));
    let http = admin
        .send(
            Method::PUT,
            "/admin/mcps/declared",
            Some(&def("declared")),
            None,
        )
        .await;
    let embed = embedded(core.update(parse(&def("declared")), None).await.map(drop));
    answers.push(("update of a declared definition", http, embed));
    let http = admin
        .send(Method::PUT, "/admin/mcps/zz", Some(&def("zz")), None)
        .await;
    let embed = embedded(core.update(parse(&def("zz")), None).await.map(drop));
    answers.push(("update of an unknown name", http, embed));
    let http = admin
        .send(Method::DELETE, "/admin/mcps/declared", None, None)
        .await;
    let embed = embedded(core.remove("declared", None).await.map(drop));
    answers.push(("removal of a declared definition", http, embed));
    for what in ["removal", "removal again"] {
        let http = admin
            .send(Method::DELETE, "/admin/mcps/b", None, None)
            .await;
        let embed = embedded(core.remove("b", None).await.map(drop));
        answers.push((what, http, embed));
    }

    for (what, http, embed) in &answers {
        assert_eq!(http, embed, "{what}");
    }
    // Not the same by accident: each case got the answer it is about.
    let refused = |i: usize| match &answers[i].1 {
        Answer::Refused(status, message, fields) => (*status, message.clone(), fields.clone()),
        Answer::Done => panic!("{} was accepted", answers[i].0),
    };
    assert_eq!(answers[0].1, Answer::Done);
    assert_eq!(refused(1).0, StatusCode::CONFLICT);
    assert_eq!(refused(2).2, ["name", "url"]);
    assert_eq!(refused(3).2, ["command"]);
    assert!(
        refused(4).1.contains("\"command\": [\"cat\",\"-n\"]"),
        "{:?}",
        refused(4)
    );
    assert_eq!(answers[5].1, Answer::Done);
    assert_eq!(
        refused(6).1,
        "max_connections (3) reached: delete an mcp before adding another"
    );
    assert_eq!(refused(7).0, StatusCode::PRECONDITION_FAILED);
    assert_eq!(answers[8].1, Answer::Done);
    assert_eq!(refused(9).0, StatusCode::CONFLICT);
    assert!(
        refused(9)
            .1
            .contains("declared in the proxy's configuration")
    );
    assert_eq!(refused(10).0, StatusCode::NOT_FOUND);
    assert_eq!(refused(11).0, StatusCode::CONFLICT);
    assert_eq!(answers[12].1, Answer::Done);
    assert_eq!(refused(13).0, StatusCode::NOT_FOUND);

    // The same definitions stored, the same upstreams running, the same change applied.
    assert_eq!(names(&http_store).await, names(&store).await);
    assert_eq!(names(&store).await, ["a", "declared"]);
    let running = |m: &Manager| {
        m.upstreams()
            .iter()
            .map(|u| u.name().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(running(&http_manager), running(&core));
    assert_eq!(running(&core), ["a", "declared"]);
    for m in [&http_manager, &core] {
        let a = m.upstream("a").unwrap();
        assert_eq!(a.definition().timeout, std::time::Duration::from_secs(5));
    }
    core.shutdown(std::time::Duration::from_secs(1)).await;
    http_manager
        .shutdown(std::time::Duration::from_secs(1))
        .await;
}

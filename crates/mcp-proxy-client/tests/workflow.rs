//! Workflow YAML: parsing, validation, placeholders, and `use_proxy` applied to a real
//! `proxyd` running real upstreams.

use std::collections::HashMap;
use std::time::Duration;

use mcp_proxy_client::workflow::{self, Endpoint, McpSource, WorkflowMcps};
use mcp_proxy_client::{Ensured, Error, ProxyClient, RegisterService};
use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd, proxyd_binary};
use mcp_test_support::tools;
use mcp_types::TransportKind;
use serde_json::json;

const SEED: &str = include_str!("../../../examples/workflow.yaml");

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn field_errors(err: Error) -> Vec<(String, String)> {
    match err {
        Error::InvalidWorkflow(fields) => {
            fields.into_iter().map(|f| (f.field, f.message)).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_example_workflow_parses_into_typed_entries() {
    let w = WorkflowMcps::from_yaml(SEED).unwrap();
    let ids: Vec<_> = w.mcps().iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["clock", "everything", "docs-search"]);
    let clock = w.find("clock").unwrap();
    assert_eq!(
        clock.source,
        McpSource::Stdio {
            program: "mcp-server-time".into(),
            args: vec!["--local-timezone".into(), "America/New_York".into()],
        }
    );
    assert!(clock.use_proxy);
    assert_eq!(clock.start_timeout, Duration::from_secs(60));
    let every = w.find("everything").unwrap();
    assert_eq!(
        every.transport(),
        TransportKind::Stdio,
        "default with a command"
    );
    assert_eq!(every.max_sessions, Some(8));
    let search = w.find("docs-search").unwrap();
    assert_eq!(search.transport(), TransportKind::StreamableHttp);
    assert!(!search.use_proxy);
    assert_eq!(search.start_timeout, workflow::DEFAULT_START_TIMEOUT);

    let sse = WorkflowMcps::from_yaml("mcps:\n  - id: legacy\n    url: http://h/sse\n").unwrap();
    assert_eq!(
        sse.mcps()[0].transport(),
        TransportKind::Sse,
        "default without a command"
    );
    let none = WorkflowMcps::from_yaml("name: no tools\nsteps: []\n").unwrap();
    assert!(none.mcps().is_empty());
}

#[test]
fn validation_reports_every_failing_field_at_once() {
    let yaml = r#"
mcps:
  - id: both
    command: "srv --x"
    url: http://h/mcp
  - id: neither
  - id: ftp
    url: ftp://h/mcp
  - id: crlf
    url: https://h/mcp
    headers:
      X-Token: "a\r\nInjected: yes"
      "Bad Header": v
  - id: "no spaces"
    command: "srv 'unbalanced"
  - id: kind
    url: https://h/mcp
    transport: websocket
  - id: mismatch
    command: srv
    transport: sse
  - id: dup
    command: a
  - id: dup
    command: b
  - id: slow
    command: srv
    start_timeout: soon
    max_sessions: 0
    env:
      KEY: "{{ .secrets.KEY }}"
"#;
    let errors = field_errors(WorkflowMcps::from_yaml(yaml).unwrap_err());
    let has = |field: &str, text: &str| {
        assert!(
            errors.iter().any(|(f, m)| f == field && m.contains(text)),
            "{field}: {text} not in {errors:#?}"
        );
    };
    has("mcps[0].command", "not both");
    has("mcps[1].url", "needs a url or a command");
    has("mcps[2].url", "scheme must be http or https");
    has("mcps[3].headers.X-Token", "CR or LF");
    has("mcps[3].headers.Bad Header", "invalid header name");
    has("mcps[4].id", "may contain only");
    has("mcps[4].command", "cannot split");
    has("mcps[5].transport", "\"websocket\" is not one of");
    has("mcps[6].transport", "sse needs a url");
    has("mcps[8].id", "duplicate id \"dup\"");
    has("mcps[9].start_timeout", "invalid duration");
    has("mcps[9].max_sessions", "at least 1");
    has("mcps[9].env.KEY", "unsupported placeholder");
    let text = Error::InvalidWorkflow(vec![]).to_string();
    assert!(text.starts_with("workflow mcps:"), "{text}");
}

#[test]
fn env_on_a_url_entry_says_to_send_a_header_instead() {
    // What a newcomer writes after a stdio example: a token for a hosted server in `env`.
    let yaml = r#"
mcps:
  - id: search
    url: https://search.example.com/mcp
    env:
      SEARCH_API_TOKEN: "{{ .env.SEARCH_API_TOKEN }}"
    use_proxy: true
"#;
    let errors = field_errors(WorkflowMcps::from_yaml(yaml).unwrap_err());
    let (field, message) = &errors[0];
    assert_eq!(field, "mcps[0].env");
    assert!(message.contains("a url entry spawns nothing"), "{message}");
    assert!(
        message.contains(r#"headers: { Authorization: "Bearer {{ .env.SEARCH_API_TOKEN }}" }"#),
        "{message}"
    );
    // Written that way, the entry loads.
    let fixed = yaml.replace(
        "env:\n      SEARCH_API_TOKEN:",
        "headers:\n      Authorization:",
    );
    let fixed = fixed.replace(
        "\"{{ .env.SEARCH_API_TOKEN }}\"",
        "\"Bearer {{ .env.SEARCH_API_TOKEN }}\"",
    );
    WorkflowMcps::from_yaml(&fixed).unwrap();
}

#[test]
fn shape_errors_name_the_problem() {
    let err =
        WorkflowMcps::from_yaml("mcps:\n  - id: a\n    command: x\n    colour: red\n").unwrap_err();
    assert!(matches!(err, Error::Yaml(_)));
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    let err = WorkflowMcps::from_yaml("mcps: [unterminated").unwrap_err();
    assert!(err.to_string().starts_with("workflow yaml:"), "{err}");
}

#[test]
fn placeholders_resolve_from_the_callers_map_and_a_missing_one_is_an_error() {
    let w = WorkflowMcps::from_yaml(SEED).unwrap();
    let client =
        ProxyClient::try_new("http://127.0.0.1:8080", "t", Duration::from_secs(1)).unwrap();
    let err = workflow::plan(&w, &client, &vars(&[("EVERYTHING_API_KEY", "k1")])).unwrap_err();
    match &err {
        Error::MissingVariable { field, name } => {
            assert_eq!(field, "mcps[2].headers.Authorization");
            assert_eq!(name, "SEARCH_API_TOKEN");
        }
        other => panic!("{other:?}"),
    }
    let everything = w.find("everything").unwrap();
    let def = everything
        .definition(&vars(&[("EVERYTHING_API_KEY", "k1")]))
        .unwrap();
    assert_eq!(def.env["EVERYTHING_API_KEY"].expose(), "k1");
    assert_eq!(def.max_sessions, Some(8));
    assert!(everything.definition(&vars(&[])).is_err());

    // A value that smuggles a line break into a header is refused after resolution.
    let w = WorkflowMcps::from_yaml(
        "mcps:\n  - id: s\n    url: https://h/mcp\n    headers:\n      X-Key: \"{{ .env.K }}\"\n",
    )
    .unwrap();
    let err = w.mcps()[0]
        .resolved_headers(&vars(&[("K", "a\r\nEvil: 1")]))
        .unwrap_err();
    assert!(err.to_string().contains("mcps[0].headers.X-Key"), "{err}");

    let all = vars(&[("EVERYTHING_API_KEY", "k1"), ("SEARCH_API_TOKEN", "s1")]);
    let planned = workflow::plan(&WorkflowMcps::from_yaml(SEED).unwrap(), &client, &all).unwrap();
    match &planned[2].endpoint {
        Endpoint::Http { headers, url, .. } => {
            assert_eq!(headers["Authorization"].expose(), "Bearer s1");
            assert_eq!(url.as_str(), "https://search.example.com/mcp");
        }
        other => panic!("{other:?}"),
    }
    assert!(planned[2].register.is_none());
}

/// `PATH` with the test peers, so YAML can name them as a user's shell would.
fn tools_path() -> String {
    let root = tools::workspace_root();
    format!(
        "{}:{}:{}",
        root.join(".tools/npm/node_modules/.bin").display(),
        root.join(".tools/venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test]
async fn the_example_workflow_runs_end_to_end_through_a_real_proxy() {
    let path = tools_path();
    let p = Proxyd::start_with_env(proxyd_binary(), &[], &[("PATH", &path)])
        .await
        .unwrap();
    let client = ProxyClient::try_new(&p.url(), ADMIN_TOKEN, Duration::from_secs(30)).unwrap();
    // Another engine already registered a shared MCP; a second document names it by URL.
    client
        .register(&tools::server_time_def("team-clock"))
        .await
        .unwrap();
    let reference = format!(
        "  - id: team-clock-ref\n    url: {}/team-clock/stream\n    use_proxy: true\n\nsteps:",
        p.url().replace("127.0.0.1", "localhost")
    );
    let yaml = SEED.replace("\nsteps:", &format!("\n{reference}"));
    let w = WorkflowMcps::from_yaml(&yaml).unwrap();
    let all = vars(&[("EVERYTHING_API_KEY", "k1"), ("SEARCH_API_TOKEN", "s1")]);
    let planned = workflow::plan(&w, &client, &all).unwrap();

    let base = p.url();
    let proxy_urls: Vec<_> = planned
        .iter()
        .filter_map(|m| match &m.endpoint {
            Endpoint::Proxy {
                name,
                url,
                transport,
            } => Some((name.clone(), url.to_string(), *transport)),
            _ => None,
        })
        .collect();
    assert_eq!(
        proxy_urls,
        [
            (
                "clock".into(),
                format!("{base}/clock/stream"),
                TransportKind::StreamableHttp
            ),
            (
                "everything".into(),
                format!("{base}/everything/stream"),
                TransportKind::StreamableHttp
            ),
            (
                "team-clock".into(),
                format!(
                    "{}/team-clock/stream",
                    base.replace("127.0.0.1", "localhost")
                ),
                TransportKind::StreamableHttp
            ),
        ]
    );

    let service = RegisterService::new(client.clone());
    let entries = service.apply(&planned).await.unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.definition.name.as_str()).collect();
    assert_eq!(names, ["clock", "everything", "team-clock"]);
    let everything = client.get("everything").await.unwrap().definition;
    assert_eq!(everything.env["EVERYTHING_API_KEY"].expose(), "***");
    assert_eq!(everything.max_sessions, Some(8));

    let r = client
        .call_tool(
            "clock",
            "get_current_time",
            Some(json!({"timezone": "Europe/Paris"})),
        )
        .await
        .unwrap();
    assert!(!r.is_error && r.text().contains("Europe/Paris"), "{r:?}");
    let r = client
        .call_tool("everything", "echo", Some(json!({"message": "briefing"})))
        .await
        .unwrap();
    assert!(r.text().contains("briefing"), "{r:?}");

    // The URL handed to the engine is a live MCP endpoint of the proxy.
    let Endpoint::Proxy { url, .. } = &planned[0].endpoint else {
        panic!("clock is proxied");
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "engine", "version": "1"}}});
    let resp = reqwest::Client::new()
        .post(url.clone())
        .header("Accept", "application/json, text/event-stream")
        .json(&init)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("mcp-session-id"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("\"serverInfo\""), "{body}");

    // Applying the same document again changes nothing, secrets included.
    assert_eq!(service.apply(&planned).await.unwrap().len(), 3);
    for p in planned.iter().filter_map(|p| p.register.as_ref()) {
        assert_eq!(
            service.ensure(p).await.unwrap(),
            Ensured::Unchanged,
            "{}",
            p.name
        );
    }

    // A reference to an MCP that is not on the proxy is an error naming it.
    let dangling = WorkflowMcps::from_yaml(&format!(
        "mcps:\n  - id: ref\n    url: {base}/nobody/sse\n    use_proxy: true\n"
    ))
    .unwrap();
    let err = service
        .apply(&workflow::plan(&dangling, &client, &all).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"ref\": GET /admin/mcps/nobody: not found"),
        "{err}"
    );

    let mut removed = service.shutdown().await.unwrap();
    removed.sort();
    assert_eq!(removed, ["clock", "everything"]);
    let left: Vec<_> = client
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.definition.name)
        .collect();
    assert_eq!(left, ["team-clock"], "the other engine's MCP stays");
}

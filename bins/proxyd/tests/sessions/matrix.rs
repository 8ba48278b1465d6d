//! The security and malformed-input status matrix: a table of requests (tokens, addresses,
//! origins, session rules, malformed input, streams, methods, legacy SSE), each with the
//! status, JSON-RPC code and error kind it must get, run by one loop that names every row
//! that fails.

use mcp_test_support::e2e::{self, Admin, McpHttp};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::BIN;

/// The security and malformed-input matrix: each row is one request and what it must get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_and_malformed_input_get_the_right_status() {
    // a small body limit, so the oversized body of a row is sent whole before the 413
    let proxyd = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_MAX_BODY_BYTES", "65536")])
        .await
        .unwrap();
    let admin = Admin::new(&proxyd);
    let mut a = serde_json::to_value(tools::everything_stdio_def("a")).unwrap();
    a["authTokens"] = json!([TOKEN_A]);
    let mut b = serde_json::to_value(tools::everything_stdio_def("b")).unwrap();
    b["authTokens"] = json!([TOKEN_B]);
    let mut c = serde_json::to_value(tools::everything_stdio_def("c")).unwrap();
    c["allowedIPs"] = json!(["10.0.0.0/8"]);
    let mut d = serde_json::to_value(tools::everything_stdio_def("d")).unwrap();
    d["requireAuth"] = json!(true);
    for def in [a, b, c, d] {
        admin.register(def).await;
    }
    admin
        .register_def(&tools::everything_stdio_def("open"))
        .await;
    let base = proxyd.url();
    let mcp = McpHttp::new();
    // an allowed browser origin opens the session that the `Session::Open` rows use
    let local = vec![("origin".to_owned(), "http://localhost:3000".to_owned())];
    let init = McpHttp::initialize_body("2025-06-18");
    let (s, h, body) = mcp
        .post(&format!("{base}/open/mcp"), None, &local, &init)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let sid = h["mcp-session-id"].to_str().unwrap().to_owned();

    let mut failed = Vec::new();
    // a row's response held open (a stream) until the next row is done
    let mut held = None;
    for (i, case) in MATRIX.iter().enumerate() {
        let (resp, result) = case.run(&mcp, &base, &sid).await;
        if let Err(why) = result {
            failed.push(format!("row {i} ({}): {why}", case.what));
        }
        held = case.request.hold.then_some(resp);
    }
    drop(held);
    assert!(
        failed.is_empty(),
        "{} of {} rows failed:\n{}",
        failed.len(),
        MATRIX.len(),
        failed.join("\n")
    );
}

const TOKEN_A: &str = "token-of-a-0123456789";
const TOKEN_B: &str = "token-of-b-0123456789";

/// One row of the matrix: what is sent, and what must come back.
struct Case {
    what: &'static str,
    request: Request,
    expect: Expect,
}

/// A request of a row; `path` is under proxyd's base URL.
struct Request {
    method: Verb,
    path: &'static str,
    session: Session,
    /// Extra headers; one named like a default (`accept`, `content-type`) replaces it.
    headers: &'static [(&'static str, &'static str)],
    body: Body,
    /// Keep the response (an open stream) until the next row is done.
    hold: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    fn method(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Delete => Method::DELETE,
        }
    }
}

/// Which `mcp-session-id` a row sends.
#[derive(Clone, Copy)]
enum Session {
    None,
    /// The session opened before the rows run.
    Open,
    /// An id no session has.
    Unknown,
}

#[derive(Clone, Copy)]
enum Body {
    Empty,
    Initialize,
    Ping,
    Initialized,
    /// Two pings in a JSON array.
    Batch,
    Text(&'static str),
    /// A ping above the 64 KiB body limit.
    Oversized,
}

/// What the answer must be. `None` fields are not checked.
struct Expect {
    status: StatusCode,
    /// `error.code` of the JSON-RPC error answer.
    code: Option<i64>,
    /// `error.data.code`, the machine-readable kind.
    kind: Option<&'static str>,
    message: Option<Message>,
    /// `result` of the JSON-RPC answer, as JSON text.
    result: Option<&'static str>,
    /// A header the answer carries, and the start of its value.
    header: Option<(&'static str, &'static str)>,
    /// `id` of the JSON-RPC answer, as JSON text (a refusal after the body was read
    /// answers the request's id).
    id: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum Message {
    Is(&'static str),
    Has(&'static str),
}

impl Request {
    const fn post(path: &'static str, body: Body) -> Self {
        Self {
            method: Verb::Post,
            path,
            session: Session::None,
            headers: &[],
            body,
            hold: false,
        }
    }

    const fn get(path: &'static str) -> Self {
        Self {
            method: Verb::Get,
            ..Self::post(path, Body::Empty)
        }
    }

    const fn session(self, session: Session) -> Self {
        Self { session, ..self }
    }

    const fn headers(self, headers: &'static [(&'static str, &'static str)]) -> Self {
        Self { headers, ..self }
    }
}

impl Expect {
    const fn status(status: StatusCode) -> Self {
        Self {
            status,
            code: None,
            kind: None,
            message: None,
            result: None,
            header: None,
            id: None,
        }
    }

    /// A JSON-RPC error answer with `error.code`.
    const fn error(status: StatusCode, code: i64) -> Self {
        Self {
            code: Some(code),
            ..Self::status(status)
        }
    }

    /// A JSON-RPC error answer of a machine-readable kind (`error.data.code`).
    const fn kind(status: StatusCode, kind: &'static str) -> Self {
        Self {
            kind: Some(kind),
            ..Self::status(status)
        }
    }

    const fn message(self, message: Message) -> Self {
        Self {
            message: Some(message),
            ..self
        }
    }

    const fn header(self, name: &'static str, starts_with: &'static str) -> Self {
        Self {
            header: Some((name, starts_with)),
            ..self
        }
    }

    const fn id(self, id: &'static str) -> Self {
        Self {
            id: Some(id),
            ..self
        }
    }
}

impl Case {
    /// Sends the row's request; the response (unread when held) and whether it matched.
    async fn run(
        &self,
        mcp: &McpHttp,
        base: &str,
        sid: &str,
    ) -> (Option<reqwest::Response>, Result<(), String>) {
        let send = &self.request;
        let mut headers = HeaderMap::new();
        if send.method == Verb::Post {
            headers.insert(
                ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            );
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        } else if send.method == Verb::Get {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        for (name, value) in send.headers {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        match send.session {
            Session::None => {}
            Session::Open => {
                headers.insert("mcp-session-id", HeaderValue::from_str(sid).unwrap());
            }
            Session::Unknown => {
                headers.insert(
                    "mcp-session-id",
                    HeaderValue::from_static("0123456789abcdef"),
                );
            }
        }
        let ping = json!({"jsonrpc":"2.0","id":2,"method":"ping"});
        let body = match send.body {
            Body::Empty => String::new(),
            Body::Initialize => McpHttp::initialize_body("2025-06-18").to_string(),
            Body::Ping => ping.to_string(),
            Body::Initialized => {
                json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string()
            }
            Body::Batch => json!([ping, {"jsonrpc":"2.0","id":3,"method":"ping"}]).to_string(),
            Body::Text(text) => text.to_owned(),
            Body::Oversized => format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}",
                "x".repeat(70_000)
            ),
        };
        let resp = match mcp
            .http
            .request(send.method.method(), format!("{base}{}", send.path))
            .headers(headers)
            .body(body)
            .send()
            .await
        {
            Ok(resp) => resp,
            Err(err) => return (None, Err(format!("request failed: {err}"))),
        };
        let (status, headers) = (resp.status(), resp.headers().clone());
        let (resp, answer) = if send.hold {
            (Some(resp), Value::Null)
        } else {
            let text = resp.text().await.unwrap_or_default();
            let answer = e2e::messages(&headers, &text).pop().unwrap_or(Value::Null);
            (None, answer)
        };
        (resp, self.expect.check(status, &headers, &answer))
    }
}

impl Expect {
    fn check(&self, status: StatusCode, headers: &HeaderMap, answer: &Value) -> Result<(), String> {
        let mut wrong = Vec::new();
        if status != self.status {
            wrong.push(format!("status {status}, want {}", self.status));
        }
        if let Some(code) = self.code
            && answer["error"]["code"] != code
        {
            wrong.push(format!(
                "error.code {}, want {code}",
                answer["error"]["code"]
            ));
        }
        if let Some(kind) = self.kind
            && answer["error"]["data"]["code"] != kind
        {
            wrong.push(format!(
                "error.data.code {}, want {kind:?}",
                answer["error"]["data"]["code"]
            ));
        }
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        match self.message {
            Some(Message::Is(m)) if message != m => {
                wrong.push(format!("error.message {message:?}, want {m:?}"));
            }
            Some(Message::Has(m)) if !message.contains(m) => {
                wrong.push(format!("error.message {message:?} lacks {m:?}"));
            }
            _ => {}
        }
        if let Some(result) = self.result {
            let want: Value = serde_json::from_str(result).unwrap();
            if answer["result"] != want {
                wrong.push(format!("result {}, want {want}", answer["result"]));
            }
        }
        if let Some(id) = self.id {
            let want: Value = serde_json::from_str(id).unwrap();
            if answer["id"] != want {
                wrong.push(format!("id {}, want {want}", answer["id"]));
            }
        }
        if let Some((name, start)) = self.header {
            let value = headers.get(name).map(|v| v.to_str().unwrap_or_default());
            if !value.is_some_and(|v| v.starts_with(start)) {
                wrong.push(format!(
                    "header {name}: {value:?}, want one starting {start:?}"
                ));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{}; the answer: {answer}", wrong.join(", ")))
        }
    }
}

const BEARER_NOPE: &[(&str, &str)] = &[("authorization", "Bearer nope")];
const BEARER_A: &[(&str, &str)] = &[("authorization", "Bearer token-of-a-0123456789")];
const BEARER_B: &[(&str, &str)] = &[("authorization", "Bearer token-of-b-0123456789")];

/// The rows, in order: the `Session::Open` ones share one session, so the stream pair
/// comes before the DELETE that ends it.
const MATRIX: &[Case] = &[
    // tokens: missing, wrong, another server's, the right one
    Case {
        what: "no token",
        request: Request::post("/a/mcp", Body::Initialize),
        expect: Expect::error(StatusCode::UNAUTHORIZED, -32600)
            .message(Message::Has("missing bearer token"))
            .header("www-authenticate", "Bearer"),
    },
    Case {
        what: "a wrong token",
        request: Request::post("/a/mcp", Body::Initialize).headers(BEARER_NOPE),
        expect: Expect::status(StatusCode::UNAUTHORIZED)
            .message(Message::Is("invalid bearer token")),
    },
    Case {
        what: "a token of server b does not open server a",
        request: Request::post("/a/mcp", Body::Initialize).headers(BEARER_B),
        expect: Expect::status(StatusCode::UNAUTHORIZED),
    },
    Case {
        what: "legacy sse is guarded too",
        request: Request::get("/a/sse"),
        expect: Expect::status(StatusCode::UNAUTHORIZED),
    },
    Case {
        what: "the right token",
        request: Request::post("/a/mcp", Body::Initialize).headers(BEARER_A),
        expect: Expect::status(StatusCode::OK).header("mcp-session-id", ""),
    },
    Case {
        what: "requireAuth without any token configured: nobody gets in",
        request: Request::post("/d/mcp", Body::Initialize)
            .headers(&[("authorization", "Bearer anything")]),
        expect: Expect::status(StatusCode::UNAUTHORIZED),
    },
    Case {
        what: "an address outside allowedIPs",
        request: Request::post("/c/mcp", Body::Initialize),
        expect: Expect::status(StatusCode::FORBIDDEN).message(Message::Has("127.0.0.1")),
    },
    Case {
        what: "a browser origin that is not allowed",
        request: Request::post("/open/mcp", Body::Initialize)
            .headers(&[("origin", "http://evil.example.com")]),
        expect: Expect::status(StatusCode::FORBIDDEN).message(Message::Has("origin")),
    },
    // session rules
    Case {
        what: "no session id",
        request: Request::post("/open/mcp", Body::Ping),
        expect: Expect::kind(StatusCode::BAD_REQUEST, "session_required").id("2"),
    },
    Case {
        what: "an unknown session id",
        request: Request::post("/open/mcp", Body::Ping).session(Session::Unknown),
        expect: Expect::kind(StatusCode::NOT_FOUND, "session_not_found").id("2"),
    },
    Case {
        what: "a ping in the session",
        request: Request::post("/open/mcp", Body::Ping).session(Session::Open),
        expect: Expect {
            result: Some("{}"),
            ..Expect::status(StatusCode::OK)
        },
    },
    Case {
        what: "an unsupported mcp-protocol-version",
        request: Request::post("/open/mcp", Body::Ping)
            .session(Session::Open)
            .headers(&[("mcp-protocol-version", "1999-01-01")]),
        expect: Expect::kind(StatusCode::BAD_REQUEST, "unsupported_protocol_version"),
    },
    // malformed input
    Case {
        what: "malformed json",
        request: Request::post("/open/mcp", Body::Text("{\"jsonrpc\": ")).session(Session::Open),
        expect: Expect {
            code: Some(-32700),
            ..Expect::kind(StatusCode::BAD_REQUEST, "invalid_json")
        },
    },
    Case {
        what: "a batch on 2025-06-18",
        request: Request::post("/open/mcp", Body::Batch).session(Session::Open),
        expect: Expect::kind(StatusCode::BAD_REQUEST, "batch_not_supported").id("null"),
    },
    Case {
        what: "an oversized body",
        request: Request::post("/open/mcp", Body::Oversized).session(Session::Open),
        expect: Expect::error(StatusCode::PAYLOAD_TOO_LARGE, -32600),
    },
    Case {
        what: "a notification",
        request: Request::post("/open/mcp", Body::Initialized).session(Session::Open),
        expect: Expect::status(StatusCode::ACCEPTED),
    },
    Case {
        what: "an accept without text/event-stream",
        request: Request::post("/open/mcp", Body::Ping)
            .session(Session::Open)
            .headers(&[("accept", "application/json")]),
        expect: Expect::status(StatusCode::NOT_ACCEPTABLE),
    },
    Case {
        what: "a content type that is not json",
        request: Request::post("/open/mcp", Body::Ping)
            .session(Session::Open)
            .headers(&[("content-type", "text/plain")]),
        expect: Expect::status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
    },
    // one GET stream per session
    Case {
        what: "the standalone stream",
        request: Request {
            hold: true,
            ..Request::get("/open/mcp").session(Session::Open)
        },
        expect: Expect::status(StatusCode::OK),
    },
    Case {
        what: "a second standalone stream is refused",
        request: Request::get("/open/mcp").session(Session::Open),
        expect: Expect::status(StatusCode::CONFLICT),
    },
    Case {
        what: "an unsupported method",
        request: Request {
            method: Verb::Put,
            ..Request::get("/open/mcp")
        },
        expect: Expect::status(StatusCode::METHOD_NOT_ALLOWED).header("allow", ""),
    },
    // DELETE ends the session
    Case {
        what: "DELETE of the session",
        request: Request {
            method: Verb::Delete,
            ..Request::get("/open/mcp").session(Session::Open)
        },
        expect: Expect::status(StatusCode::OK),
    },
    Case {
        what: "a ping after DELETE",
        request: Request::post("/open/mcp", Body::Ping).session(Session::Open),
        expect: Expect::status(StatusCode::NOT_FOUND),
    },
    // legacy sse, the {extra} path, unknown names
    Case {
        what: "legacy: an unknown session id",
        request: Request::post("/open/message?sessionId=nope", Body::Ping),
        expect: Expect::status(StatusCode::NOT_FOUND),
    },
    Case {
        what: "legacy: no session id",
        request: Request::post("/open/message", Body::Ping),
        expect: Expect::status(StatusCode::BAD_REQUEST),
    },
    Case {
        what: "a stdio upstream has no {extra} path",
        request: Request::post("/open/stream/x", Body::Initialize),
        expect: Expect::status(StatusCode::NOT_FOUND),
    },
    // some servers here ask for tokens, so an unknown name answers like a protected one:
    // the answer does not tell which names exist
    Case {
        what: "an unknown name",
        request: Request::post("/nosuch/mcp", Body::Initialize),
        expect: Expect::status(StatusCode::UNAUTHORIZED),
    },
];

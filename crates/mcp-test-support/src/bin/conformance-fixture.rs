//! A stdio MCP server offering the fixtures the conformance suite's server scenarios call
//! (`test_simple_text`, `test://static-text`, `test_simple_prompt`, …), written from the
//! scenarios' stated requirements. The proxy is tested with it upstream, so every scenario
//! exercises the proxy rather than the fixture.
//!
//! One JSON-RPC message per line on stdin/stdout; requests are served concurrently; its own
//! requests to the client (sampling, elicitation) wait for the client's responses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV header with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

#[derive(Clone)]
struct Server {
    out: mpsc::Sender<Value>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    next_id: Arc<AtomicI64>,
    client_caps: Arc<Mutex<Value>>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (tx, mut rx) = mpsc::channel::<Value>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(msg) = rx.recv().await {
            let mut line = msg.to_string();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let server = Server {
        out: tx,
        pending: Arc::default(),
        next_id: Arc::new(AtomicI64::new(1)),
        client_caps: Arc::new(Mutex::new(Value::Null)),
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let is_response = msg.get("method").is_none();
        if is_response {
            let key = msg["id"].to_string();
            if let Some(waiter) = server.pending.lock().unwrap().remove(&key) {
                let _ = waiter.send(msg);
            }
            continue;
        }
        if msg.get("id").is_none() {
            continue; // notifications: nothing to do
        }
        let s = server.clone();
        tokio::spawn(async move {
            let id = msg["id"].clone();
            let reply = match s.handle(&msg).await {
                Ok(result) => json!({"jsonrpc":"2.0","id":id,"result":result}),
                Err((code, message)) => {
                    json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}})
                }
            };
            let _ = s.out.send(reply).await;
        });
    }
    drop(server);
    let _ = writer.await;
}

type Reply = Result<Value, (i64, String)>;

fn text(t: impl Into<String>) -> Value {
    json!({"content":[{"type":"text","text":t.into()}]})
}

impl Server {
    async fn notify(&self, method: &str, params: Value) {
        let _ = self
            .out
            .send(json!({"jsonrpc":"2.0","method":method,"params":params}))
            .await;
    }

    /// Sends a request to the client and waits (at most 60 s) for its result.
    async fn ask(&self, method: &str, params: Value) -> Reply {
        let id = format!("fixture-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap()
            .insert(Value::String(id.clone()).to_string(), tx);
        let req = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
        let _ = self.out.send(req).await;
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(resp)) if resp.get("result").is_some() => Ok(resp["result"].clone()),
            Ok(Ok(resp)) => Err((
                -32603,
                format!("the client answered {method} with {}", resp["error"]),
            )),
            _ => Err((-32603, format!("no answer to {method}"))),
        }
    }

    fn client_has(&self, cap: &str) -> bool {
        self.client_caps.lock().unwrap().get(cap).is_some()
    }

    async fn handle(&self, msg: &Value) -> Reply {
        let params = &msg["params"];
        match msg["method"].as_str().unwrap_or("") {
            "initialize" => {
                *self.client_caps.lock().unwrap() = params["capabilities"].clone();
                let asked = params["protocolVersion"].as_str().unwrap_or("");
                let version = if VERSIONS.contains(&asked) {
                    asked
                } else {
                    VERSIONS[0]
                };
                Ok(json!({
                    "protocolVersion": version,
                    "capabilities": {
                        "tools": {"listChanged": true},
                        "resources": {"subscribe": true, "listChanged": true},
                        "prompts": {"listChanged": true},
                        "logging": {},
                        "completions": {}
                    },
                    "serverInfo": {"name": "mcp-proxy-conformance-fixture", "version": env!("CARGO_PKG_VERSION")}
                }))
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                // Logged, so tests can see which (un)subscriptions reach the server.
                let what = format!(
                    "{} {}",
                    msg["method"].as_str().unwrap_or(""),
                    params["uri"].as_str().unwrap_or("")
                );
                self.notify(
                    "notifications/message",
                    json!({"level":"debug","logger":"conformance-fixture","data":what}),
                )
                .await;
                Ok(json!({}))
            }
            "ping" | "logging/setLevel" => Ok(json!({})),
            "completion/complete" => {
                let prefix = params["argument"]["value"].as_str().unwrap_or("");
                let values: Vec<&str> = ["paris", "park", "party"]
                    .into_iter()
                    .filter(|v| v.starts_with(prefix))
                    .collect();
                Ok(
                    json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}),
                )
            }
            "tools/list" => Ok(json!({ "tools": tools() })),
            "tools/call" => self.call(params).await,
            "resources/list" => Ok(json!({"resources": [
                {"uri":"test://static-text","name":"static-text","description":"A static text resource","mimeType":"text/plain"},
                {"uri":"test://static-binary","name":"static-binary","description":"A static binary resource","mimeType":"image/png"},
                {"uri":"test://watched-resource","name":"watched-resource","description":"A resource to subscribe to","mimeType":"text/plain"}
            ]})),
            "resources/templates/list" => Ok(json!({"resourceTemplates": [
                {"uriTemplate":"test://template/{id}/data","name":"template","description":"Data by id","mimeType":"application/json"}
            ]})),
            "resources/read" => read(params["uri"].as_str().unwrap_or("")),
            "prompts/list" => Ok(json!({"prompts": [
                {"name":"test_simple_prompt","description":"A prompt without arguments"},
                {"name":"test_prompt_with_arguments","description":"A prompt with two arguments","arguments":[
                    {"name":"arg1","description":"First test argument","required":true},
                    {"name":"arg2","description":"Second test argument","required":true}]},
                {"name":"test_prompt_with_embedded_resource","description":"A prompt embedding a resource","arguments":[
                    {"name":"resourceUri","description":"URI of the resource to embed","required":true}]},
                {"name":"test_prompt_with_image","description":"A prompt with an image"}
            ]})),
            "prompts/get" => prompt(params),
            other => Err((-32601, format!("method not found: {other}"))),
        }
    }

    async fn call(&self, params: &Value) -> Reply {
        let args = &params["arguments"];
        let token = params["_meta"]["progressToken"].clone();
        let pause = || tokio::time::sleep(Duration::from_millis(50));
        match params["name"].as_str().unwrap_or("") {
            "test_simple_text" => Ok(text("This is a simple text response for testing.")),
            "test_image_content" => {
                Ok(json!({"content":[{"type":"image","data":PNG,"mimeType":"image/png"}]}))
            }
            "test_audio_content" => {
                Ok(json!({"content":[{"type":"audio","data":WAV,"mimeType":"audio/wav"}]}))
            }
            "test_embedded_resource" => Ok(json!({"content":[{"type":"resource","resource":{
                "uri":"test://embedded-resource","mimeType":"text/plain","text":"This is an embedded resource content."}}]})),
            "test_multiple_content_types" => Ok(json!({"content":[
                {"type":"text","text":"Multiple content types test:"},
                {"type":"image","data":PNG,"mimeType":"image/png"},
                {"type":"resource","resource":{"uri":"test://mixed-content-resource","mimeType":"application/json","text":"{\"test\":\"data\",\"value\":123}"}}]})),
            "test_tool_with_logging" => {
                for (i, m) in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ]
                .iter()
                .enumerate()
                {
                    if i > 0 {
                        pause().await;
                    }
                    self.notify(
                        "notifications/message",
                        json!({"level":"info","logger":"conformance-fixture","data":m}),
                    )
                    .await;
                }
                Ok(text("Tool with logging executed"))
            }
            "test_error_handling" => Ok(
                json!({"isError":true,"content":[{"type":"text","text":"This tool intentionally returns an error for testing"}]}),
            ),
            "test_tool_with_progress" => {
                for (i, p) in [0, 50, 100].into_iter().enumerate() {
                    if i > 0 {
                        pause().await;
                    }
                    if !token.is_null() {
                        self.notify(
                            "notifications/progress",
                            json!({"progressToken":token,"progress":p,"total":100}),
                        )
                        .await;
                    }
                }
                Ok(text("Tool with progress executed"))
            }
            "test_sampling" => {
                if !self.client_has("sampling") {
                    return Err((-32602, "the client does not support sampling".into()));
                }
                let prompt = args["prompt"].as_str().unwrap_or("");
                let r = self.ask("sampling/createMessage", json!({"messages":[{"role":"user","content":{"type":"text","text":prompt}}],"maxTokens":100})).await?;
                Ok(text(format!(
                    "LLM response: {}",
                    r["content"]["text"].as_str().unwrap_or("")
                )))
            }
            "test_elicitation" => {
                if !self.client_has("elicitation") {
                    return Err((-32602, "the client does not support elicitation".into()));
                }
                let schema = json!({"type":"object","properties":{
                    "username":{"type":"string","description":"User's response"},
                    "email":{"type":"string","description":"User's email address"}},"required":["username","email"]});
                let r = self
                    .ask(
                        "elicitation/create",
                        json!({"message":args["message"],"requestedSchema":schema}),
                    )
                    .await?;
                Ok(text(format!(
                    "User response: action={}, content={}",
                    r["action"], r["content"]
                )))
            }
            "test_elicitation_sep1034_defaults" => {
                let schema = json!({"type":"object","properties":{
                    "name":{"type":"string","description":"User name","default":"John Doe"},
                    "age":{"type":"integer","description":"User age","default":30},
                    "score":{"type":"number","description":"User score","default":95.5},
                    "status":{"type":"string","description":"User status","enum":["active","inactive","pending"],"default":"active"},
                    "verified":{"type":"boolean","description":"Verification status","default":true}}});
                let r = self.ask("elicitation/create", json!({"message":"Defaults for every primitive type","requestedSchema":schema})).await?;
                Ok(text(format!(
                    "Elicitation completed: action={}, content={}",
                    r["action"], r["content"]
                )))
            }
            "test_elicitation_sep1330_enums" => {
                let schema = json!({"type":"object","properties":{
                    "untitledSingle":{"type":"string","enum":["option1","option2","option3"]},
                    "titledSingle":{"type":"string","oneOf":[{"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"},{"const":"value3","title":"Third Option"}]},
                    "legacyEnum":{"type":"string","enum":["opt1","opt2","opt3"],"enumNames":["Option One","Option Two","Option Three"]},
                    "untitledMulti":{"type":"array","items":{"type":"string","enum":["option1","option2","option3"]}},
                    "titledMulti":{"type":"array","items":{"anyOf":[{"const":"value1","title":"First Choice"},{"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}}});
                let r = self
                    .ask(
                        "elicitation/create",
                        json!({"message":"Every enum variant","requestedSchema":schema}),
                    )
                    .await?;
                Ok(text(format!(
                    "Elicitation completed: action={}, content={}",
                    r["action"], r["content"]
                )))
            }
            "test_reconnection" => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(text("Reconnection test completed successfully"))
            }
            "json_schema_2020_12_tool" => Ok(text(format!("received {args}"))),
            other => Err((-32602, format!("unknown tool: {other}"))),
        }
    }
}

fn tools() -> Value {
    let none = json!({"type":"object","properties":{}});
    let mut list: Vec<Value> = [
        ("test_simple_text", "Returns simple text"),
        ("test_image_content", "Returns an image"),
        ("test_audio_content", "Returns audio"),
        ("test_embedded_resource", "Returns an embedded resource"),
        (
            "test_multiple_content_types",
            "Returns text, image and resource",
        ),
        (
            "test_tool_with_logging",
            "Logs three messages while running",
        ),
        ("test_error_handling", "Always fails"),
        ("test_tool_with_progress", "Reports progress while running"),
        ("test_elicitation_sep1034_defaults", "Elicits with defaults"),
        (
            "test_elicitation_sep1330_enums",
            "Elicits with every enum variant",
        ),
        ("test_reconnection", "Answers after a short pause"),
    ]
    .into_iter()
    .map(|(n, d)| json!({"name":n,"description":d,"inputSchema":none}))
    .collect();
    list.push(json!({"name":"test_sampling","description":"Asks the client to sample",
        "inputSchema":{"type":"object","properties":{"prompt":{"type":"string"}},"required":["prompt"]}}));
    list.push(json!({"name":"test_elicitation","description":"Asks the user through the client",
        "inputSchema":{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}}));
    list.push(json!({"name":"json_schema_2020_12_tool","description":"Tool with JSON Schema 2020-12 features",
        "inputSchema":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
            "$defs":{"address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}}}},
            "properties":{"name":{"type":"string"},"address":{"$ref":"#/$defs/address"}},
            "additionalProperties":false}}));
    Value::Array(list)
}

fn read(uri: &str) -> Reply {
    let content = match uri {
        "test://static-text" => {
            json!({"uri":uri,"mimeType":"text/plain","text":"This is the content of the static text resource."})
        }
        "test://static-binary" => json!({"uri":uri,"mimeType":"image/png","blob":PNG}),
        "test://watched-resource" => {
            json!({"uri":uri,"mimeType":"text/plain","text":"Watched resource content."})
        }
        _ => match uri
            .strip_prefix("test://template/")
            .and_then(|r| r.strip_suffix("/data"))
        {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                let body = json!({"id":id,"templateTest":true,"data":format!("Data for ID: {id}")});
                json!({"uri":uri,"mimeType":"application/json","text":body.to_string()})
            }
            _ => return Err((-32002, format!("resource not found: {uri}"))),
        },
    };
    Ok(json!({ "contents": [content] }))
}

fn prompt(params: &Value) -> Reply {
    let args = &params["arguments"];
    let user = |content: Value| json!({"role":"user","content":content});
    let messages = match params["name"].as_str().unwrap_or("") {
        "test_simple_prompt" => vec![user(
            json!({"type":"text","text":"This is a simple prompt for testing."}),
        )],
        "test_prompt_with_arguments" => vec![user(json!({"type":"text","text":format!(
            "Prompt with arguments: arg1='{}', arg2='{}'",
            args["arg1"].as_str().unwrap_or(""),
            args["arg2"].as_str().unwrap_or("")
        )}))],
        "test_prompt_with_embedded_resource" => vec![
            user(
                json!({"type":"resource","resource":{"uri":args["resourceUri"],"mimeType":"text/plain","text":"Embedded resource content for testing."}}),
            ),
            user(json!({"type":"text","text":"Please process the embedded resource above."})),
        ],
        "test_prompt_with_image" => vec![
            user(json!({"type":"image","data":PNG,"mimeType":"image/png"})),
            user(json!({"type":"text","text":"Please analyze the image above."})),
        ],
        other => return Err((-32602, format!("unknown prompt: {other}"))),
    };
    Ok(json!({ "messages": messages }))
}

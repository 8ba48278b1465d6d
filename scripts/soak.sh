#!/usr/bin/env bash
# A bounded soak of proxyd, not part of the default test run: SOAK_MINUTES (default 10) of
# sessions opening and closing, tool calls, upstreams restarting, slow and vanishing
# clients, with proxyd's resident memory and open descriptors sampled every 5 s. Prints the
# samples and ends with a verdict line ("soak verdict: flat ..." or "... growing ...");
# exits non-zero unless flat and no request outlived its deadline. The whole output is
# also kept in target/soak.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SOAK_MINUTES="${SOAK_MINUTES:-10}"
echo "== soak: ${SOAK_MINUTES} minutes"
cargo build --locked --quiet -p proxyd --bin proxyd
cargo build --locked --quiet -p mcp-test-support --bin mock-stdio
mkdir -p target
# cargo test, not nextest: the soak runs longer than nextest's per-test limit.
status=0
cargo test --locked --quiet -p proxyd --test soak -- --ignored --nocapture --exact soak \
  2>&1 | tee target/soak.log || status=$?
grep '^soak verdict' target/soak.log || echo "soak verdict: none (the soak did not finish)"
exit "$status"

#!/usr/bin/env bash
# The whole test suite: installs the test peers, then format, lints, docs and every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
if command -v cargo-deny >/dev/null 2>&1; then
  echo "== cargo deny"
  cargo deny check
fi
echo "== tests"
# The binaries tests start (proxyd, the stdio fixtures) are built first, with the very
# commands the tests would use, so no test waits on a build of its own.
cargo build --locked --quiet -p proxyd --bin proxyd
cargo build --locked --quiet -p mcp-test-support --bin mock-stdio --bin conformance-fixture
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --doc --locked
else
  cargo test --workspace --locked --no-fail-fast
fi
echo "== examples"
bash scripts/run-examples.sh
echo "== schemathesis (docs/openapi.yaml against a live proxyd)"
bash scripts/schemathesis.sh

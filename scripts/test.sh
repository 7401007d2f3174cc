#!/usr/bin/env bash
# Runs the whole Herald test suite on a fresh machine: installs what it needs, then runs the Rust tests (unit and
# integration, which start real servers on port 0) and the Python tests (the SDK's own tests and the wire-compatibility
# suites, which start the real `herald` binary on port 0).
#
#   scripts/test.sh            everything
#   HERALD_TEST_FAST=1 ...     skip rustfmt and clippy (quicker local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "Python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e "python[dev]"

step "Rust: build"
cargo build --workspace --all-targets --locked 2>&1 | tail -n 3

if [ -z "${HERALD_TEST_FAST:-}" ]; then
  step "Rust: format and clippy"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings 2>&1 | tail -n 20
fi

step "Rust: tests"
cargo test --workspace --locked

export HERALD_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/herald"
# The suites skip their server tests when the binary is missing; here it must be there, so fail instead.
export HERALD_REQUIRE_SERVER=1
# Each suite has its own pytest settings (the SDK's are in python/pyproject.toml), so each runs on its own.
step "Python: SDK tests against $HERALD_BIN"
(cd python && ../.venv/bin/python -m pytest -q -p no:cacheprovider)

step "Python: FlowMesh wire compatibility (grpcio client generated from the contract's proto)"
.venv/bin/python -m pip install --quiet -r tests/compat/flowmesh/requirements.txt
.venv/bin/python -m pytest -q -p no:cacheprovider tests/compat/flowmesh

step "Python: NATS wire compatibility (nats-py, fluxmq)"
.venv/bin/python -m pip install --quiet -r tests/compat/nats/requirements.txt
.venv/bin/python -m pytest -q -p no:cacheprovider tests/compat/nats

step "Python: Pulsar Relay wire compatibility (pulsar-relay-client, httpx, websockets, headless Chromium)"
if ! command -v chromium >/dev/null 2>&1; then
  # The browser test opens /ws from a real page in Debian's headless Chromium.
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  fi
fi
.venv/bin/python -m pip install --quiet -r tests/compat/relay/requirements.txt
.venv/bin/python -m pytest -q -p no:cacheprovider tests/compat/relay

step "Python: the dashboard in headless Chromium (screenshots under target/test-output/dashboard/)"
.venv/bin/python -m pip install --quiet -r tests/dashboard/requirements.txt
.venv/bin/python -m pytest -q -p no:cacheprovider tests/dashboard

step "Python: EnSync wire compatibility (ensync-sdk, ensync-sdk-ws, herald.events)"
.venv/bin/python -m pip install --quiet -r tests/compat/ensync/requirements.txt
.venv/bin/python -m pytest -q -p no:cacheprovider tests/compat/ensync

#!/usr/bin/env bash
# Runs Herald's benchmarks side by side with the peers on this machine, in one run, and writes docs/benchmarks.md.
# Installs what it needs (redis-server, redis-tools, nghttp2-client, nats-server from Debian) and builds Herald in
# release mode.
#
#   scripts/bench.sh                 full run (about 8 minutes)
#   BENCH_SECONDS=2 scripts/bench.sh quicker, noisier
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null || ! command -v h2load >/dev/null \
   || ! command -v nats-server >/dev/null; then
  echo "==> installing redis-server, redis-tools, nghttp2-client (h2load) and nats-server for the comparisons"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools nghttp2-client nats-server >/dev/null
fi
echo "==> building herald (release)"
cargo build --release -p herald --locked 2>&1 | tail -n 1
# bench.py encodes the h2load request bodies with the SDK's generated protobuf classes.
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet -e python
exec .venv/bin/python scripts/bench.py "$@"

#!/usr/bin/env bash
# Runs Herald's benchmarks side by side with the peers on this machine, in one run, and writes docs/benchmarks.md.
# Installs what it needs (redis-server, redis-tools, nghttp2-client, nats-server from Debian) and builds Herald in
# release mode.
#
#   scripts/bench.sh                 full run (about 20 minutes)
#   BENCH_SECONDS=2 scripts/bench.sh quicker, noisier
#   scripts/bench.sh relay           only the Pulsar Relay section (about 11 minutes): Herald's relay against
#                                    pulsar-relay 0.2.1, installed into a venv under the work directory
#                                    (RELAY_REFERENCE_PYTHON=<python> reuses one that has pulsar-relay, httpx and
#                                    websockets); rewrites only that section of docs/benchmarks.md
#   scripts/bench.sh events          only the addressed-events (EnSync) section (about 2 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != relay ] && [ "${1:-}" != events ] && { ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null || ! command -v h2load >/dev/null \
   || ! command -v nats-server >/dev/null; }; then
  echo "==> installing redis-server, redis-tools, nghttp2-client (h2load) and nats-server for the comparisons"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools nghttp2-client nats-server >/dev/null
fi
echo "==> building herald (release)"
cargo build --release -p herald --locked 2>&1 | tail -n 1
# 10,000 WebSockets in one server (the relay section): raise the open-file limit as far as allowed; bench.py raises
# the soft limit to the hard one too, and the servers and load generator inherit it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# bench.py encodes the h2load request bodies with the SDK's generated protobuf classes.
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet -e python
exec .venv/bin/python scripts/bench.py "$@"

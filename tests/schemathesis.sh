#!/usr/bin/env bash
# The API contract under Schemathesis: `hookline serve` (the debug build) on a scratch store
# and a free loopback port, `hookline listen` as the endpoint webhooks are saved with, then
# every phase (examples, coverage, fuzzing, stateful) and every check, as configured in
# tests/schemathesis/schemathesis.toml (fixed seed, 30 examples per operation: under two
# minutes). Needs the venv tests/run.sh installs (.venv-st); stops what it started.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
st="${HOOKLINE_ST:-$root/.venv-st/bin/st}"
[ -x "$st" ] || { echo "Schemathesis is not installed at $st: run ./tests/run.sh"; exit 1; }
cargo build --quiet --locked -p hookline --bin hookline || exit 1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
api_port=$(free_port)
listen_port=$(free_port)
scratch=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

target/debug/hookline listen --addr "127.0.0.1:$listen_port" > "$scratch/listen.log" 2>&1 &
pids+=($!)
RUST_LOG=warn target/debug/hookline serve --addr "127.0.0.1:$api_port" --db "$scratch/st.db" \
  --allow-http true --allow-private-targets true > "$scratch/serve.out" 2> "$scratch/serve.err" &
pids+=($!)
token=""
for _ in $(seq 1 300); do
  token=$(sed -n 's/.*export HOOKLINE_TOKEN=//p' "$scratch/serve.out" 2>/dev/null)
  [ -n "$token" ] && break
  sleep 0.1
done
[ -n "$token" ] || { echo "hookline serve printed no token:"; cat "$scratch/serve.err"; exit 1; }

cd tests/schemathesis
HOOKLINE_ST_TOKEN="$token" HOOKLINE_ST_RECEIVER="http://127.0.0.1:$listen_port" PYTHONPATH=. \
  "$st" run "http://127.0.0.1:$api_port/v1/openapi.json" --checks all \
  --report junit --report-dir "$root/target/schemathesis" > "$root/target/schemathesis.log" 2>&1
rc=$?
sed -n '/= SUMMARY =/,$p' "$root/target/schemathesis.log"
if [ "$rc" -ne 0 ]; then
  echo "Schemathesis found failures (target/schemathesis.log has every one):"
  grep -E '^___|^- ST|Reproduce|curl ' "$root/target/schemathesis.log" | head -60
  grep -q 'panicked' "$scratch/serve.err" && { echo "serve's log:"; tail -20 "$scratch/serve.err"; }
fi
exit "$rc"

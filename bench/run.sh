#!/usr/bin/env bash
# Measures requests/second of the composed app on the `portico` host, for both
# targets, with wrk on 127.0.0.1. Every run is bounded: DURATION seconds per
# route (default 10), CONNECTIONS concurrent connections (default 16).
#
#   bench/run.sh                 # all routes, both targets
#   DURATION=5 bench/run.sh      # shorter runs
#
# Prints one table row per (target, route): requests/s and latency p50/p99.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-16}"
THREADS="${THREADS:-2}"
PORT_SPIN="${PORT_SPIN:-3901}"
PORT_WASI="${PORT_WASI:-3902}"

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi

cargo build --release -q -p portico
PORTICO=target/release/portico
"$PORTICO" build >/dev/null

DATA="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

SECRET="bench-secret-0123456789abcdef0123456789abcdef"
FLAGS='{"flags":{"new-checkout":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}}}'

start() { # target port
  "$PORTICO" kv set flags/definitions "$FLAGS" --target "$1" --data "$DATA/$1"
  "$PORTICO" serve --target "$1" --listen "127.0.0.1:$2" --data "$DATA/$1" \
    --var jwt_secret="$SECRET" >"$DATA/$1.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "portico --target $1 did not start:" >&2; cat "$DATA/$1.log" >&2; exit 1
}

start spin "$PORT_SPIN"
start wasi "$PORT_WASI"

printf '%-6s %-14s %12s %10s %10s\n' target route "requests/s" "p50" "p99"
for target in spin wasi; do
  port=$PORT_SPIN; [ "$target" = wasi ] && port=$PORT_WASI
  for route in /healthz /api/config; do
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port$route")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
    p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
    printf '%-6s %-14s %12s %10s %10s %s\n' "$target" "$route" "$rps" "$p50" "$p99" "${non2xx:+(non-2xx: $non2xx)}"
  done
done

#!/usr/bin/env bash
# Load benchmarks of the composed app on the `portico` host (release build),
# for both targets, with wrk on 127.0.0.1. Every run is bounded: DURATION
# seconds per row (default 10) with CONNECTIONS connections (default 16).
#
#   bench/run.sh                 # every scenario, both targets
#   DURATION=5 bench/run.sh      # shorter runs
#
# Rows:
#   /healthz                     the gateway alone (no storage, not rate limited)
#   /api/config                  + rate limiter (one hot key) + flags from KV
#   /api/config 10k keys         the same with 10,000 distinct client keys
#   /api/user (cookie)           + rate limiter + session verify + revocation check + profile
#   OFREP fractional             one A/B flag evaluated over OFREP for 10,000 targeting keys
# then the cost of one login at the default PBKDF2 iterations, and of a
# refused one for a known user (wrong password) and an unknown user.
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
ADMIN_PASSWORD="bench-admin-password"
FLAGS='{"flags":{"new-checkout":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"},"banner":{"state":"ENABLED","variants":{"a":"A","b":"B"},"defaultVariant":"a","targeting":{"fractional":[["a",50],["b",50]]}}}}'

start() { # target port
  "$PORTICO" kv set flags/definitions "$FLAGS" --target "$1" --data "$DATA/$1"
  # Limits high enough never to refuse: the limiter still decides every request.
  "$PORTICO" serve --target "$1" --listen "127.0.0.1:$2" --data "$DATA/$1" \
    --var jwt_secret="$SECRET" --var bootstrap_admin="root:$ADMIN_PASSWORD" \
    --var rate_limit_policies="default=1000000/1s" \
    --var rate_limit_client_header=x-forwarded-for >"$DATA/$1.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "portico --target $1 did not start:" >&2; cat "$DATA/$1.log" >&2; exit 1
}

login() { # port -> prints the session token
  curl -fsS -o /dev/null -D - -H 'content-type: application/json' \
    -d "{\"username\":\"root\",\"password\":\"$ADMIN_PASSWORD\"}" "http://127.0.0.1:$1/api/login" |
    sed -n 's/^set-cookie: session=\([^;]*\).*/\1/ip'
}

start spin "$PORT_SPIN"
start wasi "$PORT_WASI"

row() { # target label url [wrk args...]
  local target=$1 label=$2 url=$3; shift 3
  local out rps p50 p99 non2xx
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url")"
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  printf '%-6s %-22s %12s %10s %10s %s\n' "$target" "$label" "$rps" "$p50" "$p99" "${non2xx:+(non-2xx: $non2xx)}"
}

printf '%-6s %-22s %12s %10s %10s\n' target route "requests/s" "p50" "p99"
for target in spin wasi; do
  port=$PORT_SPIN; [ "$target" = wasi ] && port=$PORT_WASI
  base="http://127.0.0.1:$port"
  token="$(login "$port")"
  row "$target" "/healthz" "$base/healthz"
  row "$target" "/api/config" "$base/api/config"
  row "$target" "/api/config 10k keys" "$base/api/config" -s bench/distinct-clients.lua
  row "$target" "/api/user (cookie)" "$base/api/user" -H "cookie: session=$token"
  row "$target" "OFREP fractional" "$base" -s bench/ofrep-fractional.lua
done

echo
echo "login at the default PBKDF2 iterations (10 sequential logins each):"
for target in spin wasi; do
  port=$PORT_SPIN; [ "$target" = wasi ] && port=$PORT_WASI
  total=0
  for _ in $(seq 1 10); do
    t="$(curl -fsS -o /dev/null -w '%{time_total}' -H 'content-type: application/json' \
      -d "{\"username\":\"root\",\"password\":\"$ADMIN_PASSWORD\"}" "http://127.0.0.1:$port/api/login")"
    total="$(awk -v a="$total" -v b="$t" 'BEGIN {print a + b}')"
  done
  awk -v t="$total" -v target="$target" 'BEGIN {printf "%-6s login mean %.0f ms\n", target, t * 100}'
  # A wrong password and an unknown user must cost the same (a dummy hash
  # for the unknown one), so timing does not tell which names exist.
  for who in root nobody-by-this-name; do
    total=0
    for _ in $(seq 1 10); do
      t="$(curl -sS -o /dev/null -w '%{time_total}' -H 'content-type: application/json' \
        -d "{\"username\":\"$who\",\"password\":\"wrong-password-1\"}" "http://127.0.0.1:$port/api/login")"
      total="$(awk -v a="$total" -v b="$t" 'BEGIN {print a + b}')"
    done
    awk -v t="$total" -v target="$target" -v who="$who" \
      'BEGIN {printf "%-6s refused login (%s) mean %.0f ms\n", target, who, t * 100}'
  done
done

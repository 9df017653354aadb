#!/usr/bin/env bash
# What a request costs Portico, as a ratio to the runtime floor: the composed
# app and a minimal `wasi:http` hello component (tests/fixtures/hello), served
# by the same runtime, measured in one run with the rows interleaved so that
# whatever else the machine does weighs on all of them alike.
#
#   bench/compare.sh                   # every row, 3 rounds of 5 s each
#   ROUNDS=5 DURATION=10 bench/compare.sh
#   RUNTIMES=host bench/compare.sh     # skip the stock `wasmtime serve` rows
#
# Runtimes:
#   host      `portico serve` (release build): hello, the app on --target spin
#             (storage behaving like Spin's: SQLite's default rollback journal
#             and synchronous=FULL, a connection per `open`, queries on
#             blocking threads) and on --target wasi
#   wasmtime  stock `wasmtime serve` 48.0.8 (installed with
#             `cargo install --locked wasmtime-cli --version 48.0.8` when
#             missing): hello and dist/portico-wasi.wasm as the README runs it
#
# Each row is wrk -t1 -c$CONNECTIONS for $DURATION seconds, once per round;
# the table shows the median round's req/s, p50 and p99, and each row's ratio
# to the hello row of its runtime. Every load is bounded in time and goes to
# 127.0.0.1 only. The rate-limit policy is high enough never to refuse, so
# every limited route still makes its decision on one hot key.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
CONNECTIONS="${CONNECTIONS:-16}"
RUNTIMES="${RUNTIMES:-host wasmtime}"
WASMTIME_VERSION=48.0.8

. bench/lib.sh

command -v wrk >/dev/null || {
  echo "installing wrk (Debian package)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null
}
if [[ " $RUNTIMES " == *" wasmtime "* ]]; then
  if ! wasmtime --version 2>/dev/null | grep -q "^wasmtime $WASMTIME_VERSION"; then
    echo "installing wasmtime-cli $WASMTIME_VERSION (cargo install, several minutes)" >&2
    cargo install --locked wasmtime-cli --version "$WASMTIME_VERSION" >&2
  fi
  WASMTIME="$(command -v wasmtime || echo "$HOME/.cargo/bin/wasmtime")"
fi

build_portico
# The floor: the hello fixture, built like the components.
cargo build -q --target wasm32-wasip2 --profile wasm -p hello --target-dir target/wasm
HELLO=target/wasm/wasm32-wasip2/wasm/hello.wasm
start_work

SECRET="bench-secret-0123456789abcdef0123456789abcdef"
ADMIN_PASSWORD="bench-admin-password-0"
POLICY="default=1000000/1s"
FLAGS='{"flags":{"new-checkout":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"},"banner":{"state":"ENABLED","variants":{"a":"A","b":"B"},"defaultVariant":"a","targeting":{"fractional":[["a",50],["b",50]]}}}}'

# --- an origin for the edge-cache row: one 4 KiB JSON document, public for 5 minutes
mkdir -p "$WORK/www"
head -c 4096 /dev/zero | tr '\0' 'x' | sed 's/^/{"pad":"/; s/$/"}/' | head -c 4096 >"$WORK/www/data.json"
PORT_ORIGIN="$(free_port)"
python3 - "$PORT_ORIGIN" "$WORK/www/data.json" >"$WORK/origin.log" 2>&1 <<'EOF' &
import http.server, sys
port, path = int(sys.argv[1]), sys.argv[2]
body = open(path, "rb").read()
class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("cache-control", "public, max-age=300")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Origin).serve_forever()
EOF
PIDS+=("$!")
UPSTREAMS="{\"routes\":[{\"name\":\"edge\",\"prefix\":\"/edge/\",\"origin\":\"http://127.0.0.1:$PORT_ORIGIN\",\"strip_prefix\":true}]}"

host_serve() { # label target component port
  local label=$1 target=$2 component=$3 port=$4
  "$PORTICO" kv set flags/definitions "$FLAGS" --target "$target" --data "$WORK/$label" >/dev/null
  "$PORTICO" serve --target "$target" --component "$component" --listen "127.0.0.1:$port" \
    --data "$WORK/$label" --var jwt_secret="$SECRET" \
    --var bootstrap_admin="root:$ADMIN_PASSWORD" --var rate_limit_policies="$POLICY" \
    --var upstreams="$UPSTREAMS" >"$WORK/$label.log" 2>&1 &
  PIDS+=("$!")
  wait_for "http://127.0.0.1:$port/healthz" "$WORK/$label.log" "$label"
}

wasmtime_serve() { # label component port
  local label=$1 component=$2 port=$3
  mkdir -p "$WORK/$label/data"
  "$PORTICO" kv set flags/definitions "$FLAGS" --target wasi --data "$WORK/$label" >/dev/null
  # The README's command, with the benchmark's variables.
  "$WASMTIME" serve -S cli --addr "127.0.0.1:$port" --dir "$WORK/$label/wasi::/data" \
    --env JWT_SECRET="$SECRET" --env BOOTSTRAP_ADMIN="root:$ADMIN_PASSWORD" \
    --env RATE_LIMIT_POLICIES="$POLICY" --env UPSTREAMS="$UPSTREAMS" \
    "$component" >"$WORK/$label.log" 2>&1 &
  PIDS+=("$!")
  wait_for "http://127.0.0.1:$port/healthz" "$WORK/$label.log" "$label"
}

login() { # port -> the session token
  curl -fsS -o /dev/null -D - -H 'content-type: application/json' \
    -d "{\"username\":\"root\",\"password\":\"$ADMIN_PASSWORD\"}" "http://127.0.0.1:$1/api/login" |
    sed -n 's/^set-cookie: session=\([^;]*\).*/\1/ip'
}

prepare_app() { # port: a session, a 4 KiB asset and a cached edge entry
  local base="http://127.0.0.1:$1" token
  token="$(login "$1")"
  [ -n "$token" ] || { echo "login failed on port $1" >&2; exit 1; }
  head -c 4096 /dev/urandom >"$WORK/asset-4k.bin"
  curl -fsS -o /dev/null -X PUT -H "authorization: Bearer $token" \
    -H 'content-type: application/octet-stream' --data-binary "@$WORK/asset-4k.bin" \
    "$base/admin/assets/bench/4k.bin"
  curl -fsS -o /dev/null "$base/edge/data.json"
  curl -fsS -D - -o /dev/null "$base/edge/data.json" | grep -qi '^cache-status:.*hit' ||
    { echo "the edge route on port $1 does not hit the cache" >&2; exit 1; }
  echo "$token"
}

ROWS=() # "runtime|label|url|wrk args"
if [[ " $RUNTIMES " == *" host "* ]]; then
  P_HELLO="$(free_port)"; host_serve host-hello wasi "$HELLO" "$P_HELLO"
  P_SPIN="$(free_port)"; host_serve host-spin spin dist/portico-spin.wasm "$P_SPIN"
  P_WASI="$(free_port)"; host_serve host-wasi wasi dist/portico-wasi.wasm "$P_WASI"
  T_SPIN="$(prepare_app "$P_SPIN")"
  T_WASI="$(prepare_app "$P_WASI")"
  ROWS+=(
    "host|hello|http://127.0.0.1:$P_HELLO/|"
    "host|spin /healthz|http://127.0.0.1:$P_SPIN/healthz|"
    "host|spin /api/user|http://127.0.0.1:$P_SPIN/api/user|-H cookie: session=$T_SPIN"
    "host|spin /api/config|http://127.0.0.1:$P_SPIN/api/config|"
    "host|spin 4 KiB asset|http://127.0.0.1:$P_SPIN/assets/bench/4k.bin|"
    "host|spin edge-cache hit|http://127.0.0.1:$P_SPIN/edge/data.json|"
    "host|wasi /healthz|http://127.0.0.1:$P_WASI/healthz|"
    "host|wasi /api/user|http://127.0.0.1:$P_WASI/api/user|-H cookie: session=$T_WASI"
    "host|wasi /api/config|http://127.0.0.1:$P_WASI/api/config|"
  )
fi
if [[ " $RUNTIMES " == *" wasmtime "* ]]; then
  P_WHELLO="$(free_port)"; wasmtime_serve wasmtime-hello "$HELLO" "$P_WHELLO"
  P_WAPP="$(free_port)"; wasmtime_serve wasmtime-app dist/portico-wasi.wasm "$P_WAPP"
  T_WAPP="$(prepare_app "$P_WAPP")"
  ROWS+=(
    "wasmtime|hello|http://127.0.0.1:$P_WHELLO/|"
    "wasmtime|/healthz|http://127.0.0.1:$P_WAPP/healthz|"
    "wasmtime|/api/config|http://127.0.0.1:$P_WAPP/api/config|"
    "wasmtime|/api/user|http://127.0.0.1:$P_WAPP/api/user|-H cookie: session=$T_WAPP"
  )
fi

# --- the measurement: every row once per round, rows interleaved
RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!ROWS[@]}"; do
    IFS='|' read -r runtime label url args <<<"${ROWS[$i]}"
    header=()
    [ -n "$args" ] && header=(-H "${args#-H }")
    out="$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${header[@]}" "$url")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
    p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
    errors="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
    echo "$i|$round|$rps|$p50|$p99|${errors:-0}" >>"$RESULTS"
    echo "round $round: $runtime $label: $rps req/s${errors:+ (non-2xx: $errors)}" >&2
  done
done

# --- the table: the median round of each row, and its ratio to its runtime's hello
printf '\n%-9s %-22s %10s %9s %9s %7s %s\n' runtime route "req/s" p50 p99 ratio ""
declare -A FLOOR
for i in "${!ROWS[@]}"; do
  IFS='|' read -r runtime label _ _ <<<"${ROWS[$i]}"
  line="$(awk -F'|' -v i="$i" '$1==i' "$RESULTS" | sort -t'|' -k3 -g | awk -v n="$ROUNDS" 'NR==int((n+1)/2)')"
  IFS='|' read -r _ _ rps p50 p99 errors <<<"$line"
  [ "$label" = hello ] && FLOOR[$runtime]="$rps"
  ratio="$(awk -v a="$rps" -v b="${FLOOR[$runtime]}" 'BEGIN {printf "%.2f", a / b}')"
  note=""; [ "$errors" != 0 ] && note="(non-2xx: $errors)"
  printf '%-9s %-22s %10.0f %9s %9s %7s %s\n' "$runtime" "$label" "$rps" "$p50" "$p99" "$ratio" "$note"
done

#!/usr/bin/env bash
# How many storage calls one request makes on each route: on --target spin
# the Spin key-value, SQLite and variables calls, on --target wasi the
# `wasi:filesystem` calls, counted from the host's trace of every host call
# (RUST_LOG) while one request is served, after a warm-up request.
#
#   bench/calls.sh
#
# The wasi figures are what stock `wasmtime serve` is asked to do too (the
# same artifact makes the same calls); there each filesystem call is also a
# hop to a blocking thread.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_portico
start_work

SECRET="bench-secret-0123456789abcdef0123456789abcdef"
ADMIN_PASSWORD="bench-admin-password-0"
FLAGS='{"flags":{"new-checkout":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}}}'

count() { # log -> "kv|sqlite|variables|fs|streams"
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -a ': call' | grep -a -o 'module="[^"]*" function="[^"]*"' |
    awk '
      /module="key-value"/ && !/open/ { kv++ }
      /module="sqlite"/ && /execute/ { sql++ }
      /module="variables"/ { vars++ }
      /function="\[method\]descriptor\./ || /directory-entry-stream/ { fs++ }
      /module="streams"/ { streams++ }
      END { printf "%d|%d|%d|%d|%d\n", kv, sql, vars, fs, streams }'
}

# kv: key-value get/set/delete/... (not `open`); sqlite: statements executed;
# variables: variable reads; wasi:fs: `wasi:filesystem` descriptor calls;
# streams: `wasi:io/streams` calls, for HTTP bodies and file streams alike
# (the /healthz row is the HTTP-only baseline).
printf '%-6s %-28s %6s %7s %10s %8s %8s\n' target request kv sqlite variables wasi:fs streams
for target in spin wasi; do
  port="$(free_port)"
  log="$WORK/$target.log"
  "$PORTICO" kv set flags/definitions "$FLAGS" --target "$target" --data "$WORK/$target" >/dev/null
  RUST_LOG="portico::spin=trace,wasmtime_wasi=trace" "$PORTICO" serve --target "$target" \
    --listen "127.0.0.1:$port" --data "$WORK/$target" --var jwt_secret="$SECRET" \
    --var bootstrap_admin="root:$ADMIN_PASSWORD" >"$log" 2>&1 &
  PIDS+=("$!")
  wait_for "http://127.0.0.1:$port/healthz" "$log" "portico --target $target"
  base="http://127.0.0.1:$port"
  token="$(curl -fsS -o /dev/null -D - -H 'content-type: application/json' \
    -d "{\"username\":\"root\",\"password\":\"$ADMIN_PASSWORD\"}" "$base/api/login" |
    sed -n 's/^set-cookie: session=\([^;]*\).*/\1/ip')"
  head -c 4096 /dev/urandom | curl -fsS -o /dev/null -X PUT -H "authorization: Bearer $token" \
    -H 'content-type: application/octet-stream' --data-binary @- "$base/admin/assets/bench/4k.bin"
  for request in "GET /healthz" "GET /api/config" "GET /api/user (session)" "GET /assets/bench/4k.bin"; do
    path="$(awk '{print $2}' <<<"$request")"
    args=(); [[ "$request" == *session* ]] && args=(-H "cookie: session=$token")
    curl -fsS -o /dev/null "${args[@]}" "$base$path"  # warm-up
    sleep 0.2; : >"$log"
    curl -fsS -o /dev/null "${args[@]}" "$base$path"
    sleep 0.3
    IFS='|' read -r kv sql vars fs streams <<<"$(count "$log")"
    printf '%-6s %-28s %6s %7s %10s %8s %8s\n' "$target" "$request" "$kv" "$sql" "$vars" "$fs" "$streams"
  done
done

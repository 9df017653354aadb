#!/usr/bin/env bash
# Streaming benchmark: memory and first-byte time of large assets on the
# `portico` host (release build), and 1 MiB GET throughput side by side with
# nginx serving the same file, with wrk and curl on 127.0.0.1. Bounded: each
# wrk row runs DURATION seconds (default 10), every transfer has a curl
# timeout.
#
#   bench/streaming.sh               # spin target
#   TARGET=wasi bench/streaming.sh   # the stock-WASI build
#   BIG_MIB=1024 bench/streaming.sh  # the size of the large upload (MiB)
#
# Rows:
#   upload of a BIG_MIB asset        peak host RSS over idle during the PUT
#   8 clients x 256 MiB download     peak host RSS over idle while all 8 run
#   8 clients x BIG_MIB proxied      the same, through an upstream route to nginx
#                                    (not cached: larger than an entry may be)
#   first byte of a 256 MiB asset    median of 5 curl time_starttransfer
#   GET 1 MiB (wrk)                  portico req/s over nginx req/s
#   GET 4 KiB (wrk)                  the per-request floor of an asset GET,
#                                    over the same nginx 1 MiB rate
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
TARGET="${TARGET:-spin}"
BIG_MIB="${BIG_MIB:-1024}"

. bench/lib.sh
ensure_wrk_and_nginx
build_portico
start_work
KEEP_LOG="${KEEP_LOG:-}"

mkdir -p "$WORK/www/bench"
head -c 1048576 /dev/urandom >"$WORK/www/bench/f1m.bin"
head -c $((256 << 20)) /dev/urandom >"$WORK/f256m.bin"
head -c $((BIG_MIB << 20)) /dev/urandom >"$WORK/www/bench/big.bin"

start_nginx "$WORK/www"
wait_for "$NGINX_URL/bench/f1m.bin" "$WORK/nginx/error.log" nginx

SECRET="bench-secret-0123456789abcdef0123456789abcdef"
ADMIN_PASSWORD="bench-admin-password"
PORT_PORTICO="$(free_port)"
"$PORTICO" serve --target "$TARGET" --listen "127.0.0.1:$PORT_PORTICO" --data "$WORK/data" \
  --var jwt_secret="$SECRET" --var bootstrap_admin="root:$ADMIN_PASSWORD" \
  --var rate_limit_policies="default=1000000/1s" --response-timeout 30m \
  --var assets_max_object_bytes=$(((BIG_MIB > 256 ? BIG_MIB : 256) + 1 << 20)) \
  --var upstreams="{\"routes\":[{\"name\":\"origin\",\"prefix\":\"/origin/\",\"origin\":\"$NGINX_URL\",\"strip_prefix\":true}]}" \
  >"$WORK/portico.log" 2>&1 &
HOST_PID=$!
PIDS+=("$HOST_PID")
PORTICO_URL="http://127.0.0.1:$PORT_PORTICO"
wait_for "$PORTICO_URL/healthz" "$WORK/portico.log" "portico serve --target $TARGET"
TOKEN="$(curl -fsS -o /dev/null -D - -H 'content-type: application/json' \
  -d "{\"username\":\"root\",\"password\":\"$ADMIN_PASSWORD\"}" "$PORTICO_URL/api/login" |
  sed -n 's/^set-cookie: session=\([^;]*\).*/\1/ip')"
[ -n "$TOKEN" ] || { echo "login failed" >&2; exit 1; }
upload() { # file path
  curl -fsS --max-time 600 -o /dev/null -H "authorization: Bearer $TOKEN" \
    -T "$1" "$PORTICO_URL/admin/assets/$2"
}
upload "$WORK/www/bench/f1m.bin" bench/f1m.bin
# Warm: the first requests compile and fill caches.
for _ in 1 2 3; do curl -fsS -o /dev/null "$PORTICO_URL/assets/bench/f1m.bin"; done
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# Upload of the big asset.
idle="$(rss_now "$HOST_PID")"
start_rss "$HOST_PID"
started="$(date +%s.%N)"
upload "$WORK/www/bench/big.bin" bench/big.bin
ended="$(date +%s.%N)"
stop_rss
UPLOAD_GROWTH="$(mib $((RSS_PEAK - idle)))"
UPLOAD_SECS="$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')"
echo "measured: upload of $BIG_MIB MiB" >&2

# Host RSS growth (MiB) while 8 clients download url $1 at once, each body
# checked against the SHA-256 of file $2.
eight_downloads() { # url file
  local want idle i pids=()
  want="$(sha256sum "$2" | cut -d' ' -f1)"
  idle="$(rss_now "$HOST_PID")"
  start_rss "$HOST_PID"
  for i in 1 2 3 4 5 6 7 8; do
    (curl -fsS --max-time 900 "$1" | sha256sum >"$WORK/download$i") &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do wait "$i"; done
  stop_rss
  for i in 1 2 3 4 5 6 7 8; do
    [ "$(cut -d' ' -f1 "$WORK/download$i")" = "$want" ] || { echo "$1: download $i differs" >&2; exit 1; }
  done
  mib $((RSS_PEAK - idle))
}

upload "$WORK/f256m.bin" bench/f256m.bin
DOWNLOAD_GROWTH="$(eight_downloads "$PORTICO_URL/assets/bench/f256m.bin" "$WORK/f256m.bin")"
echo "measured: 8 x 256 MiB downloads" >&2
PROXY_GROWTH="$(eight_downloads "$PORTICO_URL/origin/bench/big.bin" "$WORK/www/bench/big.bin")"
echo "measured: 8 x $BIG_MIB MiB proxied" >&2

# Time to first byte of the 256 MiB asset (each download read to the end).
TTFB="$(for _ in 1 2 3 4 5; do
  curl -sS --max-time 60 -o /dev/null -w "%{time_starttransfer}\n" \
    "$PORTICO_URL/assets/bench/f256m.bin"
done | sort -n | sed -n 3p)"
TTFB_MS="$(awk -v s="${TTFB:-0}" 'BEGIN { printf "%.1f", s * 1000 }')"
echo "measured: first byte" >&2

# 1 MiB GET throughput, side by side with nginx.
rps() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$1" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }
head -c 4096 /dev/urandom >"$WORK/f4k.bin"
upload "$WORK/f4k.bin" bench/f4k.bin
P_RPS="$(rps "$PORTICO_URL/assets/bench/f1m.bin")"
N_RPS="$(rps "$NGINX_URL/bench/f1m.bin")"
F_RPS="$(rps "$PORTICO_URL/assets/bench/f4k.bin")"
echo "measured: GET 1 MiB, GET 4 KiB" >&2

echo
echo "portico --target $TARGET, $(nproc) cores; wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s for the last rows"
echo
echo "| what | measured |"
echo "|---|---:|"
echo "| host RSS growth during the upload of a $BIG_MIB MiB asset (${UPLOAD_SECS} s) | $UPLOAD_GROWTH MiB |"
echo "| host RSS growth while 8 clients each download a 256 MiB asset | $DOWNLOAD_GROWTH MiB |"
echo "| host RSS growth while 8 clients each download a $BIG_MIB MiB response proxied from nginx | $PROXY_GROWTH MiB |"
echo "| time to first byte of a 256 MiB asset (median of 5) | $TTFB_MS ms |"
awk -v p="$P_RPS" -v n="$N_RPS" 'BEGIN {
  printf "| GET 1 MiB asset: portico %d req/s, nginx %d req/s | %.2fx nginx |\n", p, n, (n > 0 ? p / n : 0) }'
awk -v f="$F_RPS" -v n="$N_RPS" 'BEGIN {
  printf "| GET 4 KiB asset (the floor of any asset GET): portico %d req/s | %.2fx nginx 1 MiB |\n", f, (n > 0 ? f / n : 0) }'

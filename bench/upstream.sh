#!/usr/bin/env bash
# Upstream-route benchmark: the gateway proxying to an origin (nginx) through
# its RFC 9111 shared cache, on the `portico` host (release build), for both
# targets, with wrk on 127.0.0.1. Every run is bounded: DURATION seconds per
# row (default 10), THREADS wrk threads (default 2), CONNECTIONS connections
# (default 32).
#
#   bench/upstream.sh                # spin, then wasi, then nginx alone
#   DURATION=5 bench/upstream.sh     # shorter runs
#   TARGETS=wasi bench/upstream.sh   # one target only
#
# Rows (for each target):
#   /healthz                 the gateway alone (no origin)
#   /cached/data.json        a cache hit: a 4 KiB object the origin marks
#                            `public, max-age=300`, stored by one warm-up request
#   /direct/data.json        the same object on a route with `"cache": false`:
#                            every request goes to the origin (the miss path)
# and the origin itself:
#   nginx /data.json         nginx serving the file directly
# "origin requests" is the number of lines nginx wrote to its access log during
# the row; for the cached row it is compared with the requests wrk completed to
# give the origin load the cache saved. wrk, the gateway and the origin share
# the machine's cores. Installs wrk and nginx (Debian packages) when missing;
# nginx runs as the current user from a generated config in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
TARGETS="${TARGETS:-spin wasi}"

. bench/lib.sh
ensure_wrk_and_nginx
build_portico
start_work

stop() { # pid: stop one process this script started and wait for it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local kept=()
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

# --- the origin: nginx serving a 4 KiB JSON document, cacheable for 5 minutes ---
mkdir -p "$WORK/www" "$WORK/nginx"
hex="$(head -c 2043 /dev/urandom | od -An -v -tx1 | tr -d ' \n')"
printf '{"pad":"%s"}\n' "${hex:0:4085}" >"$WORK/www/data.json" # 8 + 4085 + 3 = 4096 bytes
[ "$(wc -c <"$WORK/www/data.json")" -eq 4096 ] || { echo "data.json is not 4096 bytes" >&2; exit 1; }

ACCESS_LOG="$WORK/nginx/access.log"
# One line per request, written unbuffered: `wc -l` counts origin requests.
start_nginx "$WORK/www" \
  "types { application/json json; } log_format bench '\$remote_addr \$status \$request'; access_log $ACCESS_LOG bench; etag on;" \
  'location = /data.json { add_header Cache-Control "public, max-age=300" always; }'
wait_for "$NGINX_URL/data.json" "$WORK/nginx/error.log" nginx

header() { # url name -> the value of that response header (first one), empty when absent
  curl -sS -o /dev/null -D - "$1" |
    sed -n "s/^$2: *\\(.*[^[:space:]]\\)[[:space:]]*\$/\\1/ip" | head -n 1
}
expect200() { # url
  local got
  got="$(curl -sS -o /dev/null -w '%{http_code}' "$1" || true)"
  [ "$got" = 200 ] || { echo "$1 answered ${got:-nothing}, expected 200" >&2; exit 1; }
}

expect200 "$NGINX_URL/data.json"
[ -n "$(header "$NGINX_URL/data.json" etag)" ] || { echo "nginx sends no ETag for /data.json" >&2; exit 1; }
case "$(header "$NGINX_URL/data.json" cache-control)" in
  *max-age=300*) ;;
  *) echo "nginx sends no 'Cache-Control: public, max-age=300' for /data.json" >&2; exit 1 ;;
esac

# --- measurements ---
origin_lines() { wc -l <"$ACCESS_LOG"; }

ROWS=()
CACHED_SUMMARY=()
# Runs wrk on url; sets RPS P99 REQS ORIGIN (origin requests during the run).
measure() { # label url
  local label=$1 url=$2 out before bad errors
  before="$(origin_lines)"
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")"
  sleep 0.5 # let the origin log requests that were in flight when wrk stopped
  ORIGIN=$(($(origin_lines) - before))
  RPS="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
  P99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  REQS="$(awk '/requests in/ {print $1}' <<<"$out")"
  bad="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  errors="$(grep 'Socket errors' <<<"$out" || true)"
  [ -n "$bad" ] && echo "warning: $label: $bad of $REQS responses were not 2xx/3xx" >&2
  [ -n "$errors" ] && echo "warning: $label:$errors" >&2
  echo "measured: $label ($REQS requests, $ORIGIN origin requests)" >&2
}

SECRET="bench-secret-0123456789abcdef0123456789abcdef"
UPSTREAMS="$(printf '{"routes":[%s,%s]}' \
  "{\"name\":\"cached\",\"prefix\":\"/cached/\",\"origin\":\"$NGINX_URL\",\"strip_prefix\":true}" \
  "{\"name\":\"direct\",\"prefix\":\"/direct/\",\"origin\":\"$NGINX_URL\",\"strip_prefix\":true,\"cache\":false}")"

for target in $TARGETS; do
  port="$(free_port)"
  # Limits high enough never to refuse: the limiter still decides every request.
  "$PORTICO" serve --target "$target" --listen "127.0.0.1:$port" --data "$WORK/data-$target" \
    --var jwt_secret="$SECRET" \
    --var rate_limit_policies="default=1000000/1s" \
    --var upstreams="$UPSTREAMS" >"$WORK/portico-$target.log" 2>&1 &
  server=$!
  PIDS+=("$server")
  base="http://127.0.0.1:$port"
  wait_for "$base/healthz" "$WORK/portico-$target.log" "portico serve --target $target"

  expect200 "$base/healthz"
  expect200 "$base/direct/data.json"
  expect200 "$base/cached/data.json" # the warm-up: a miss that stores the response
  status="$(header "$base/cached/data.json" cache-status)"
  case "$status" in
    *hit*) ;;
    *) echo "--target $target: the second GET /cached/data.json was not a cache hit (Cache-Status: '${status:-absent}')" >&2
       echo "portico log:" >&2; cat "$WORK/portico-$target.log" >&2; exit 1 ;;
  esac
  direct_status="$(header "$base/direct/data.json" cache-status)"
  case "$direct_status" in
    *bypass*) ;;
    *) echo "warning: --target $target: /direct/data.json Cache-Status is '${direct_status:-absent}', expected fwd=bypass" >&2 ;;
  esac

  measure "$target /healthz" "$base/healthz"
  ROWS+=("| $target | /healthz | $RPS | $P99 | $ORIGIN |")
  measure "$target /cached/data.json" "$base/cached/data.json"
  ROWS+=("| $target | /cached/data.json (hit) | $RPS | $P99 | $ORIGIN |")
  CACHED_SUMMARY+=("$(awk -v t="$target" -v c="$REQS" -v o="$ORIGIN" 'BEGIN {
    printf "%s: %d client requests, %d origin requests: %.2f%% of the origin load saved", t, c, o, (c > 0 ? (c - o) * 100 / c : 0) }')")
  measure "$target /direct/data.json" "$base/direct/data.json"
  ROWS+=("| $target | /direct/data.json (miss path) | $RPS | $P99 | $ORIGIN |")

  stop "$server" # one gateway at a time: the next target gets the cores to itself
done

measure "nginx /data.json" "$NGINX_URL/data.json"
ROWS+=("| nginx | /data.json (origin directly) | $RPS | $P99 | $ORIGIN |")

echo
echo "portico (--target ${TARGETS// /, }) in front of nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), 4 KiB JSON, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores"
echo
echo "| target | request | requests/s | p99 | origin requests |"
echo "|---|---|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "origin load saved by the cache (cached row):"
printf '  %s\n' "${CACHED_SUMMARY[@]}"

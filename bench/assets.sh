#!/usr/bin/env bash
# Static-asset benchmark: the `assets` component on the `portico` host
# (release build) against nginx serving the same files from disk, with wrk on
# 127.0.0.1. Every run is bounded: DURATION seconds per row (default 10),
# THREADS wrk threads (default 2), CONNECTIONS connections (default 32).
#
#   bench/assets.sh                  # spin target
#   TARGET=wasi bench/assets.sh      # the stock-WASI build
#   DURATION=5 bench/assets.sh       # shorter runs
#
# Rows (each for portico, then nginx):
#   GET 4 KiB                        a 4 KiB object, 200
#   GET 1 MiB                        a 1 MiB object, 200
#   304 revalidation                 the 4 KiB object with If-None-Match: <its ETag>
# MiB/s is wrk's Transfer/sec (headers included). wrk and the server share the
# machine's cores. Installs wrk and nginx (Debian packages) when missing; nginx
# runs as the current user from a generated config in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
TARGET="${TARGET:-spin}"

. bench/lib.sh
ensure_wrk_and_nginx
build_portico
start_work

# The files: incompressible, in a folder `bench/` for both servers.
mkdir -p "$WORK/www/bench"
head -c 4096 /dev/urandom >"$WORK/www/bench/f4k.bin"
head -c 1048576 /dev/urandom >"$WORK/www/bench/f1m.bin"

# --- portico ---
SECRET="bench-secret-0123456789abcdef0123456789abcdef"
ADMIN_PASSWORD="bench-admin-password"
PORT_PORTICO="$(free_port)"
# Limits high enough never to refuse: the limiter still decides every request.
"$PORTICO" serve --target "$TARGET" --listen "127.0.0.1:$PORT_PORTICO" --data "$WORK/data" \
  --var jwt_secret="$SECRET" --var bootstrap_admin="root:$ADMIN_PASSWORD" \
  --var rate_limit_policies="default=1000000/1s" >"$WORK/portico.log" 2>&1 &
PIDS+=("$!")
PORTICO_URL="http://127.0.0.1:$PORT_PORTICO"
wait_for "$PORTICO_URL/healthz" "$WORK/portico.log" "portico serve --target $TARGET"

PORTICO_TOKEN="$(curl -fsS -o /dev/null -D - -H 'content-type: application/json' \
  -d "{\"username\":\"root\",\"password\":\"$ADMIN_PASSWORD\"}" "$PORTICO_URL/api/login" |
  sed -n 's/^set-cookie: session=\([^;]*\).*/\1/ip')"
[ -n "$PORTICO_TOKEN" ] || { echo "login failed" >&2; exit 1; }
export PORTICO_TOKEN
"$PORTICO" assets sync "$WORK/www/bench" --prefix bench --url "$PORTICO_URL" >&2

# --- nginx ---
start_nginx "$WORK/www"
wait_for "$NGINX_URL/bench/f4k.bin" "$WORK/nginx/error.log" nginx

# --- measurements ---
etag() { # url -> its ETag header value
  curl -fsS -o /dev/null -D - "$1" | sed -n 's/^etag: *\(.*[^[:space:]]\)[[:space:]]*$/\1/ip' | head -n 1
}
expect() { # status url [curl args...]
  local want=$1 url=$2 got; shift 2
  got="$(curl -sS -o /dev/null -w '%{http_code}' "$@" "$url")"
  [ "$got" = "$want" ] || { echo "$url answered $got, expected $want" >&2; exit 1; }
}
mib() { # wrk size such as 12.34MB -> MiB (wrk's units are powers of 1024)
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1 / 1024 : 1 / 1048576
    printf "%.1f", n * f }'
}
measure() { # url [wrk args...] -> "rps mib/s"
  local url=$1 out rps transfer bad; shift
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@" "$url")"
  rps="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
  transfer="$(awk '/Transfer\/sec/ {print $2}' <<<"$out")"
  bad="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  [ -n "$bad" ] && echo "warning: $url: $bad responses were not 2xx/3xx" >&2
  echo "$rps $(mib "$transfer")"
}

P_ETAG="$(etag "$PORTICO_URL/assets/bench/f4k.bin")"
N_ETAG="$(etag "$NGINX_URL/bench/f4k.bin")"
[ -n "$P_ETAG" ] && [ -n "$N_ETAG" ] || { echo "no ETag (portico: '$P_ETAG', nginx: '$N_ETAG')" >&2; exit 1; }
for base in "$PORTICO_URL/assets" "$NGINX_URL"; do
  expect 200 "$base/bench/f4k.bin"
  expect 200 "$base/bench/f1m.bin"
done
expect 304 "$PORTICO_URL/assets/bench/f4k.bin" -H "If-None-Match: $P_ETAG"
expect 304 "$NGINX_URL/bench/f4k.bin" -H "If-None-Match: $N_ETAG"

ROWS=()
row() { # label portico-path nginx-path [portico-etag nginx-etag]
  local label=$1 ppath=$2 npath=$3 p n
  if [ $# -gt 3 ]; then
    p="$(measure "$PORTICO_URL$ppath" -H "If-None-Match: $4")"
    n="$(measure "$NGINX_URL$npath" -H "If-None-Match: $5")"
  else
    p="$(measure "$PORTICO_URL$ppath")"
    n="$(measure "$NGINX_URL$npath")"
  fi
  read -r prps pmib <<<"$p"
  read -r nrps nmib <<<"$n"
  ROWS+=("$(awk -v l="$label" -v pr="$prps" -v pm="$pmib" -v nr="$nrps" -v nm="$nmib" 'BEGIN {
    printf "| %s | %d | %.1f | %d | %.1f | %.2f |", l, pr, pm, nr, nm, (nr > 0 ? pr / nr : 0) }')")
  echo "measured: $label" >&2
}

row "GET 4 KiB" /assets/bench/f4k.bin /bench/f4k.bin
row "GET 1 MiB" /assets/bench/f1m.bin /bench/f1m.bin
row "304 revalidation (4 KiB)" /assets/bench/f4k.bin /bench/f4k.bin "$P_ETAG" "$N_ETAG"

echo
echo "portico --target $TARGET vs nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores"
echo
echo "| request | portico req/s | portico MiB/s | nginx req/s | nginx MiB/s | portico/nginx (req/s) |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"

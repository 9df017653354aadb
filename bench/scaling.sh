#!/usr/bin/env bash
# Several instances behind a load balancer, sharing one state: 1, 2 and 3
# `portico serve` processes (release build, --target spin) with the
# key-value store on one Redis and the databases in one SQLite file
# (--runtime-config-file), behind nginx (round robin, keep-alive to each
# instance). For each count: req/s, p50 and p99 of /api/config (flags from
# Redis, a rate-limit decision in SQLite) and /api/user (a session checked
# against the revocation records in SQLite, the user read from Redis); then
# the cross-instance burst: 300 requests from 32 connections against a limit
# of 100 an hour, and how many were admitted. A first row runs one instance
# on its data folder alone (both stores in its SQLite files), for what the
# shared stores cost.
#
#   bench/scaling.sh                  # 3 rounds of 5 s per row
#   ROUNDS=5 DURATION=10 bench/scaling.sh
#
# Every instance and the load generator share this machine's cores, so more
# instances add no capacity here: the rows show what sharing costs, and
# that the limit stays one limit. Loads are bounded in time, on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
CONNECTIONS="${CONNECTIONS:-32}"

. bench/lib.sh

ensure_wrk_and_nginx
command -v redis-server >/dev/null || {
  echo "installing redis-server (Debian package)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
}
build_portico
start_work

SECRET="bench-secret-0123456789abcdef0123456789abcdef"
ADMIN_PASSWORD="bench-admin-password-0"

REDIS_PORT="$(free_port)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
cat >"$WORK/runtime-config.toml" <<EOF
[key_value_store.default]
type = "redis"
url = "redis://127.0.0.1:$REDIS_PORT"

[sqlite_database.default]
type = "spin"
path = "$WORK/shared/sqlite_db.db"
EOF

INSTANCE_PIDS=()
INSTANCE_PORTS=()
start_instances() { # count [folder: no runtime configuration]
  local shared=(--runtime-config-file "$WORK/runtime-config.toml")
  [ "${2:-}" = folder ] && shared=()
  for i in $(seq 1 "$1"); do
    local port
    port="$(free_port)"
    "$PORTICO" serve --listen "127.0.0.1:$port" --data "$WORK/instance-$i" \
      "${shared[@]}" \
      --var "jwt_secret=$SECRET" --var "bootstrap_admin=admin:$ADMIN_PASSWORD" \
      --var "password_iterations=1000" \
      --var "rate_limit_policies=default=1000000/1s, burst=100/1h" \
      --var "rate_limit_routes=/api/burst/=burst" \
      >"$WORK/instance-$i.log" 2>&1 &
    PIDS+=("$!")
    INSTANCE_PIDS+=("$!")
    INSTANCE_PORTS+=("$port")
    wait_for "http://127.0.0.1:$port/healthz" "$WORK/instance-$i.log" "instance $i"
  done
}
stop_instances() {
  for pid in "${INSTANCE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${INSTANCE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  INSTANCE_PIDS=()
  INSTANCE_PORTS=()
}

# nginx in front of the instances running now; sets NGINX_URL.
NGINX_PID=""
start_balancer() {
  local servers=""
  for port in "${INSTANCE_PORTS[@]}"; do servers+="server 127.0.0.1:$port; "; done
  [ -n "$NGINX_PID" ] && { kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; }
  start_nginx "$WORK" "access_log off; upstream portico { $servers keepalive 64; }" \
    'location / { proxy_pass http://portico; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }'
  NGINX_PID="${PIDS[-1]}"
  wait_for "$NGINX_URL/healthz" "$WORK/nginx/error.log" "nginx"
}

RESULTS="$WORK/results"
: >"$RESULTS"
for setup in folder:1 redis:1 redis:2 redis:3; do
  count="${setup#*:}"
  start_instances "$count" "${setup%:*}"
  start_balancer
  token="$(curl -fsS -D - -o /dev/null -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "$NGINX_URL/api/login" |
    awk -F'[=;]' 'tolower($0) ~ /^set-cookie: session=/ {print $2; exit}')"
  [ -n "$token" ] || { echo "no session from /api/login" >&2; exit 1; }
  # Warm every instance's pool and compile cache.
  wrk -t2 -c"$CONNECTIONS" -d2s "$NGINX_URL/api/config" >/dev/null
  for round in $(seq 1 "$ROUNDS"); do
    for path in /api/config /api/user; do
      out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        -H "cookie: session=$token" "$NGINX_URL$path")"
      rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
      p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
      p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
      errors="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
      echo "$setup|$path|$rps|$p50|$p99|${errors:-0}|$round" >>"$RESULTS"
    done
  done
  # The burst: 300 requests, 32 at a time, round robin over the instances,
  # to a path under the `burst` policy that no route serves: an admitted
  # request is answered 404, a refused one 429.
  admitted="$(seq 1 300 | xargs -P 32 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
    "$NGINX_URL/api/burst/n{}" | grep -c '^404$' || true)"
  next="$(curl -s -o /dev/null -w '%{http_code}' "$NGINX_URL/api/burst/after")"
  echo "burst|$setup|$admitted|$next" >>"$RESULTS"
  # The next count starts from a fresh limit: the burst's records live in
  # the shared database, removed while no instance runs.
  stop_instances
  rm -rf "$WORK"/shared/sqlite_db.db* "$WORK"/instance-*
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
done

echo
label() { # setup -> words
  case "$1" in
    folder:1) echo "1, its own data folder" ;;
    redis:1) echo "1, Redis + one SQLite file" ;;
    redis:*) echo "${1#*:}, Redis + one SQLite file" ;;
  esac
}
echo "| instances | path | req/s | ratio to 1 on Redis | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|---|"
declare -A BASE
for path in /api/config /api/user; do
  BASE[$path]="$(awk -F'|' -v p="$path" '$1=="redis:1" && $2==p' "$RESULTS" |
    sort -t'|' -k3 -g | awk -v n="$ROUNDS" -F'|' 'NR==int((n+1)/2) {print $3}')"
done
for setup in folder:1 redis:1 redis:2 redis:3; do
  for path in /api/config /api/user; do
    line="$(awk -F'|' -v c="$setup" -v p="$path" '$1==c && $2==p' "$RESULTS" |
      sort -t'|' -k3 -g | awk -v n="$ROUNDS" 'NR==int((n+1)/2)')"
    IFS='|' read -r _ _ rps p50 p99 errors _ <<<"$line"
    ratio="$(awk -v a="$rps" -v b="${BASE[$path]}" 'BEGIN {printf "%.2f", a / b}')"
    echo "| $(label "$setup") | \`$path\` | $rps | ${ratio}x | $p50 | $p99 | $errors |"
  done
done
echo
echo "| instances | burst of 300 (32 connections), limit 100/h: admitted | next request |"
echo "|---|---|---|"
awk -F'|' '$1=="burst" {print $2 "|" $3 "|" $4}' "$RESULTS" | while IFS='|' read -r setup admitted next; do
  echo "| $(label "$setup") | $admitted | $next |"
done

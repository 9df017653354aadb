# Shared by the benchmark scripts (sourced, not run): root helper, wrk and
# nginx installation, the release host, a work folder cleaned up on exit,
# free ports and waiting for a server.
# shellcheck shell=bash

as_root() { # command... : directly when root, else with sudo when there is one
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "need root (or sudo) to run: $*" >&2; exit 1; fi
}

# Installs wrk and nginx (Debian packages) when missing; sets NGINX.
ensure_wrk_and_nginx() {
  NGINX="$(command -v nginx || true)"
  [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  [ -z "$NGINX" ] && missing+=(nginx)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)" >&2
    # Keep the package's own service from starting (port 80) while installing.
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
      as_root chmod 755 "$policy"
    fi
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    [ -n "$policy" ] && as_root rm -f "$policy"
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
  fi
}

# Builds the release host and composes the components; sets PORTICO.
build_portico() {
  cargo build --release -q -p portico
  PORTICO=target/release/portico
  "$PORTICO" build >/dev/null
}

# A temporary folder WORK and a PIDS list, both cleaned up on exit.
start_work() {
  WORK="$(mktemp -d)"
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}

free_port() { # a port in 20000-29999 nothing listens on
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 10000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "no free port found" >&2; exit 1
}

wait_for() { # url log label
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$3 did not start:" >&2; cat "$2" >&2; exit 1
}

# nginx serving the folder $1 on a free port, as the current user, from a
# generated config in $WORK/nginx; sets NGINX_URL (wait_for it before use).
# $2: http-level directives (default: no access log); $3: server-level ones.
start_nginx() { # root [http directives] [server directives]
  local port user_line=""
  port="$(free_port)"
  mkdir -p "$WORK/nginx"
  [ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"
  cat >"$WORK/nginx/nginx.conf" <<EOF
$user_line
daemon off;
master_process on;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  default_type application/octet-stream;
  ${2:-access_log off;}
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    root $1;
    ${3:-}
  }
}
EOF
  "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
    >"$WORK/nginx/stdout.log" 2>&1 &
  PIDS+=("$!")
  NGINX_URL="http://127.0.0.1:$port"
}

# Samples the resident memory of process $1 every 20 ms until stop_rss;
# the peak (KiB) is then in RSS_PEAK.
start_rss() { # pid
  rm -f "$WORK/rss-stop"
  (
    peak=0
    while [ ! -e "$WORK/rss-stop" ]; do
      rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null)"
      [ "${rss:-0}" -gt "$peak" ] && peak=$rss
      sleep 0.02
    done
    echo "$peak" >"$WORK/rss-peak"
  ) &
  RSS_SAMPLER=$!
}
stop_rss() {
  touch "$WORK/rss-stop"
  wait "$RSS_SAMPLER" 2>/dev/null || true
  RSS_PEAK="$(cat "$WORK/rss-peak")"
}
rss_now() { # pid -> KiB
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

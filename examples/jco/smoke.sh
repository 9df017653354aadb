#!/usr/bin/env bash
# Serves dist/portico-wasi.wasm with `jco serve` (WASIp2 in JavaScript on
# Node.js) and the setup module beside this script, on 127.0.0.1 with a fresh
# data folder, and checks by curl that storage works there: a login (KV user
# record, durable revocation list), the session, the rate limiter (durable
# compare-and-swap under a lock directory), a flag write (KV) and the metrics
# (counter journal). Stops the server and removes the data folder at the end.
#
#   examples/jco/smoke.sh        # after `cargo run -- build`
#
# PORT (default 8790) picks the port; JCO the jco command (default: npx with
# the version the README names).
set -uo pipefail
cd "$(dirname "$0")/../.."

port=${PORT:-8790}
jco=${JCO:-npx --yes @bytecodealliance/jco@1.35.0}
base=http://127.0.0.1:$port
data=$(mktemp -d)
log=$data.log
jar=$data.cookies

export PORTICO_DATA=$data
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export JWT_SECRET
export BOOTSTRAP_ADMIN=admin:pw-123456789 PASSWORD_ITERATIONS=1000
export RATE_LIMIT_POLICIES=default=5/60s
# jco serve passes no client address: the rate-limit check names its own
# client in this header, so the other checks do not use up its quota.
export RATE_LIMIT_CLIENT_HEADER=x-forwarded-for

# In a session of its own, so the whole process group (jco and the Node.js
# process it starts) is stopped at the end.
setsid $jco serve --host 127.0.0.1 --port "$port" \
    --jco-import examples/jco/setup.mjs dist/portico-wasi.wasm >"$log" 2>&1 &
server=$!
trap 'kill -- -$server 2>/dev/null; rm -rf "$data" "$log" "$jar"' EXIT

# The first run downloads jco; each start transpiles the component.
for _ in $(seq 1 240); do
    curl -s -m 2 -o /dev/null "$base/healthz" && break
    kill -0 $server 2>/dev/null || { cat "$log"; echo "jco serve exited"; exit 1; }
    sleep 0.5
done

passed=0 failed=0
# check NAME EXPECTED-STATUS CURL-ARGS...: prints the status and the body's start.
check() {
    local name=$1 want=$2
    shift 2
    local got
    got=$(curl -s -m 30 -o "$data.body" -w '%{http_code}' "$@")
    if [ "$got" = "$want" ]; then
        passed=$((passed + 1))
        echo "ok   $name: $got $(head -c 120 "$data.body" | tr "\n" " ")"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $got, expected $want: $(head -c 300 "$data.body")"
    fi
}

check healthz 200 "$base/healthz"
check login 200 -c "$jar" -H 'content-type: application/json' \
    -d '{"username":"admin","password":"pw-123456789"}' "$base/api/login"
if grep -q 'session' "$jar" 2>/dev/null; then
    passed=$((passed + 1)) && echo "ok   session cookie set"
else
    failed=$((failed + 1)) && echo "FAIL no session cookie"
fi
check user 200 -b "$jar" "$base/api/user"
check flag-write 204 -b "$jar" -X PUT -H 'content-type: application/json' \
    -d '{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}}}' \
    "$base/admin/flags"
check flag-read 200 -b "$jar" "$base/admin/flags"
for i in 1 2 3 4 5; do
    check "config $i of 5" 200 -H 'x-forwarded-for: 203.0.113.9' "$base/api/config"
done
check "config 6 (over the quota)" 429 -H 'x-forwarded-for: 203.0.113.9' "$base/api/config"
check metrics 200 -b "$jar" "$base/admin/metrics"
if grep -q 'portico_requests_total{route="/api/config",status="2xx"} 5' "$data.body"; then
    passed=$((passed + 1)) && echo "ok   metrics count the 5 config requests"
else
    failed=$((failed + 1)) && echo "FAIL metrics: $(grep requests_total "$data.body")"
fi
check logout 204 -b "$jar" -X POST "$base/api/logout"
check "user after logout" 401 -b "$jar" "$base/api/user"

if [ "$failed" -gt 0 ]; then
    echo "--- jco serve log"
    tail -n 40 "$log"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

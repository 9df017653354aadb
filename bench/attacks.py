#!/usr/bin/env python3
"""What an unauthenticated client can cost the server, measured on the
release host for both targets (127.0.0.1, every loop bounded):

  slow bodies      300 connections each announcing a 1000-byte login body
                   and sending one byte; /healthz latency while they are held
  unread uploads   16 unauthenticated PUTs announcing 64 MiB (1 MiB sent) and
                   16 logins announcing 10 MiB; time to their answers and
                   host RSS growth
  OFREP            50 flags, a bulk evaluation with a ~60 KiB context, and
                   one flag that reduce+merges the context array; the time
                   of each and /api/config latency with six of them in flight

  bench/attacks.py            # after `cargo build --release -p portico`
                              # and `target/release/portico build`
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PORTICO = "target/release/portico"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def start(target, data):
    proc = subprocess.Popen(
        [PORTICO, "serve", "--target", target, "--listen", "127.0.0.1:0",
         "--data", data, "--var", f"jwt_secret={SECRET}",
         "--var", "bootstrap_admin=ada:bench-admin-password",
         "--var", "password_iterations=1000",
         "--var", "rate_limit_policies=default=1000000/1s"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if "http://" in line:
            return proc, line[line.index("http://"):].strip()
    raise SystemExit("portico did not start")


def rss_mib(proc):
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(url, method="GET", body=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            reply.read()
            status = reply.status
    except urllib.error.HTTPError as err:
        err.read()
        status = err.code
    return status, (time.perf_counter() - started) * 1000


def raw(address, head, body=b""):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(60)
    sock.sendall(head.encode() + body)
    return sock


def first_line(sock):
    started = time.perf_counter()
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data.split(b"\r\n")[0].decode(errors="replace"), (time.perf_counter() - started) * 1000


def healthz_ms(url, n=5):
    times = []
    for _ in range(n):
        status, ms = request(f"{url}/healthz")
        times.append(ms if status == 200 else float("inf"))
    return sorted(times)[len(times) // 2]


def slow_bodies(url):
    address = url.removeprefix("http://")
    socks = [raw(address, f"POST /api/login HTTP/1.1\r\nhost: {address}\r\n"
                          "content-type: application/json\r\ncontent-length: 1000\r\n\r\n", b"{")
             for _ in range(300)]
    time.sleep(0.5)
    during = healthz_ms(url)
    answers = [first_line(s)[0] for s in socks]
    for s in socks:
        s.close()
    return during, answers.count("HTTP/1.1 408 Request Timeout")


def unread_uploads(url, proc):
    address = url.removeprefix("http://")
    before = rss_mib(proc)
    socks = []
    for i in range(16):
        socks.append(raw(address, f"PUT /admin/assets/x{i}.bin HTTP/1.1\r\nhost: {address}\r\n"
                                  f"content-length: {64 << 20}\r\n\r\n", b"x" * (1 << 20)))
        socks.append(raw(address, f"POST /api/login HTTP/1.1\r\nhost: {address}\r\n"
                                  f"content-length: {10 << 20}\r\n\r\n", b"x" * (1 << 20)))
    answers = [first_line(s) for s in socks]
    grown = rss_mib(proc) - before
    for s in socks:
        s.close()
    slowest = max(ms for _, ms in answers)
    statuses = sorted({line[9:12] for line, _ in answers})
    return statuses, slowest, grown


def ofrep(url):
    status, _ = request(f"{url}/api/login", "POST",
                        json.dumps({"username": "ada", "password": "bench-admin-password"}).encode(),
                        {"content-type": "application/json"})
    assert status == 200, status
    req = urllib.request.Request(f"{url}/api/login", method="POST",
                                 data=json.dumps({"username": "ada", "password": "bench-admin-password"}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as reply:
        cookie = reply.headers["set-cookie"].split(";")[0]
    flags = {f"plain-{i:02}": {"state": "ENABLED", "variants": {"on": True, "off": False},
                               "defaultVariant": "off",
                               "targeting": {"if": [{"in": ["needle", {"var": "xs"}]}, "on", "off"]}}
             for i in range(49)}
    flags["quadratic"] = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
                          "targeting": {"if": [{"reduce": [{"var": "xs"}, {"merge": [{"var": "accumulator"}, [{"var": "current"}]]}, []]}, "on", "off"]}}
    status, _ = request(f"{url}/admin/flags", "PUT", json.dumps({"flags": flags}).encode(),
                        {"content-type": "application/json", "cookie": cookie, "origin": url})
    assert status in (200, 204), status
    body = json.dumps({"context": {"targetingKey": "u", "xs": list(range(12000))}},
                      separators=(",", ":")).encode()
    assert len(body) < 64 * 1024, len(body)
    status, bulk_ms = request(f"{url}/ofrep/v1/evaluate/flags", "POST", body, {"content-type": "application/json"})
    assert status == 200, status
    status, quad_ms = request(f"{url}/ofrep/v1/evaluate/flags/quadratic", "POST", body, {"content-type": "application/json"})
    assert status == 400, status
    _, idle_config = request(f"{url}/api/config")
    stop = time.time() + 5
    def hammer():
        while time.time() < stop:
            request(f"{url}/ofrep/v1/evaluate/flags", "POST", body, {"content-type": "application/json"})
    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1)
    loaded = sorted(request(f"{url}/api/config")[1] for _ in range(5))[2]
    for t in threads:
        t.join()
    return bulk_ms, quad_ms, idle_config, loaded


def main():
    if not os.path.exists(PORTICO):
        sys.exit("build first: cargo build --release -p portico && target/release/portico build")
    print("| target | scenario | figure |")
    print("|--------|----------|--------|")
    for target in ("spin", "wasi"):
        with tempfile.TemporaryDirectory() as data:
            proc, url = start(target, data)
            try:
                idle = healthz_ms(url)
                during, cut = slow_bodies(url)
                print(f"| {target} | 300 slow login bodies | /healthz p50 {during:.1f} ms while held (idle {idle:.1f} ms); {cut}/300 answered 408 |")
                statuses, slowest, grown = unread_uploads(url, proc)
                print(f"| {target} | 16 x 64 MiB unauthenticated PUT + 16 x 10 MiB login | answered {'/'.join(statuses)}, slowest {slowest:.0f} ms; host RSS +{grown:.0f} MiB |")
                bulk_ms, quad_ms, idle_config, loaded = ofrep(url)
                print(f"| {target} | OFREP, 50 flags, 60 KiB context | bulk {bulk_ms:.0f} ms; reduce+merge flag {quad_ms:.0f} ms; /api/config p50 {idle_config:.1f} ms idle, {loaded:.1f} ms with 6 bulk calls in flight |")
            finally:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()

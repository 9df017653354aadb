//! What one request may take (time, CPU, memory; shown with the
//! `misbehaving` fixture) and what one client may hold: slow request bodies,
//! bodies nobody may send, and slow readers of responses, each against the
//! instance pool that every other client needs. Clients speak raw HTTP/1.1 so they
//! can stall mid-request; every loop is bounded in count and time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use portico::serve::Target;

use crate::harness::{Host, HostConfig, Reply, client, data_dir, get};

on_both_targets!(
    each_request_is_stopped_at_its_limits,
    a_trapping_component_gets_a_500_problem,
    sigterm_lets_the_request_in_flight_finish,
    slow_headers_and_idle_connections_leave_the_server_answering,
    connections_past_the_cap_are_refused_and_big_heads_get_431,
    slow_bodies_hold_sockets_not_instances,
    bodies_nobody_may_send_are_never_read,
    a_trickled_upload_is_cut_below_the_minimum_rate,
    an_upload_longer_than_the_request_timeout_completes_while_it_flows,
    slow_readers_are_cut_and_their_instances_freed,
);

const ADMIN: &str = "ada";
const ADMIN_PASSWORD: &str = "limits-admin-password";

fn connect(host: &Host) -> (TcpStream, String) {
    let address = host.url.trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    (stream, address)
}

/// A connection whose receive window is a few KiB, so that the kernel does
/// not take a response of some MiB on the reader's behalf (loopback buffers
/// grow to several MiB on their own).
fn connect_with_small_window(host: &Host) -> (TcpStream, String) {
    use socket2::{Domain, Socket, Type};
    let address = host.url.trim_start_matches("http://").to_string();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let target: std::net::SocketAddr = address.parse().unwrap();
    socket.connect(&target.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    (stream, address)
}

/// Everything the server sends until it closes the connection (or 30 s).
fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    bytes
}

fn status_of(response: &[u8]) -> String {
    String::from_utf8_lossy(&response[..response.len().min(12)]).into_owned()
}

fn rss_kib(host: &Host) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", host.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `/healthz` and a wrong-password login still get their own answers.
fn others_are_served(host: &Host, what: &str) {
    let health = get(&format!("{}/healthz", host.url));
    assert_eq!(health.status, 200, "{what}: /healthz: {}", health.text());
    let login = Reply::from(
        client()
            .post(&format!("{}/api/login", host.url))
            .header("content-type", "application/json")
            .send(r#"{"username":"nobody","password":"wrong-password-1"}"#)
            .unwrap(),
    );
    login.assert_problem(401, "invalid-credentials");
}

/// 300 clients announce a 1000-byte login body and send one byte. The host
/// reads small bodies before it takes an instance, so they hold sockets,
/// not slots: everyone else is still served, and each of them gets `408`
/// once the body stalls past the grace.
fn slow_bodies_hold_sockets_not_instances(target: Target) {
    if crate::harness::embedded_host_only("the host's --body-timeout and instance pool") {
        return;
    }
    let data = data_dir("slow-bodies");
    let host = Host::start(&HostConfig::app(target, data.path()));
    let mut slow = Vec::new();
    for _ in 0..300 {
        let (mut stream, address) = connect(&host);
        write!(
            stream,
            "POST /api/login HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
        )
        .unwrap();
        slow.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    others_are_served(&host, "300 slow bodies held");
    for (i, stream) in slow.iter_mut().enumerate() {
        let response = read_all(stream);
        let text = String::from_utf8_lossy(&response);
        assert_eq!(status_of(&response), "HTTP/1.1 408", "client {i}: {text}");
        assert!(
            text.contains("https://portico.dev/problems#body-timeout"),
            "{text}"
        );
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
    assert!(
        host.stderr_when(|log| log.contains("request body cut"))
            .contains("request body cut"),
        "the limit is logged"
    );
}

/// Unauthenticated uploads announcing 64 MiB, and logins announcing 10 MiB,
/// are answered from their headers while the body is still coming (`401`,
/// `413`), and the connection is closed: the host never holds their bodies.
fn bodies_nobody_may_send_are_never_read(target: Target) {
    let data = data_dir("unread-bodies");
    let host = Host::start(&HostConfig::app(target, data.path()));
    others_are_served(&host, "warm-up");
    let before = rss_kib(&host);
    let chunk = vec![b'x'; 64 * 1024];
    let mut held = Vec::new();
    for i in 0..32 {
        let (mut stream, address) = connect(&host);
        let (head, expected) = if i % 2 == 0 {
            (
                format!(
                    "PUT /admin/assets/x{i}.bin HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\n\r\n",
                    64 << 20
                ),
                "HTTP/1.1 401",
            )
        } else {
            (
                format!(
                    "POST /api/login HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    10 << 20
                ),
                "HTTP/1.1 413",
            )
        };
        stream.write_all(head.as_bytes()).unwrap();
        // Part of the body; the rest is never sent.
        let _ = stream.write_all(&chunk);
        held.push((stream, expected));
    }
    for (i, (stream, expected)) in held.iter_mut().enumerate() {
        let response = read_all(stream);
        let text = String::from_utf8_lossy(&response);
        assert_eq!(status_of(&response), *expected, "client {i}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{text}"
        );
    }
    let grown_mib = rss_kib(&host).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "32 unread bodies of 10-64 MiB grew the host by {grown_mib} MiB"
    );
    others_are_served(&host, "after the unread bodies");
}

fn admin_host(target: Target, name: &str, args: &[&str]) -> (Host, tempfile::TempDir, String) {
    let data = data_dir(name);
    let mut config = crate::harness::app_with_admin(target, data.path(), ADMIN, ADMIN_PASSWORD);
    config.args = args.iter().map(|a| a.to_string()).collect();
    let host = Host::start(&config);
    let token = crate::harness::login_token(&host, ADMIN, ADMIN_PASSWORD);
    (host, data, token)
}

/// An admin upload larger than the host reads up front goes to the
/// component as it arrives; trickled below the minimum rate it is cut with
/// `408`, nothing is stored, and the instance is free again.
fn a_trickled_upload_is_cut_below_the_minimum_rate(target: Target) {
    if crate::harness::embedded_host_only("the host's --body-timeout minimum rate") {
        return;
    }
    let (host, _data, token) = admin_host(
        target,
        "trickled-upload",
        &[
            "--min-transfer-rate",
            "100000",
            "--rate-grace",
            "1s",
            "--body-timeout",
            "5s",
        ],
    );
    let (mut stream, address) = connect(&host);
    write!(
        stream,
        "PUT /admin/assets/slow.bin HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n",
        1 << 20
    )
    .unwrap();
    stream.write_all(&vec![b'x'; 128 * 1024]).unwrap();
    // One byte every 200 ms: never a 5 s silence, but far below 100 kB/s.
    stream.set_nonblocking(true).unwrap();
    let mut response = Vec::new();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        if stream.write_all(b"x").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    stream.set_nonblocking(false).unwrap();
    response.extend(read_all(&mut stream));
    let text = String::from_utf8_lossy(&response);
    assert_eq!(status_of(&response), "HTTP/1.1 408", "{text}");
    assert!(
        text.contains("https://portico.dev/problems#body-timeout"),
        "{text}"
    );
    let stored = get(&format!("{}/assets/slow.bin", host.url));
    assert_eq!(stored.status, 404, "nothing stored: {}", stored.text());
    others_are_served(&host, "after the trickled upload");
}

/// A streamed upload that takes longer than `--request-timeout` (2 MiB in
/// 256 KiB pieces, 400 ms apart, over a 1 s timeout) is stored whole: its
/// body keeps moving the deadline on, and the client limits bound it
/// instead. A guest that then takes longer than the timeout to answer
/// would still be stopped.
fn an_upload_longer_than_the_request_timeout_completes_while_it_flows(target: Target) {
    if crate::harness::embedded_host_only("the host's --request-timeout") {
        return;
    }
    let (host, _data, token) = admin_host(
        target,
        "long-upload",
        &["--request-timeout", "1s", "--min-transfer-rate", "1024"],
    );
    let (mut stream, address) = connect(&host);
    let size = 2usize << 20;
    write!(
        stream,
        "PUT /admin/assets/long.bin HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let started = std::time::Instant::now();
    for piece in 0..8u8 {
        stream.write_all(&vec![piece; size / 8]).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    let response = read_all(&mut stream);
    let took = started.elapsed();
    assert!(took > Duration::from_secs(3), "the upload took {took:?}");
    let text = String::from_utf8_lossy(&response);
    assert_eq!(status_of(&response), "HTTP/1.1 201", "{text}");
    let stored = get(&format!("{}/assets/long.bin", host.url));
    assert_eq!(stored.status, 200);
    let expected: Vec<u8> = (0..8u8).flat_map(|p| vec![p; size / 8]).collect();
    assert!(stored.body == expected, "the stored bytes differ");
}

/// Clients that ask for an 8 MiB asset and read nothing: the instance
/// writing to each would wait forever, and as many of them as the pool has
/// slots (8 here, `--max-instances`) take the server down. The host cuts a
/// client that takes no bytes within the send timeout, which frees its
/// instance: the server recovers by itself, and those readers got less than
/// the whole asset.
fn slow_readers_are_cut_and_their_instances_freed(target: Target) {
    if crate::harness::embedded_host_only("the host's --send-timeout and --max-instances") {
        return;
    }
    let (host, _data, token) = admin_host(
        target,
        "slow-readers",
        &[
            "--max-instances",
            "8",
            "--send-timeout",
            "1s",
            "--rate-grace",
            "1s",
        ],
    );
    let size = 8 << 20;
    let put = Reply::from(
        client()
            .put(&format!("{}/admin/assets/big.bin", host.url))
            .header("authorization", format!("Bearer {token}"))
            .send(&vec![7u8; size][..])
            .unwrap(),
    );
    assert!(put.status == 201 || put.status == 200, "{}", put.text());
    let mut readers = Vec::new();
    for _ in 0..10 {
        let (mut stream, address) = connect_with_small_window(&host);
        write!(
            stream,
            "GET /assets/big.bin HTTP/1.1\r\nhost: {address}\r\n\r\n"
        )
        .unwrap();
        readers.push(stream);
    }
    // Every reader has its answer's head (200 for the eight admitted, 503
    // for the rest) before the probe below, which must not take a slot one
    // of them would have had. Bounded by the readers' 30 s read timeout.
    for reader in &readers {
        let mut head = [0u8; 12];
        let mut peeked = 0;
        for _ in 0..120 {
            peeked = reader.peek(&mut head).unwrap_or(0);
            if peeked >= head.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(peeked, head.len(), "a reader never got a status line");
    }
    // Bounded: 60 tries, one every 250 ms.
    let mut healthy = false;
    for _ in 0..60 {
        if get(&format!("{}/healthz", host.url)).status == 200 {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(healthy, "the pool never recovered from 10 slow readers");
    std::thread::sleep(Duration::from_secs(2));
    let cut = readers
        .iter_mut()
        .map(read_all)
        .filter(|response| status_of(response) == "HTTP/1.1 200" && response.len() < size)
        .count();
    assert!(cut >= 8, "only {cut} of 10 slow readers were cut mid-body");
    assert!(
        host.stderr_when(|log| log.contains("response cut"))
            .contains("response cut"),
        "the limit is logged"
    );
    others_are_served(&host, "after the slow readers");
}

/// `tests/fixtures/misbehaving` on the host with small limits.
fn misbehaving(target: Target, args: &[&str]) -> (Host, tempfile::TempDir) {
    let data = data_dir("misbehaving");
    let mut config = HostConfig::app(target, data.path());
    config.component = crate::harness::artifacts().misbehaving.clone();
    config.args = args.iter().map(|a| a.to_string()).collect();
    (Host::start(&config), data)
}

/// `GET path`, with how long the answer took.
fn timed_get(host: &Host, path: &str) -> (Reply, Duration) {
    let started = std::time::Instant::now();
    let reply = get(&format!("{}{path}", host.url));
    (reply, started.elapsed())
}

/// A guest that spins, sleeps past the deadline or allocates without bound
/// is stopped at its limit with a `503` problem naming it, while other
/// requests keep being answered; work after the response has its own bound;
/// and afterwards the instance pool is whole (as many concurrent requests
/// as it has slots all succeed).
fn each_request_is_stopped_at_its_limits(target: Target) {
    if crate::harness::embedded_host_only(
        "the host's per-request limits (--request-timeout, --max-memory, fuel)",
    ) {
        return;
    }
    let (host, _data) = misbehaving(
        target,
        &[
            "--request-timeout",
            "1s",
            "--response-timeout",
            "1s",
            "--request-memory",
            "64MiB",
            "--max-instances",
            "4",
        ],
    );
    let spinning = {
        let url = host.url.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            (get(&format!("{url}/loop")), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let (other, _) = timed_get(&host, "/");
    assert_eq!(other.status, 200, "answered while a guest spins");
    let (looped, looped_in) = spinning.join().unwrap();
    looped.assert_problem(503, "request-timeout");
    let (slept, slept_in) = timed_get(&host, "/sleep/5000");
    slept.assert_problem(503, "request-timeout");
    let (grown, grown_in) = timed_get(&host, "/alloc");
    grown.assert_problem(503, "memory-limit");
    let (answered, _) = timed_get(&host, "/answer-then-loop");
    assert_eq!(
        (answered.status, answered.text().as_str()),
        (200, "answered")
    );
    eprintln!(
        "limits fired: spinning guest {looped_in:?}, sleeping guest {slept_in:?}, \
         allocating guest {grown_in:?} (time limit 1 s, memory 64 MiB)"
    );
    for (what, took) in [("spin", looped_in), ("sleep", slept_in)] {
        assert!(
            took >= Duration::from_secs(1),
            "{what} stopped before its limit: {took:?}"
        );
    }
    // The work after the response is stopped at its own bound.
    let mut stopped_after = 0;
    for _ in 0..40 {
        stopped_after = host.stderr().matches("request stopped").count();
        if stopped_after >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stopped_after, 4, "{}", host.stderr());
    // Every slot is free again.
    let sleepers: Vec<_> = (0..4)
        .map(|_| {
            let url = host.url.clone();
            std::thread::spawn(move || get(&format!("{url}/sleep/300")))
        })
        .collect();
    for sleeper in sleepers {
        let reply = sleeper.join().unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "slept"));
    }

    // The CPU budget counts running, not waiting.
    let (host, _data) = misbehaving(target, &["--request-cpu", "100ms"]);
    let (spun, spun_in) = timed_get(&host, "/loop");
    spun.assert_problem(503, "cpu-limit");
    let (slept, _) = timed_get(&host, "/sleep/500");
    assert_eq!((slept.status, slept.text().as_str()), (200, "slept"));
    eprintln!("cpu limit fired: spinning guest {spun_in:?} (budget 100 ms)");
    assert!(
        host.stderr_when(|log| log.contains("request stopped"))
            .contains("request stopped"),
        "the limit is logged"
    );
}

/// The soft limit on open files of this process (the host inherits it).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// Thousands of connections that send half a header section, or nothing,
/// and wait: `/healthz` keeps answering, and the header timeout closes
/// them.
fn slow_headers_and_idle_connections_leave_the_server_answering(target: Target) {
    if crate::harness::embedded_host_only("the host's --header-timeout") {
        return;
    }
    let data = data_dir("slow-headers");
    let mut config = HostConfig::app(target, data.path());
    config.args = vec!["--header-timeout".into(), "3s".into()];
    let host = Host::start(&config);
    // Both ends of each connection are in this machine's file table.
    let count = 2000.min(open_files_limit().saturating_sub(256) / 2);
    assert!(count >= 500, "only {count} connections possible here");
    let mut held = Vec::new();
    for i in 0..count {
        let (mut stream, address) = connect(&host);
        if i % 4 != 0 {
            write!(
                stream,
                "GET /healthz HTTP/1.1\r\nhost: {address}\r\nx-slow: "
            )
            .unwrap();
        }
        held.push(stream);
    }
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let (reply, took) = timed_get(&host, "/healthz");
        assert_eq!(reply.status, 200, "{}", reply.text());
        latencies.push(took);
    }
    latencies.sort();
    eprintln!(
        "/healthz during {count} slow-header and idle connections: p50 {:?}, max {:?}",
        latencies[5], latencies[9]
    );
    // The header timeout closes them (3 s; allow the rest to drain).
    std::thread::sleep(Duration::from_secs(4));
    let mut closed = 0;
    for stream in held.iter_mut().take(100) {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let still_open = matches!(
            stream.read(&mut buf),
            Err(ref err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        );
        if !still_open {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 100,
        "connections the header timeout should have closed"
    );
    assert!(
        host.stderr_when(|log| log.contains("no complete request head within --header-timeout"))
            .contains("no complete request head within --header-timeout"),
        "the limit is logged"
    );
}

/// Past `--max-connections` a new connection is closed at once (and the
/// refusal logged); once the others go, the server answers again. A request
/// head over `--max-header-bytes` is answered `431`.
fn connections_past_the_cap_are_refused_and_big_heads_get_431(target: Target) {
    if crate::harness::embedded_host_only("the host's --max-connections and head size limit") {
        return;
    }
    let data = data_dir("connection-cap");
    let mut config = HostConfig::app(target, data.path());
    config.args = vec![
        "--max-connections".into(),
        "50".into(),
        "--max-header-bytes".into(),
        "16KiB".into(),
    ];
    let host = Host::start(&config);
    let big = Reply::from(
        client()
            .get(&format!("{}/healthz", host.url))
            .header("x-padding", "x".repeat(32 * 1024))
            .call()
            .unwrap(),
    );
    assert_eq!(big.status, 431);
    let logged = host.stderr_when(|text| text.contains("answered 431"));
    assert!(logged.contains("answered 431"), "{logged}");
    let held: Vec<_> = (0..50).map(|_| connect(&host).0).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (mut extra, _) = connect(&host);
    let mut buf = [0u8; 64];
    let read = extra.read(&mut buf);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the 51st connection was closed: {read:?}"
    );
    let logged = host.stderr_when(|text| text.contains("connections refused"));
    assert!(logged.contains("connections refused"), "{logged}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let health = get(&format!("{}/healthz", host.url));
    assert_eq!(health.status, 200);
}

/// A component that traps is answered `500` problem+json (never a dropped
/// connection), and the next request is served as usual.
fn a_trapping_component_gets_a_500_problem(target: Target) {
    if crate::harness::embedded_host_only(
        "the host answers a trap with a problem; wasmtime serve answers its own text/html 500",
    ) {
        return;
    }
    let (host, _data) = misbehaving(target, &[]);
    let trapped = get(&format!("{}/trap", host.url));
    let body = trapped.assert_problem(500, "component-failure");
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    let next = get(&format!("{}/", host.url));
    assert_eq!((next.status, next.text().as_str()), (200, "ok"));
}

/// SIGTERM: the server stops accepting, lets the request in flight finish
/// (it takes 1.5 s), and exits 0.
fn sigterm_lets_the_request_in_flight_finish(target: Target) {
    if crate::harness::embedded_host_only("the host's graceful SIGTERM") {
        return;
    }
    let (host, _data) = misbehaving(target, &[]);
    let in_flight = {
        let url = host.url.clone();
        std::thread::spawn(move || get(&format!("{url}/sleep/1500")))
    };
    std::thread::sleep(Duration::from_millis(300));
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &host.pid().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    std::thread::sleep(Duration::from_millis(300));
    let address = host.url.trim_start_matches("http://").to_string();
    assert!(
        TcpStream::connect(&address).is_err(),
        "still accepting after SIGTERM"
    );
    let reply = in_flight.join().unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "slept"));
    let status = host
        .wait(Duration::from_secs(10))
        .expect("exited within 10 s");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

//! The gateway through the whole composed app: health, the `/api/config`
//! slice (gateway -> flags -> platform -> host storage), routing errors as
//! problem+json, request ids, and reachability of every business component.

use portico::serve::Target;

use crate::harness::{Host, HostConfig, Reply, client, data_dir, get, portico_kv};

fn app(target: Target) -> (Host, tempfile::TempDir) {
    let data = data_dir("app");
    let host = Host::start(&HostConfig::app(target, data.path()));
    (host, data)
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

on_both_targets!(
    healthz_answers_ok,
    request_id_is_generated_or_echoed,
    api_config_is_empty_without_flags,
    api_config_returns_the_stored_flag_set,
    api_config_reports_a_corrupt_flag_set,
    unknown_route_is_404_problem,
    wrong_method_is_405_problem_with_allow,
    oversized_body_is_413_problem,
    request_without_host_is_400_problem,
    public_endpoints_take_small_bodies_only,
    malformed_login_body_is_400_problem,
    each_business_component_answers_through_the_gateway,
);

fn healthz_answers_ok(target: Target) {
    let (host, _data) = app(target);
    let reply = get(&format!("{}/healthz", host.url));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), serde_json::json!({"status": "ok"}));
    let head = Reply::from(
        client()
            .head(&format!("{}/healthz", host.url))
            .call()
            .unwrap(),
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

fn request_id_is_generated_or_echoed(target: Target) {
    let (host, _data) = app(target);
    let url = format!("{}/healthz", host.url);
    let first = get(&url);
    let second = get(&url);
    let (a, b) = (
        first.header("x-request-id").unwrap(),
        second.header("x-request-id").unwrap(),
    );
    assert!(is_generated_id(a) && is_generated_id(b), "{a} {b}");
    assert_ne!(a, b);
    let echoed = Reply::from(
        client()
            .get(&url)
            .header("x-request-id", "trace-abc-123")
            .call()
            .unwrap(),
    );
    assert_eq!(echoed.header("x-request-id"), Some("trace-abc-123"));
    let hostile = Reply::from(
        client()
            .get(&url)
            .header("x-request-id", "x".repeat(500))
            .call()
            .unwrap(),
    );
    assert!(is_generated_id(hostile.header("x-request-id").unwrap()));
    // The boundary: 128 visible characters are the client's id, 129 are not.
    let with_id = |id: &str| {
        Reply::from(
            client()
                .get(&url)
                .header("x-request-id", id)
                .call()
                .unwrap(),
        )
        .header("x-request-id")
        .unwrap()
        .to_string()
    };
    let longest = "a".repeat(128);
    assert_eq!(with_id(&longest), longest);
    let too_long = with_id(&"a".repeat(129));
    assert!(is_generated_id(&too_long), "{too_long}");
    // Problems carry the id too.
    let problem = Reply::from(
        client()
            .get(&format!("{}/nope", host.url))
            .header("x-request-id", "p-1")
            .call()
            .unwrap(),
    );
    assert_eq!(problem.header("x-request-id"), Some("p-1"));
}

fn api_config_is_empty_without_flags(target: Target) {
    let (host, _data) = app(target);
    let reply = get(&format!("{}/api/config", host.url));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["flags"], serde_json::json!({}));
}

fn api_config_returns_the_stored_flag_set(target: Target) {
    let (host, data) = app(target);
    let flags = serde_json::json!({
        "flags": {
            "new-checkout": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "on"
            }
        }
    });
    let seeded = portico_kv(
        target,
        data.path(),
        &["set", "flags/definitions", &flags.to_string()],
    );
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let reply = get(&format!("{}/api/config", host.url));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let evaluated = &reply.json()["flags"]["new-checkout"];
    assert_eq!(evaluated["value"], serde_json::json!(true));
    assert_eq!(evaluated["variant"], "on");
    assert_eq!(evaluated["reason"], "STATIC");
}

fn api_config_reports_a_corrupt_flag_set(target: Target) {
    let (host, data) = app(target);
    let seeded = portico_kv(
        target,
        data.path(),
        &["set", "flags/definitions", "{not json"],
    );
    assert!(seeded.status.success());
    let reply = get(&format!("{}/api/config", host.url));
    reply.assert_problem(500, "corrupt-flag-set");
}

fn unknown_route_is_404_problem(target: Target) {
    let (host, _data) = app(target);
    for path in ["/nope", "/api/nope", "/healthz/extra"] {
        let reply = get(&format!("{}{path}", host.url));
        let body = reply.assert_problem(404, "not-found");
        assert_eq!(body["instance"], path);
    }
    // A traversal attempt is refused before any route sees it.
    let path = "/%2e%2e/etc/passwd";
    let body = get(&format!("{}{path}", host.url)).assert_problem(400, "invalid-path");
    assert_eq!(body["instance"], path);
}

fn wrong_method_is_405_problem_with_allow(target: Target) {
    let (host, _data) = app(target);
    let reply = Reply::from(
        client()
            .post(&format!("{}/healthz", host.url))
            .send_empty()
            .unwrap(),
    );
    reply.assert_problem(405, "method-not-allowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    let reply = Reply::from(
        client()
            .delete(&format!("{}/api/config", host.url))
            .call()
            .unwrap(),
    );
    reply.assert_problem(405, "method-not-allowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    let reply = Reply::from(
        client()
            .get(&format!("{}/api/login", host.url))
            .call()
            .unwrap(),
    );
    reply.assert_problem(405, "method-not-allowed");
    assert_eq!(reply.header("allow"), Some("POST"));
}

/// A client announcing a body over the limit is answered before it has sent
/// it (so the test speaks raw HTTP/1.1: a library client would still be
/// writing when the answer comes).
fn oversized_body_is_413_problem(target: Target) {
    use std::io::{Read, Write};
    let (host, _data) = app(target);
    let address = host.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let announced = 11 * 1024 * 1024;
    write!(
        stream,
        "POST /api/login HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {announced}\r\nconnection: close\r\n\r\n{{\"username\":"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{text}"
    );
    assert!(
        text.contains("https://portico.dev/problems#payload-too-large"),
        "{text}"
    );
}

/// HTTP/1.0 may leave `Host` out and a broken HTTP/1.1 client may too: the
/// client's mistake, answered `400` problem+json, never a component failure.
fn request_without_host_is_400_problem(target: Target) {
    if crate::harness::embedded_host_only(
        "wasmtime serve answers a request without Host itself (a text/html 500) before the component runs",
    ) {
        return;
    }
    use std::io::{Read, Write};
    let (host, _data) = app(target);
    let address = host.url.trim_start_matches("http://");
    for head in [
        "GET /healthz HTTP/1.0\r\n\r\n",
        "GET /api/config HTTP/1.1\r\nconnection: close\r\n\r\n",
    ] {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1."), "{head:?}: {text}");
        assert_eq!(&text[9..12], "400", "{head:?}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{text}"
        );
        assert!(
            text.contains("https://portico.dev/problems#missing-host"),
            "{text}"
        );
    }
}

/// Anyone may call login, logout and OFREP, so their bodies are capped at
/// 64 KiB (announced or actually sent), while an admin route keeps the
/// general limit.
fn public_endpoints_take_small_bodies_only(target: Target) {
    let (host, _data) = app(target);
    let limit = 64 * 1024;
    for path in [
        "/api/login",
        "/api/logout",
        "/ofrep/v1/evaluate/flags",
        "/ofrep/v1/evaluate/flags/x",
        "/%61pi/login",
    ] {
        let padded = |size: usize| {
            let mut body = br#"{"context":{"targetingKey":"k","pad":""#.to_vec();
            body.resize(size - 3, b'x');
            body.extend(br#""}}"#);
            body
        };
        let over = Reply::from(
            client()
                .post(&format!("{}{path}", host.url))
                .header("content-type", "application/json")
                .send(&padded(limit + 1)[..])
                .unwrap(),
        );
        over.assert_problem(413, "payload-too-large");
        let at = Reply::from(
            client()
                .post(&format!("{}{path}", host.url))
                .header("content-type", "application/json")
                .send(&padded(limit)[..])
                .unwrap(),
        );
        assert_ne!(
            at.status,
            413,
            "POST {path} of exactly 64 KiB: {}",
            at.text()
        );
    }
    // Not a public endpoint: the general limit applies (the 401 comes from
    // the missing session, not from the size).
    let big = vec![b'x'; limit * 2];
    let reply = Reply::from(
        client()
            .put(&format!("{}/admin/flags", host.url))
            .send(&big[..])
            .unwrap(),
    );
    reply.assert_problem(401, "unauthenticated");
}

fn malformed_login_body_is_400_problem(target: Target) {
    let (host, _data) = app(target);
    for body in ["", "{", "[]", r#"{"username": 1, "password": "x"}"#] {
        let reply = Reply::from(
            client()
                .post(&format!("{}/api/login", host.url))
                .send(body)
                .unwrap(),
        );
        reply.assert_problem(400, "bad-request");
    }
}

/// All four business components are composed and routed to: each answers
/// a request of its own through the gateway, with its own problem.
fn each_business_component_answers_through_the_gateway(target: Target) {
    let (host, _data) = app(target);
    // assets: a missing object (the gateway names the request path as the
    // problem's instance).
    let asset = get(&format!("{}/assets/app.css", host.url));
    let body = asset.assert_problem(404, "not-found");
    assert!(
        body["detail"].as_str().unwrap().contains("app.css"),
        "{body}"
    );
    // rate-limiter: it decided on that request.
    assert!(asset.header("ratelimit").is_some());
    // auth: an unknown user's login.
    let login = Reply::from(
        client()
            .post(&format!("{}/api/login", host.url))
            .header("content-type", "application/json")
            .send(r#"{"username":"nobody","password":"not-a-password"}"#)
            .unwrap(),
    );
    login.assert_problem(401, "invalid-credentials");
    // flags: an OFREP evaluation of a flag that does not exist.
    let flag = Reply::from(
        client()
            .post(&format!("{}/ofrep/v1/evaluate/flags/nope", host.url))
            .send("{}")
            .unwrap(),
    );
    assert_eq!(flag.status, 404, "{}", flag.text());
    assert_eq!(flag.json()["errorCode"], "FLAG_NOT_FOUND");
}

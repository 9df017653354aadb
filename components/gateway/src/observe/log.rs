//! The access log: one JSON object per request on stderr, which Spin and
//! `wasmtime serve` both collect. It holds identifiers and outcomes only:
//! never a header value, cookie, token, query string or body, so a secret
//! cannot reach the log by construction.

use serde_json::{Value, json};

use super::Notes;

/// Unix milliseconds as RFC 3339 UTC (`2026-11-27T03:31:01.123Z`).
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// What the log line says about one request.
pub struct Entry<'a> {
    pub unix_ms: u64,
    pub request_id: &'a str,
    pub trace_id: &'a str,
    pub method: &'a str,
    /// The path only; the query may carry tokens.
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub bytes: usize,
    pub cache: Option<&'a str>,
    pub notes: &'a Notes,
}

pub fn line(entry: &Entry<'_>) -> String {
    let notes = entry.notes;
    let mut line = json!({
        "time": rfc3339(entry.unix_ms),
        "request_id": entry.request_id,
        "trace_id": entry.trace_id,
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
        "duration_ms": (entry.duration_ms * 1000.0).round() / 1000.0,
        "bytes": entry.bytes,
        "client": notes.client,
        "subject": notes.subject,
        "rate_limit": notes.rate_limit,
        "cache": entry.cache,
        "variants": notes.variants,
    });
    if let (Value::Object(members), Some(route)) = (&mut line, &notes.route) {
        members.insert("route".into(), Value::String(route.clone()));
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_750_261_123), "2026-11-27T03:31:01.123Z");
    }

    #[test]
    fn the_line_is_one_json_object() {
        let mut notes = Notes::default();
        notes.variants.insert("new-checkout".into(), "b".into());
        notes.subject = Some("ada".into());
        let text = line(&Entry {
            unix_ms: 0,
            request_id: "r",
            trace_id: "t",
            method: "GET",
            path: "/x",
            status: 200,
            duration_ms: 1.23456,
            bytes: 5,
            cache: Some("portico;hit"),
            notes: &notes,
        });
        assert!(!text.contains('\n'));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["variants"]["new-checkout"], "b");
        assert_eq!(value["duration_ms"], 1.235);
        assert_eq!(value["subject"], "ada");
    }
}

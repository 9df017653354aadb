//! W3C Trace Context (`traceparent`): the trace id is kept from a valid
//! incoming header, else generated; this request gets its own span id, which
//! becomes the parent id of what it sends upstream.

/// `version-traceid-parentid-flags`, e.g.
/// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    pub sampled: bool,
}

fn lower_hex(value: &str, len: usize) -> bool {
    value.len() == len
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The trace id and flags of a valid `traceparent`.
pub fn parse(header: &str) -> Option<(String, bool)> {
    let mut parts = header.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; later versions may append more.
    if !lower_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !lower_hex(trace, 32) || trace.bytes().all(|b| b == b'0') {
        return None;
    }
    if !lower_hex(parent, 16) || parent.bytes().all(|b| b == b'0') || !lower_hex(flags, 2) {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    Some((trace.to_string(), sampled))
}

impl TraceContext {
    /// Continues the incoming trace, or starts one; `random` gives 128 random
    /// bits as 32 hex digits.
    pub fn continue_or_start(incoming: Option<&str>, random: impl Fn() -> String) -> Self {
        let (trace_id, sampled) = incoming.and_then(parse).unwrap_or_else(|| (random(), true));
        TraceContext {
            trace_id,
            span_id: random()[..16].to_string(),
            sampled,
        }
    }

    /// The `traceparent` to send with requests this span makes.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.span_id,
            if self.sampled { "01" } else { "00" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_headers_continue_and_invalid_ones_restart() {
        let random = || "0123456789abcdef0123456789abcdef".to_string();
        let kept = TraceContext::continue_or_start(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            random,
        );
        assert_eq!(kept.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(kept.span_id, "0123456789abcdef");
        assert_eq!(
            kept.header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0123456789abcdef-01"
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "garbage",
        ] {
            let fresh = TraceContext::continue_or_start(Some(bad), random);
            assert_eq!(fresh.trace_id, random(), "{bad}");
        }
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra").is_some());
    }
}

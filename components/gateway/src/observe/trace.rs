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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// `traceparent` values from the W3C grammar and its near misses: any
    /// version, ids of the wrong length, case or content (all zeros), extra
    /// fields, surrounding whitespace.
    fn traceparent() -> impl Strategy<Value = String> {
        let field = |len: usize| {
            prop_oneof![
                6 => proptest::string::string_regex(&format!("[0-9a-f]{{{len}}}")).unwrap(),
                1 => Just("0".repeat(len)),
                1 => proptest::string::string_regex(&format!("[0-9a-fA-F]{{{}}}", len.saturating_sub(1))).unwrap(),
                1 => proptest::string::string_regex(&format!("[0-9A-Fg-]{{{len}}}")).unwrap(),
            ]
        };
        prop_oneof![
            8 => (
                prop_oneof![4 => Just("00".to_owned()), 1 => Just("ff".to_owned()), 1 => field(2)],
                field(32),
                field(16),
                field(2),
                proptest::option::weighted(0.1, "-[0-9a-z-]{0,6}"),
                "[ \t]{0,1}",
            )
                .prop_map(|(v, t, p, f, extra, ws)| {
                    format!("{ws}{v}-{t}-{p}-{f}{}{ws}", extra.unwrap_or_default())
                }),
            1 => any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_parsed_traceparent_formats_and_parses_back_to_itself(header in traceparent()) {
            if let Some((trace_id, sampled)) = parse(&header) {
                prop_assert_eq!(trace_id.len(), 32);
                // The parent id of what we send is our own span id; any
                // valid one must give the same trace back.
                let context = TraceContext { trace_id: trace_id.clone(), span_id: "00f067aa0ba902b7".into(), sampled };
                prop_assert_eq!(parse(&context.header()), Some((trace_id, sampled)));
            }
        }

        #[test]
        fn formatted_contexts_always_parse(
            trace_id in "[0-9a-f]{32}",
            span_id in "[0-9a-f]{16}",
            sampled in any::<bool>(),
        ) {
            prop_assume!(trace_id.bytes().any(|b| b != b'0') && span_id.bytes().any(|b| b != b'0'));
            let context = TraceContext { trace_id: trace_id.clone(), span_id, sampled };
            prop_assert_eq!(parse(&context.header()), Some((trace_id, sampled)));
        }

        #[test]
        fn continuing_a_trace_never_panics_and_keeps_only_valid_ids(header in traceparent()) {
            let random = || "0123456789abcdef0123456789abcdef".to_string();
            let context = TraceContext::continue_or_start(Some(&header), random);
            prop_assert_eq!(context.trace_id.len(), 32);
            prop_assert!(context.trace_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            prop_assert_eq!(parse(&context.header()).map(|(t, _)| t), Some(context.trace_id.clone()));
        }
    }
}

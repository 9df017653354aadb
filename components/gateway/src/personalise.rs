//! The evaluation context the edge builds from a request, so flag targeting
//! can use where and on what a caller is (the `request.cf` of the Workers
//! stack): `country` from a trusted header (`country_header`, e.g. the one a
//! CDN in front sets), `device` from `User-Agent`, `language` from
//! `Accept-Language`, and the session's `roles`. A response that depends on
//! them must name those request fields in `Vary` ([`vary_fields`]).

use portico_assets_logic::media::parse_qvalue;
use serde_json::{Map, Value, json};

use crate::http::{Auth, Request};

/// `bot`, `tablet`, `mobile` or `desktop`, from a `User-Agent` value.
pub fn device(user_agent: &str) -> &'static str {
    let ua = user_agent.to_ascii_lowercase();
    const BOTS: [&str; 8] = [
        "bot",
        "crawl",
        "spider",
        "slurp",
        "facebookexternalhit",
        "preview",
        "curl/",
        "wget/",
    ];
    if ua.is_empty() || BOTS.iter().any(|b| ua.contains(b)) {
        return "bot";
    }
    if ua.contains("ipad")
        || ua.contains("tablet")
        || (ua.contains("android") && !ua.contains("mobile"))
    {
        return "tablet";
    }
    if ua.contains("mobi") || ua.contains("iphone") || ua.contains("ipod") {
        return "mobile";
    }
    "desktop"
}

/// The preferred language (lower-case primary tag) of an `Accept-Language`
/// value: the highest `q`, first on ties; `*` and `q=0` are not preferences.
pub fn language(accept_language: &str) -> Option<String> {
    let mut best: Option<(u16, String)> = None;
    for item in accept_language.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next()?.trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map(|q| parse_qvalue(q.trim()).unwrap_or(0))
            .unwrap_or(1000);
        let primary = tag
            .split('-')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let valid =
            (2..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
        if !valid || q == 0 {
            continue;
        }
        if best.as_ref().is_none_or(|(bq, _)| q > *bq) {
            best = Some((q, primary));
        }
    }
    best.map(|(_, tag)| tag)
}

/// An ISO 3166-1 alpha-2 code from the trusted header (`XX`/`T1` mean unknown/Tor at CDNs).
pub fn country(value: &str) -> Option<String> {
    let code = value.trim().to_ascii_uppercase();
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) && code != "XX")
        .then_some(code)
}

/// The OFREP context for `request` under `targeting_key`; `country_header`
/// is the operator's trusted header, if any (lower-case).
pub fn context(request: &Request, targeting_key: &str, country_header: Option<&str>) -> Value {
    let mut context = Map::new();
    context.insert("targetingKey".into(), json!(targeting_key));
    context.insert(
        "device".into(),
        json!(device(request.header("user-agent").unwrap_or_default())),
    );
    if let Some(language) = request.header("accept-language").and_then(language) {
        context.insert("language".into(), json!(language));
    }
    if let Some(country) = country_header
        .and_then(|name| request.header(name))
        .and_then(country)
    {
        context.insert("country".into(), json!(country));
    }
    if let Auth::Authenticated(session) = &request.auth {
        context.insert("roles".into(), json!(session.roles));
    }
    Value::Object(context)
}

/// The request fields a personalised response varies on.
pub fn vary_fields(country_header: Option<&str>) -> String {
    let mut fields = vec!["cookie", "authorization", "user-agent", "accept-language"];
    if let Some(name) = country_header {
        fields.push(name);
    }
    fields.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        for (ua, expected) in [
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
                "mobile",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36",
                "mobile",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) Safari/537.36",
                "tablet",
            ),
            ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)", "tablet"),
            (
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",
                "desktop",
            ),
            ("Googlebot/2.1 (+http://www.google.com/bot.html)", "bot"),
            ("curl/8.5.0", "bot"),
            ("", "bot"),
        ] {
            assert_eq!(device(ua), expected, "{ua}");
        }
    }

    #[test]
    fn languages_and_countries() {
        assert_eq!(language("de-CH, fr;q=0.9, en;q=0.8").as_deref(), Some("de"));
        assert_eq!(language("en;q=0.5, fr;q=0.9").as_deref(), Some("fr"));
        assert_eq!(language("*, fr;q=0").as_deref(), None);
        assert_eq!(language("12, x"), None);
        // Thousandths decide, and the first of equals wins.
        assert_eq!(language("fr;q=0.125, de;q=0.12").as_deref(), Some("fr"));
        assert_eq!(language("fr;q=0.5, de;q=0.500").as_deref(), Some("fr"));
        // A malformed weight is no preference (RFC 9110 section 12.4.2).
        assert_eq!(language("fr;q=0.5e1, de;q=0.1").as_deref(), Some("de"));
        assert_eq!(language("fr;q=2, de;q=0.1").as_deref(), Some("de"));
        assert_eq!(country(" de ").as_deref(), Some("DE"));
        assert_eq!(country("XX"), None);
        assert_eq!(country("DEU"), None);
    }
}

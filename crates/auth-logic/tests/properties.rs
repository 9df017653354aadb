//! Property tests for everything in this crate that reads untrusted text:
//! session tokens (client cookies), stored password hashes, user names and
//! roles, and configured signing secrets. Each parser must refuse garbage
//! without panicking, and what it accepts must round-trip.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use portico_auth_logic::jwt::{
    self, Claims, DEFAULT_LEEWAY, JwtError, MAX_TOKEN_LEN, MIN_KEY_LEN, VerifyOptions,
};
use portico_auth_logic::password::{self, SALT_LEN};
use portico_auth_logic::secret::decode_secret;
use portico_auth_logic::user::{self, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, UserRecord};
use proptest::prelude::*;
use sha2::Sha256;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token over arbitrary header and payload bytes with a genuine MAC, so
/// the properties reach the header policy and JSON layers, which a random
/// string never gets past the MAC to.
fn forge(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Strings built from the compact-JWS alphabet plus the characters that
/// the structural checks must refuse, so many reach each check.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.=+/ -]{0,120}",
        // Three plausible segments, e.g. `eyJ…` headers.
        (
            "(eyJ)?[A-Za-z0-9_-]{0,60}",
            "[A-Za-z0-9_-]{0,60}",
            "[A-Za-z0-9_-]{0,50}"
        )
            .prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        any::<String>(),
    ]
}

/// Object members a header or payload might carry, including the ones the
/// policy refuses and near-duplicates (`\u0061lg` is `alg`).
fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(r#""alg":"HS256""#.to_owned()),
        1 => Just(r#""alg":"none""#.to_owned()),
        1 => Just(r#""\u0061lg":"HS256""#.to_owned()),
        1 => Just(r#""typ":"jwt""#.to_owned()),
        1 => Just(r#""typ":"at+jwt""#.to_owned()),
        1 => Just(r#""crit":["x"]"#.to_owned()),
        1 => Just(r#""jwk":{}"#.to_owned()),
        1 => Just(r#""kid":{"a":[1,{"a":2}]}"#.to_owned()),
        1 => Just(r#""sub":"a""#.to_owned()),
        1 => Just(r#""exp":1800000000"#.to_owned()),
        1 => Just(r#""exp":1e400"#.to_owned()),
        1 => Just(r#""iat":1700000000"#.to_owned()),
        1 => Just(r#""iat":-0"#.to_owned()),
        1 => Just(r#""jti":"j""#.to_owned()),
        1 => Just(r#""roles":["admin"]"#.to_owned()),
        1 => Just(r#""nbf":null"#.to_owned()),
        1 => Just(r#""gen":18446744073709551615"#.to_owned()),
        1 => ("[a-z]{1,4}", "[0-9]{1,22}|\"[^\"\\\\]{0,6}\"|true|null|\\[\\]")
            .prop_map(|(k, v)| format!("\"{k}\":{v}")),
    ]
}

/// An object whose members are each usually present, usually with a value
/// that passes the checks and otherwise one that fails them, plus now and
/// then a stray member (possibly a duplicate), in shuffled order.
type Candidates = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

fn object_of(members: &'static [Candidates]) -> impl Strategy<Value = Vec<u8>> {
    let picks: Vec<_> = members
        .iter()
        .map(|&(name, good, bad)| {
            let value = prop_oneof![
                3 => prop::sample::select(good),
                1 => prop::sample::select(bad),
            ];
            proptest::option::weighted(0.85, value)
                .prop_map(move |value| value.map(|v| format!("\"{name}\":{v}")))
        })
        .collect();
    (picks, proptest::option::weighted(0.2, member()))
        .prop_map(|(picked, extra)| {
            picked
                .into_iter()
                .flatten()
                .chain(extra)
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
        .prop_map(|members| format!("{{{}}}", members.join(",")).into_bytes())
}

fn header_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => object_of(&[
            ("alg", &[r#""HS256""#], &[r#""none""#, r#""hs256""#, "null"]),
            ("typ", &[r#""JWT""#, r#""jwt""#], &[r#""at+jwt""#, "1"]),
            ("kid", &[r#""k1""#, "{}"], &["[]"]),
        ]),
        1 => json_soup(),
    ]
}

fn payload_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => object_of(&[
            ("sub", &[r#""alice""#], &[r#""""#, "1", "null"]),
            ("iat", &["1700000000", "1699999000"], &["1700000091", "-1", "1.5", r#""1""#]),
            ("exp", &["1700003600", "18446744073709551615"], &["1700000000", "1699999960", "1e10"]),
            ("nbf", &["1699990000", "1700000030"], &["1700000031", "null"]),
            ("jti", &[r#""j""#], &["[]"]),
            ("roles", &[r#"["admin"]"#, "[]"], &[r#""admin""#, "[1]"]),
            ("gen", &["0", "7"], &["-7"]),
        ]),
        1 => json_soup(),
    ]
}

/// JSON-ish byte strings: the members above as loose soup (near-miss
/// syntax), whole objects of them (duplicates included), and raw bytes.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    let soup = prop_oneof![
        1 => member(),
        1 => Just("{".to_owned()),
        1 => Just("}".to_owned()),
        1 => Just("[".to_owned()),
        1 => Just(",".to_owned()),
    ];
    prop_oneof![
        1 => proptest::collection::vec(member(), 0..8)
            .prop_map(|members| format!("{{{}}}", members.join(",")).into_bytes()),
        1 => proptest::collection::vec(soup, 0..12).prop_map(|parts| parts.concat().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        "[ -~]{1,40}|\\PC{1,20}",
        0u64..=86_400,
        1u64..=10_000_000,
        proptest::option::of(0u64..=86_400),
        "\\PC{0,30}",
        proptest::collection::vec("[a-z0-9-]{1,32}|\\PC{0,10}", 0..5),
        any::<u64>(),
    )
        .prop_map(
            |(sub, issued_ago, valid_for, nbf_ago, jti, roles, generation)| Claims {
                sub,
                iat: NOW - issued_ago,
                exp: NOW + valid_for,
                nbf: nbf_ago.map(|ago| NOW - ago),
                jti,
                roles,
                generation,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verify_never_panics_on_arbitrary_tokens(token in token_like(), now in any::<u64>()) {
        let opts = VerifyOptions { now, leeway: DEFAULT_LEEWAY, max_future_iat: 60 };
        let _ = jwt::verify(&token, &[KEY], &opts);
        let _ = jwt::verify_signature_and_decode(&token, &[KEY]);
    }

    #[test]
    fn genuinely_signed_arbitrary_json_never_panics_and_only_valid_claims_pass(
        header in header_like(),
        payload in payload_like(),
    ) {
        let token = forge(&header, &payload, KEY);
        prop_assume!(token.len() <= MAX_TOKEN_LEN);
        match jwt::verify_mac(&token, &[KEY]) {
            Ok(jws) => {
                prop_assert_eq!(jws.header.get("alg").and_then(|a| a.as_str()), Some("HS256"));
                prop_assert!(!jws.header.contains_key("crit"));
                prop_assert_eq!(jws.payload, payload);
            }
            Err(e) => prop_assert_ne!(e, JwtError::BadSignature),
        }
        if let Ok(claims) = jwt::verify(&token, &[KEY], &VerifyOptions::new(NOW)) {
            prop_assert!(!claims.sub.is_empty());
            prop_assert!(NOW < claims.exp.saturating_add(DEFAULT_LEEWAY));
            prop_assert!(claims.nbf.is_none_or(|nbf| nbf <= NOW + DEFAULT_LEEWAY));
        }
    }

    #[test]
    fn check_time_never_panics_on_extreme_clocks(
        exp in any::<u64>(),
        nbf in any::<Option<u64>>(),
        iat in any::<Option<u64>>(),
        now in any::<u64>(),
        leeway in any::<u64>(),
        max_future_iat in any::<u64>(),
    ) {
        let _ = jwt::check_time(exp, nbf, iat, &VerifyOptions { now, leeway, max_future_iat });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn signed_claims_verify_back_to_the_same_claims(claims in claims()) {
        let token = jwt::sign(&claims, KEY);
        prop_assert_eq!(jwt::verify(&token, &[KEY], &VerifyOptions::new(NOW)), Ok(claims));
    }

    #[test]
    fn any_single_character_change_to_a_signed_token_is_refused(
        claims in claims(),
        at in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()
        ),
    ) {
        let token = jwt::sign(&claims, KEY);
        let at = at.index(token.len());
        prop_assume!(token.as_bytes()[at] != replacement);
        let mut mutated = token.into_bytes();
        mutated[at] = replacement;
        let mutated = String::from_utf8(mutated).unwrap();
        prop_assert!(jwt::verify_mac(&mutated, &[KEY]).is_err(), "{}", mutated);
    }

    #[test]
    fn keys_shorter_than_the_minimum_never_verify_anything(
        claims in claims(),
        short in proptest::collection::vec(any::<u8>(), 0..MIN_KEY_LEN),
    ) {
        let token = jwt::sign(&claims, &short);
        prop_assert_eq!(jwt::verify_mac(&token, &[&short]), Err(JwtError::NoUsableKey));
    }
}

/// PHC-shaped strings close to `$pbkdf2-sha256$i=N$salt$hash`.
fn stored_hash_like() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop_oneof![Just("pbkdf2-sha256"), Just("pbkdf2-sha512"), Just("")],
            "i=[0-9]{0,3}|[i=+0-9]{0,6}",
            "[A-Za-z0-9+/=]{0,24}",
            "[A-Za-z0-9+/=]{0,45}",
        )
            .prop_map(|(id, params, salt, hash)| format!("${id}${params}${salt}${hash}")),
        "[$a-z0-9=+/]{0,80}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verify_password_never_panics_on_stored_strings(
        password in "\\PC{0,20}",
        stored in stored_hash_like(),
    ) {
        // The iteration count is at most three digits here, so a string
        // that happens to parse is cheap to check.
        let _ = password::verify_password(&password, &stored);
    }

    #[test]
    fn name_rule_accepts_exactly_its_documented_alphabet(name in "[A-Za-z0-9.@_-]{0,70}|\\PC{0,70}") {
        let documented = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b));
        prop_assert_eq!(user::valid_name(&name), documented);
        if user::valid_name(&name) {
            let key = UserRecord::key(&name);
            prop_assert_eq!(key.strip_prefix(user::KEY_PREFIX), Some(name.as_str()));
            prop_assert!(!key[user::KEY_PREFIX.len()..].contains('/'));
        }
    }

    #[test]
    fn role_rule_accepts_exactly_its_documented_alphabet(role in "[a-z0-9-]{0,40}|[A-Za-z0-9_ -]{0,40}|\\PC{0,40}") {
        let documented = (1..=32).contains(&role.len())
            && role.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        prop_assert_eq!(user::valid_role(&role), documented);
    }

    #[test]
    fn password_policy_counts_characters_and_bytes(password in "\\PC{0,20}|.{1,300}") {
        let ok = password.chars().count() >= MIN_PASSWORD_CHARS && password.len() <= MAX_PASSWORD_BYTES;
        prop_assert_eq!(user::check_new_password(&password).is_ok(), ok);
    }

    #[test]
    fn decode_secret_never_panics_and_never_returns_a_short_key(
        text in "(base64url:)?[A-Za-z0-9_= +/-]{0,60}|\\PC{0,60}",
    ) {
        if let Ok(key) = decode_secret(&text) {
            prop_assert!(key.len() >= MIN_KEY_LEN);
        }
    }

    #[test]
    fn base64url_secrets_decode_to_their_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let decoded = decode_secret(&format!("base64url:{}", b64(&bytes)));
        if bytes.len() >= MIN_KEY_LEN {
            prop_assert_eq!(decoded, Ok(bytes));
        } else {
            prop_assert!(decoded.is_err());
        }
    }
}

proptest! {
    // PBKDF2 dominates here even at a handful of iterations.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hashed_passwords_verify_and_others_do_not(
        password in "\\PC{0,30}",
        other in "\\PC{0,30}",
        salt in any::<[u8; SALT_LEN]>(),
        iterations in 0u32..8,
    ) {
        let stored = password::hash_password(&password, &salt, iterations);
        prop_assert_eq!(password::verify_password(&password, &stored), Ok(true));
        prop_assert_eq!(password::verify_password(&other, &stored), Ok(other == password));
    }
}

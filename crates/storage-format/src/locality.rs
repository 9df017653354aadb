//! Data locality of durable namespaces: the variable `durable_databases`
//! maps namespaces to named databases (`revoked=eu,ratelimit=default`), so an
//! operator can keep a jurisdiction's records in a database placed in its
//! region. Namespaces not listed use [`DEFAULT_DATABASE`].
//!
//! On Spin a database is a SQLite database label (granted to the component
//! with `sqlite_databases` in `spin.toml`); on `wasmtime serve` it is the
//! folder `/data/db/<label>/` (the default stays `/data/`).

use std::collections::BTreeMap;

use crate::names;

/// The database of every namespace the mapping does not name.
pub const DEFAULT_DATABASE: &str = "default";

/// A database label, as Spin's manifest spells SQLite database labels and
/// as a folder name: lower-case ASCII letters, digits, `_` and `-`, starting
/// with a letter, at most 64 bytes.
pub fn is_label(label: &str) -> bool {
    let mut chars = label.chars();
    label.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Why a `durable_databases` value was refused: the entry and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityError {
    pub entry: String,
    pub reason: String,
}

impl std::fmt::Display for LocalityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "durable_databases entry {:?}: {} (expected `namespace=database, ...`, e.g. `revoked=eu,ratelimit=default`)",
            self.entry, self.reason
        )
    }
}

impl std::error::Error for LocalityError {}

/// Namespace -> database label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locality {
    map: BTreeMap<String, String>,
}

impl Locality {
    /// Parses `ns=label, ...`; blanks around entries are ignored, and an
    /// empty value maps nothing.
    pub fn parse(text: &str) -> Result<Locality, LocalityError> {
        let mut map = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let fail = |reason: String| LocalityError {
                entry: entry.to_string(),
                reason,
            };
            let Some((ns, label)) = entry.split_once('=') else {
                return Err(fail("no `=`".into()));
            };
            let (ns, label) = (ns.trim(), label.trim());
            names::check_key(ns).map_err(|err| fail(format!("namespace: {err}")))?;
            if !is_label(label) {
                return Err(fail(format!(
                    "database {label:?} is not a label (lower-case letters, digits, `_` and `-`, starting with a letter)"
                )));
            }
            if let Some(previous) = map.insert(ns.to_string(), label.to_string())
                && previous != label
            {
                return Err(fail(format!(
                    "namespace {ns:?} is already mapped to {previous:?}"
                )));
            }
        }
        Ok(Locality { map })
    }

    /// The database namespace `ns` lives in.
    pub fn database(&self, ns: &str) -> &str {
        self.map.get(ns).map_or(DEFAULT_DATABASE, String::as_str)
    }

    /// Every label the mapping names, without repeats.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        let mut labels: Vec<&str> = self.map.values().map(String::as_str).collect();
        labels.sort_unstable();
        labels.dedup();
        labels.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let locality = Locality::parse("revoked=eu,ratelimit=default").unwrap();
        assert_eq!(locality.database("revoked"), "eu");
        assert_eq!(locality.database("ratelimit"), "default");
        assert_eq!(locality.database("users"), DEFAULT_DATABASE);
        assert_eq!(locality.labels().collect::<Vec<_>>(), ["default", "eu"]);
    }

    #[test]
    fn blanks_and_empty_entries_are_ignored() {
        assert_eq!(Locality::parse("").unwrap(), Locality::default());
        assert_eq!(Locality::parse("  ").unwrap(), Locality::default());
        let locality = Locality::parse(" a = eu-west_1 , ,b=us, ").unwrap();
        assert_eq!(locality.database("a"), "eu-west_1");
        assert_eq!(locality.database("b"), "us");
        // Namespaces may contain `/` and the like, as everywhere else.
        assert_eq!(
            Locality::parse("probe-ns/x=eu")
                .unwrap()
                .database("probe-ns/x"),
            "eu"
        );
    }

    #[test]
    fn mistakes_name_the_entry() {
        for (text, entry) in [
            ("revoked", "revoked"),
            ("revoked=", "revoked="),
            ("=eu", "=eu"),
            ("a=EU", "a=EU"),
            ("a=../x", "a=../x"),
            ("a=1eu", "a=1eu"),
            ("a=eu,a=us", "a=us"),
        ] {
            let err = Locality::parse(text).unwrap_err();
            assert_eq!(err.entry, entry, "{text}");
            assert!(err.to_string().contains(entry), "{err}");
        }
        // Mapping a namespace twice to the same database is harmless.
        assert!(Locality::parse("a=eu,a=eu").is_ok());
    }

    #[test]
    fn labels() {
        for (label, ok) in [
            ("default", true),
            ("eu", true),
            ("eu-west_1", true),
            ("", false),
            ("Eu", false),
            ("1eu", false),
            ("e/u", false),
            ("e.u", false),
        ] {
            assert_eq!(is_label(label), ok, "{label}");
        }
        assert!(is_label(&"a".repeat(64)));
        assert!(!is_label(&"a".repeat(65)));
    }
}

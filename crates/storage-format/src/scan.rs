//! One bounded step of a resumable scan over keys: what the KV sweeps of
//! both adapters and the asset compaction share. A caller examines the
//! batch, reports `next` to its client, and gets the following batch by
//! passing it back as the cursor.

/// The keys to examine in this step, ascending, and the cursor to resume
/// after them (`None` when no keys remain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

/// The first `max` (at least one) keys, in ascending order, among those of
/// `keys` that start with `prefix` and sort strictly after `cursor`.
pub fn batch(
    keys: impl IntoIterator<Item = String>,
    prefix: &str,
    cursor: Option<&str>,
    max: usize,
) -> Batch {
    let max = max.max(1);
    let mut candidates: Vec<String> = keys
        .into_iter()
        .filter(|key| key.starts_with(prefix) && cursor.is_none_or(|after| key.as_str() > after))
        .collect();
    let more = candidates.len() > max;
    if more {
        // Only the first `max` in key order are wanted: no full sort.
        candidates.select_nth_unstable(max);
        candidates.truncate(max);
    }
    candidates.sort_unstable();
    let next = if more {
        candidates.last().cloned()
    } else {
        None
    };
    Batch {
        keys: candidates,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn batches_resume_after_the_cursor_until_done() {
        let all = keys(&["p/d", "p/a", "q/x", "p/c", "p/b"]);
        let first = batch(all.clone(), "p/", None, 2);
        assert_eq!(first.keys, keys(&["p/a", "p/b"]));
        assert_eq!(first.next.as_deref(), Some("p/b"));
        let second = batch(all.clone(), "p/", first.next.as_deref(), 2);
        assert_eq!(second.keys, keys(&["p/c", "p/d"]));
        assert_eq!(second.next, None);
        let empty = batch(all, "p/", Some("p/d"), 2);
        assert!(empty.keys.is_empty() && empty.next.is_none());
    }
}

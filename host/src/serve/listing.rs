//! Listings shared by the API and the console: a page of the ledger under a filter.

use regex::Regex;
use spark_host::{Error, LedgerEntry, Tenant, compile_regex, parse_time};

/// Ledger entries looked at for one page at most: a filter that matches little ends a
/// page early (with a cursor) rather than scan the whole ledger in one request.
pub const SCAN_BUDGET: usize = 100_000;

/// Which events a listing shows.
#[derive(Debug, Default)]
pub struct EventFilter {
    /// Their group matches this regex (unanchored).
    pub group: Option<Regex>,
    /// Their key starts with this.
    pub prefix: String,
    /// Created at or after (unix ms).
    pub from: Option<i64>,
    /// Created before (unix ms).
    pub to: Option<i64>,
}

impl EventFilter {
    /// A filter from a request's text: a regex, a prefix, and two times.
    pub fn parse(
        group: Option<&str>,
        prefix: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Self, Error> {
        Ok(Self {
            group: group.map(compile_regex).transpose()?,
            prefix: prefix.unwrap_or_default().to_owned(),
            from: from.map(parse_time).transpose()?,
            to: to.map(parse_time).transpose()?,
        })
    }

    fn matches(&self, entry: &LedgerEntry) -> bool {
        self.group
            .as_ref()
            .is_none_or(|re| re.is_match(&entry.group))
            && self.from.is_none_or(|from| entry.created_at_ms >= from)
            && self.to.is_none_or(|to| entry.created_at_ms < to)
    }
}

/// Up to `limit` events of `tenant` that `filter` lets through, in key order from after
/// the cursor `after`, and the cursor of the next page (`None` on the last one).
pub fn events_page(
    tenant: &Tenant,
    filter: &EventFilter,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<LedgerEntry>, Option<String>), Error> {
    let prefix = filter.prefix.as_str();
    // From after the cursor, or from just before the first key with the prefix,
    // whichever is later.
    let start = [after, (!prefix.is_empty()).then(|| before(prefix))]
        .into_iter()
        .flatten()
        .max();
    let mut items = Vec::new();
    let mut last = None;
    let mut entries = tenant.events_after(start.as_deref());
    for (scanned, entry) in entries.by_ref().enumerate() {
        let entry = entry?;
        if !entry.key.starts_with(prefix) {
            if entry.key.as_str() > prefix {
                // Past every key with the prefix.
                return Ok((items, None));
            }
            continue;
        }
        last = Some(entry.key.clone());
        if filter.matches(&entry) {
            items.push(entry);
        }
        if items.len() >= limit || scanned + 1 >= SCAN_BUDGET {
            break;
        }
    }
    let more = entries
        .next()
        .transpose()?
        .is_some_and(|entry| entry.key.starts_with(prefix));
    Ok((items, if more { last } else { None }))
}

/// A key that sorts before every key that starts with `prefix`: the prefix without its
/// last character.
fn before(prefix: &str) -> String {
    let mut chars = prefix.chars();
    chars.next_back();
    chars.as_str().to_owned()
}

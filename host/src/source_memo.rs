//! Skipping source calls whose answer is known.
//!
//! A source's events are a function of its input: the module's code, the model, the
//! record and the time its calls see. With the exact clock that time is new in every
//! run, so every record goes through its sources again (and every event it implies is
//! looked up in the ledger). With a coarse clock ([`Clock`](crate::Clock)), a record
//! ingested again unchanged within the same minute, hour or day gives the source the
//! very same input.
//!
//! So a stored record keeps, for each such source, a memo of the source's last
//! successful call on it: which call (the digest below: code, model and time) and how
//! many events came back. Memos are written with the record text they were made from,
//! in the commit that holds those events' ledger entries, and the ledger only grows; so
//! when a record comes again unchanged and its memo names this run's call, every event
//! the call would return is known: the run counts them as duplicates without calling.
//! That saves the source call and a ledger read per event: an unchanged record then
//! costs one read of the stored record. A memo that no longer matches (a new day, new
//! code) is replaced when the source is called again; a failed call leaves no memo.
//!
//! What this rests on: a source returns the same events for the same input. The host
//! puts everything a call can observe into that input (the WASI clock reads the
//! invocation's time, random numbers are seeded from the record), so only a module that
//! keeps state from call to call in its instance could break it; the guest guide says
//! that sources must not. The host's version is part of the digest, so a new host
//! (whose native modules may have changed) calls every source again.

use sha2::{Digest, Sha256};

/// Names a source's calls on the records of `model` in one run: `code` names the
/// module's code (its hash, or the native module's name) and `now_ms` is the time as
/// the module's clock reads it.
pub(crate) fn call_digest(code: &str, model: &str, now_ms: i64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Lengths first, so that no two inputs run together into the same bytes.
    for part in [env!("CARGO_PKG_VERSION"), code, model] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(now_ms.to_le_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_call_counts() {
        let base = call_digest("abc", "challenge", 0);
        assert_eq!(base, call_digest("abc", "challenge", 0));
        for other in [
            call_digest("abd", "challenge", 0),
            call_digest("abc", "challenges", 0),
            call_digest("abc", "challenge", 1),
            // Parts cannot shift into each other.
            call_digest("abcc", "hallenge", 0),
        ] {
            assert_ne!(base, other);
        }
    }
}

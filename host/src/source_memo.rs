//! Skipping source calls whose answer is known.
//!
//! A source's events are a function of its input: the module's code, the model, the
//! record and the time its calls see. With the exact clock that time is new in every
//! run, so every record goes through its sources again (and every event it implies is
//! looked up in the ledger). With a coarse clock ([`Clock`](crate::Clock)), a record
//! ingested again unchanged within the same minute, hour or day gives the source the
//! very same input.
//!
//! So for such a module the pipeline keeps, per record, a memo of its last successful
//! call: the digest of the input and how many events came back. The memo is committed
//! with those events' ledger entries, and the ledger only grows, so when a call's input
//! matches the memo, every event the call would return is known: the run counts them as
//! duplicates without calling. The time saved is the source call and one ledger read
//! per event; a duplicate record then costs about what storing it costs.
//!
//! What this rests on: a source returns the same events for the same input. The host
//! puts everything a call can observe into that input (the WASI clock reads the
//! invocation's time, random numbers are seeded from the record), so only a module that
//! keeps state from call to call in its instance could break it; the guest guide says
//! that sources must not. The host's version is part of the digest too, so a new host
//! (whose native modules may have changed) calls every source again.

use sha2::{Digest, Sha256};

/// The digest of a source call's input. `code` names the module's code (its hash, or
/// the native module's name).
pub(crate) fn input_digest(code: &str, model: &str, now_ms: i64, record: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Lengths first, so that no two inputs run together into the same bytes.
    for part in [env!("CARGO_PKG_VERSION"), code, model] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(now_ms.to_le_bytes());
    hasher.update(record.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_input_counts() {
        let base = input_digest("abc", "challenge", 0, r#"{"id":1}"#);
        assert_eq!(base, input_digest("abc", "challenge", 0, r#"{"id":1}"#));
        for other in [
            input_digest("abd", "challenge", 0, r#"{"id":1}"#),
            input_digest("abc", "challenges", 0, r#"{"id":1}"#),
            input_digest("abc", "challenge", 1, r#"{"id":1}"#),
            input_digest("abc", "challenge", 0, r#"{"id":2}"#),
            // Parts cannot shift into each other.
            input_digest("abcc", "hallenge", 0, r#"{"id":1}"#),
        ] {
            assert_ne!(base, other);
        }
    }
}

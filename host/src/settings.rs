//! A tenant's settings: the limits its modules run under by default, how failed
//! deliveries (handler calls) are retried, its mail defaults and where each outbox route
//! goes. `spark apply` sets them; the store keeps them as JSON, so a field added here
//! needs a `#[serde(default)]` for settings written before it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::limits::LimitOverrides;
use crate::schedule::Schedules;

/// A tenant's settings, set by `spark apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    #[serde(default)]
    pub limits: LimitOverrides,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub mail: MailSettings,
    /// The transport of each output channel (`[outputs]` in the manifest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// When a server runs `process-sources` and `generate` by itself (`[schedule]`).
    #[serde(default, skip_serializing_if = "Schedules::is_empty")]
    pub schedule: Schedules,
}

impl TenantSettings {
    /// Refuses limits out of range and a retry policy that would never try.
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        if self.retry.attempts == 0 {
            return Err(Error::InvalidLimits(
                "retry `attempts` must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included, before a delivery is parked as dead.
    pub attempts: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff_ms: 100,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt.
    pub fn backoff_after(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(20);
        self.backoff_ms.saturating_mul(1 << doublings)
    }
}

/// A tenant's mail settings (`[mails]` in the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MailSettings {
    /// The sender of mails that name none, e.g. `Challenges <hello@example.com>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The reply address of mails that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// How `spark outbox send` sends mails when not told: `file:DIR`,
    /// `smtp://HOST:PORT`, `smtps://HOST:PORT` or `stdout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles() {
        let policy = RetryPolicy {
            attempts: 5,
            backoff_ms: 100,
        };
        let waits: Vec<u64> = (1..=4).map(|n| policy.backoff_after(n)).collect();
        assert_eq!(waits, [100, 200, 400, 800]);
        assert_eq!(policy.backoff_after(u32::MAX), 100 << 20);
    }
}

//! A tenant's settings: the limits its modules run under by default, how failed
//! deliveries (handler calls) are retried, its mail defaults and where each outbox route
//! goes. `spark apply` sets them, `spark settings set` changes some of them (as a JSON
//! merge patch, [`TenantSettings::patched`]); the store keeps them as JSON, so a field
//! added here needs a `#[serde(default)]` for settings written before it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The fields of [`TenantSettings`] as JSON names them: a patch naming another is
/// refused, not ignored.
const FIELDS: [&str; 5] = ["limits", "retry", "mail", "outputs", "schedule"];

impl TenantSettings {
    /// Refuses limits out of range, a retry policy that would never try, and a mail
    /// sender or reply address that is not a mail address (a typo found now, not when
    /// every mail fails to go out).
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        if self.retry.attempts == 0 {
            return Err(Error::InvalidLimits(
                "retry `attempts` must be at least 1".to_owned(),
            ));
        }
        check_address("sender (`from`)", self.mail.from.as_deref())?;
        check_address("reply address (`reply-to`)", self.mail.reply_to.as_deref())?;
        Ok(())
    }

    /// These settings with `patch` merged in, as a JSON merge patch (RFC 7396) on their
    /// JSON: an object merges into an object, `null` removes a field, anything else
    /// replaces it. `{"mail": {"from": "Team <team@example.com>"}, "outputs": {"audit":
    /// null}}` sets the sender and removes the channel `audit`, keeping the rest. Only
    /// read here: [`validate`](Self::validate) checks the values.
    pub fn patched(&self, patch: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = patch else {
            return Err(Error::InvalidSettings(
                "a change to the settings is a JSON object".to_owned(),
            ));
        };
        if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(Error::InvalidSettings(format!(
                "unknown setting `{unknown}` (known: {})",
                FIELDS.join(", ")
            )));
        }
        let mut merged = serde_json::to_value(self)
            .map_err(|error| Error::InvalidSettings(error.to_string()))?;
        merge_patch(&mut merged, patch);
        serde_json::from_value(merged).map_err(|error| Error::InvalidSettings(error.to_string()))
    }
}

/// Applies a JSON merge patch (RFC 7396) to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(fields) = target else {
        unreachable!("made an object just above");
    };
    for (name, value) in patch {
        if value.is_null() {
            fields.remove(name);
        } else {
            merge_patch(fields.entry(name.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Refuses an address a mail could not be sent with (`what` names the setting).
fn check_address(what: &'static str, address: Option<&str>) -> Result<(), Error> {
    let Some(address) = address else {
        return Ok(());
    };
    address
        .parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|error| Error::InvalidAddress {
            what,
            address: address.to_owned(),
            why: error.to_string(),
        })
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
    fn a_patch_merges_removes_and_replaces() {
        let mut settings = TenantSettings::default();
        settings.mail.reply_to = Some("help@example.com".to_owned());
        settings.outputs = BTreeMap::from([
            ("audit".to_owned(), "file:/srv/audit".to_owned()),
            ("seen".to_owned(), "stdout".to_owned()),
        ]);
        let patched = settings
            .patched(&serde_json::json!({
                "mail": { "from": "Team <team@example.com>", "reply-to": null },
                "outputs": { "audit": null, "new": "file:/srv/new" },
                "retry": { "attempts": 5 },
            }))
            .unwrap();
        assert_eq!(
            patched.mail.from.as_deref(),
            Some("Team <team@example.com>")
        );
        assert_eq!(patched.mail.reply_to, None);
        assert_eq!(
            patched.outputs.keys().collect::<Vec<_>>(),
            ["new", "seen"],
            "one channel removed, one added, one kept"
        );
        assert_eq!(patched.retry.attempts, 5);
        assert_eq!(patched.retry.backoff_ms, 100, "a field not named is kept");
        assert_eq!(patched.limits, settings.limits);
        assert_eq!(
            settings.patched(&serde_json::json!({})).unwrap(),
            settings,
            "an empty patch changes nothing"
        );
        for bad in [
            serde_json::json!({ "mails": { "from": "a@example.com" } }),
            serde_json::json!({ "mail": { "form": "a@example.com" } }),
            serde_json::json!({ "retry": { "attempts": "three" } }),
            serde_json::json!(["mail"]),
        ] {
            assert!(
                matches!(settings.patched(&bad), Err(Error::InvalidSettings(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn senders_and_reply_addresses_must_be_addresses() {
        let mut settings = TenantSettings::default();
        for good in [
            "team@example.com",
            "Team <team@example.com>",
            "\"A, B\" <ab@example.com>",
        ] {
            settings.mail.from = Some(good.to_owned());
            assert!(settings.validate().is_ok(), "{good}");
        }
        for bad in ["", "team", "Team <team>", "team@example.com>"] {
            settings.mail.from = Some(bad.to_owned());
            assert!(
                matches!(settings.validate(), Err(Error::InvalidAddress { .. })),
                "{bad:?}"
            );
        }
        settings.mail.from = None;
        settings.mail.reply_to = Some("not an address".to_owned());
        assert!(matches!(
            settings.validate(),
            Err(Error::InvalidAddress { .. })
        ));
    }

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

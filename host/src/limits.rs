//! The limits of the sandbox: per module (with tenant defaults) and engine-wide.
//!
//! A module call runs under [`Limits`]: the engine's defaults, overridden by the
//! tenant's `[limits]` and then by the module's own `limits` in the manifest. The
//! defaults are safe for untrusted code and generous for ordinary sources and handlers;
//! README.md has the table with the reasoning.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Defines [`Limits`], [`LimitOverrides`] and [`Limit`] from one list, so that a new
/// limit is one line here plus its enforcement. Each has a default and a most it may be
/// set to: beyond that a value is a mistake (a byte count typed as bits, u64::MAX), and
/// would only let one module starve the rest.
macro_rules! limits {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty = $default:expr, at most $max:expr, $variant:ident, $name:literal;)*) => {
        /// The limits one module call runs under.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub struct Limits {
            $($(#[doc = $doc])* pub $field: $ty,)*
        }

        impl Default for Limits {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        /// Some limits changed from the level below (engine defaults, then tenant, then
        /// module). Unknown names are refused, so a typo never leaves a limit at its default.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        pub struct LimitOverrides {
            $($(#[doc = $doc])* #[serde(default, skip_serializing_if = "Option::is_none")]
            pub $field: Option<$ty>,)*
        }

        impl Limits {
            /// What a module runs under: the engine's defaults, then its tenant's
            /// overrides, then its own.
            pub fn layered(tenant: &LimitOverrides, module: &LimitOverrides) -> Self {
                Self::default().with(tenant).with(module)
            }

            /// These limits with `overrides` applied.
            pub fn with(mut self, overrides: &LimitOverrides) -> Self {
                $(if let Some(value) = overrides.$field { self.$field = value; })*
                self
            }

            /// Each per-call limit with its value, in a fixed order (for listings).
            pub fn entries(&self) -> Vec<(Limit, u64)> {
                vec![$((Limit::$variant, u64::from(self.$field)),)*]
            }
        }

        impl From<Limits> for LimitOverrides {
            /// Every limit set: a module with these ignores its tenant's limits.
            fn from(limits: Limits) -> Self {
                Self { $($field: Some(limits.$field),)* }
            }
        }

        impl LimitOverrides {
            /// Refuses values that would make every call fail.
            pub fn validate(&self) -> Result<(), Error> {
                $(if self.$field == Some(0) {
                    return Err(Error::InvalidLimits(format!("`{}` must be greater than 0", $name)));
                }
                let most: $ty = $max;
                if let Some(value) = self.$field && value > most {
                    return Err(Error::InvalidLimits(format!(
                        "`{}` must be at most {most} (it is {value})", $name
                    )));
                })*
                Ok(())
            }

            /// The limits that are set, with their values.
            pub fn entries(&self) -> Vec<(Limit, u64)> {
                let mut entries = Vec::new();
                $(if let Some(value) = self.$field { entries.push((Limit::$variant, u64::from(value))); })*
                entries
            }
        }

        /// The name of a limit, as written in manifests and shown in errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        #[non_exhaustive]
        pub enum Limit {
            $($(#[doc = $doc])* $variant,)*
            /// Engine-wide: bytes in an event key.
            KeyBytes,
            /// Engine-wide: bytes in an event group.
            GroupBytes,
            /// Engine-wide: bytes in an event context.
            ContextBytes,
        }

        impl Limit {
            /// The name used in manifests and messages.
            pub fn name(self) -> &'static str {
                match self {
                    $(Limit::$variant => $name,)*
                    Limit::KeyBytes => "key-bytes",
                    Limit::GroupBytes => "group-bytes",
                    Limit::ContextBytes => "context-bytes",
                }
            }
        }
    };
}

limits! {
    /// Fuel per call: roughly one unit per WebAssembly instruction executed.
    fuel: u64 = 100_000_000, at most 1_000_000_000_000, Fuel, "fuel";
    /// Wall-clock time per call in milliseconds, a backstop for time fuel does not count.
    deadline_ms: u64 = 1_000, at most 600_000, DeadlineMs, "deadline-ms";
    /// Linear memory per module instance, in bytes.
    memory_bytes: u64 = 64 << 20, at most 4 << 30, MemoryBytes, "memory-bytes";
    /// Elements per table of a module instance.
    table_elements: u64 = 20_000, at most 1_000_000, TableElements, "table-elements";
    /// Core instances a component may create (a component is made of several).
    instances: u32 = 32, at most 1_000, Instances, "instances";
    /// Bytes of input per call: the record of a source, the event of a handler.
    input_bytes: u64 = 256 << 10, at most 16 << 20, InputBytes, "input-bytes";
    /// Bytes of output per call: the sum of all strings returned.
    output_bytes: u64 = 1 << 20, at most 64 << 20, OutputBytes, "output-bytes";
    /// Events one source call may return.
    events_per_call: u32 = 100, at most 100_000, EventsPerCall, "events-per-call";
    /// Effects one handler call may return.
    effects_per_call: u32 = 100, at most 100_000, EffectsPerCall, "effects-per-call";
    /// Bytes of stdout and stderr kept per call; the rest is cut off, not an error.
    log_bytes: u64 = 4 << 10, at most 1 << 20, LogBytes, "log-bytes";
    /// Calls an instance serves before it is replaced by a fresh one (it is replaced
    /// after any failure anyway); 1 isolates every call from the ones before it.
    calls_per_instance: u64 = 1_000_000, at most u64::MAX, CallsPerInstance, "calls-per-instance";
}

/// Engine-wide: the longest event key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Engine-wide: the longest event group, in bytes.
pub const MAX_GROUP_BYTES: usize = 128;
/// Engine-wide: the longest output channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 128;
/// Engine-wide: the largest event context, in bytes of JSON.
pub const MAX_CONTEXT_BYTES: usize = 64 << 10;
/// Engine-wide: how deep emitted events may nest (an event from a source is at depth 0).
pub const MAX_EMIT_DEPTH: u32 = 8;

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_in_layers() {
        let tenant = LimitOverrides {
            fuel: Some(5),
            memory_bytes: Some(1 << 20),
            ..LimitOverrides::default()
        };
        let module = LimitOverrides {
            fuel: Some(7),
            ..LimitOverrides::default()
        };
        let limits = Limits::layered(&tenant, &module);
        assert_eq!(limits.fuel, 7);
        assert_eq!(limits.memory_bytes, 1 << 20);
        assert_eq!(limits.deadline_ms, Limits::default().deadline_ms);
    }

    #[test]
    fn overrides_parse_from_kebab_case_and_refuse_unknown_names() {
        let parsed: LimitOverrides = toml::from_str("fuel = 10\ndeadline-ms = 20").unwrap();
        assert_eq!(parsed.fuel, Some(10));
        assert_eq!(parsed.deadline_ms, Some(20));
        assert!(toml::from_str::<LimitOverrides>("feul = 10").is_err());
    }

    #[test]
    fn zero_is_refused() {
        let zero = LimitOverrides {
            events_per_call: Some(0),
            ..LimitOverrides::default()
        };
        assert!(matches!(zero.validate(), Err(Error::InvalidLimits(_))));
    }

    #[test]
    fn values_beyond_the_most_are_refused() {
        for (limit, value) in [("memory-bytes", u64::MAX), ("fuel", 1_000_000_000_001)] {
            let overrides: LimitOverrides = toml::from_str(&format!("{limit} = {value}")).unwrap();
            let refused = overrides.validate().unwrap_err().to_string();
            assert!(
                refused.contains(&format!("`{limit}` must be at most")),
                "{refused}"
            );
        }
        let most: LimitOverrides = toml::from_str("memory-bytes = 4294967296").unwrap();
        assert!(most.validate().is_ok());
        let unbounded: LimitOverrides =
            toml::from_str(&format!("calls-per-instance = {}", u64::MAX)).unwrap();
        assert!(unbounded.validate().is_ok(), "never replaced is a choice");
    }

    #[test]
    fn every_limit_has_a_distinct_name() {
        let names: std::collections::HashSet<_> = Limits::default()
            .entries()
            .into_iter()
            .map(|(limit, _)| limit.name())
            .collect();
        assert_eq!(names.len(), Limits::default().entries().len());
    }
}

//! A module's registration with a tenant: what code it runs, what it is registered
//! for, and under which limits and clock. Whether code is a component or native code
//! of the host is decided here, once, from the text that names it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::LimitOverrides;
use crate::time::Clock;

/// The longest module or model name (and tenant name).
pub(crate) const MAX_NAME_LEN: usize = 64;

/// What a native module's name starts with.
const NATIVE_PREFIX: &str = "builtin:";

/// A module registered for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub name: String,
    /// What it runs. Stored (and printed by `module list --json`) as `hash`: the
    /// component's SHA-256 in hex, or the native module's name.
    #[serde(rename = "hash")]
    pub code: RegisteredCode,
    /// Registration order; handlers run in this order. Kept when a module is replaced.
    pub order: u64,
    /// Models this module is a source for.
    pub sources: Vec<String>,
    /// Group regexes this module handles.
    pub handlers: Vec<String>,
    /// The Spark interfaces the code exports: `source`, `handler`, `context`.
    #[serde(default)]
    pub exports: Vec<String>,
    /// The module's own limits, over the tenant's.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// How coarsely its calls read the run's time.
    #[serde(default)]
    pub clock: Clock,
    /// Since when this registration (this code with these routes and limits) is the
    /// one that runs (wall-clock unix ms); unknown for modules registered before
    /// Spark kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

impl Registration {
    /// Whether it exports `interface` (`source`, `handler` or `context`).
    pub fn exports(&self, interface: &str) -> bool {
        self.exports.iter().any(|export| export == interface)
    }

    /// Whether it is registered as a source of `model`.
    pub fn is_source_of(&self, model: &str) -> bool {
        self.sources.iter().any(|source| source == model)
    }
}

/// The registration that computes the context of `model`'s records for generators:
/// the first source of the model that exports `context`.
pub(crate) fn context_source(
    registrations: impl IntoIterator<Item = Registration>,
    model: &str,
) -> Option<Registration> {
    registrations
        .into_iter()
        .find(|module| module.is_source_of(model) && module.exports("context"))
}

/// The code a registration runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RegisteredCode {
    /// A WebAssembly component, stored under the tenant's `modules/` by the SHA-256 of
    /// its bytes (lowercase hex).
    Component { sha256: String },
    /// A native module of the host (`builtin:...`), by name.
    Native { name: String },
}

impl RegisteredCode {
    /// The text that names it: the component's hash, or the native module's name.
    /// It is also what names the code in a source's memo (see `source_memo`).
    pub fn as_str(&self) -> &str {
        match self {
            RegisteredCode::Component { sha256 } => sha256,
            RegisteredCode::Native { name } => name,
        }
    }
}

impl From<String> for RegisteredCode {
    fn from(text: String) -> Self {
        if is_native(&text) {
            RegisteredCode::Native { name: text }
        } else {
            RegisteredCode::Component { sha256: text }
        }
    }
}

impl From<RegisteredCode> for String {
    fn from(code: RegisteredCode) -> Self {
        match code {
            RegisteredCode::Component { sha256 } => sha256,
            RegisteredCode::Native { name } => name,
        }
    }
}

impl fmt::Display for RegisteredCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `name` (a registration's code, a manifest's module path, a CLI argument)
/// names a native module of the host rather than a component file.
pub(crate) fn is_native(name: &str) -> bool {
    name.starts_with(NATIVE_PREFIX)
}

/// Checks a module or model name: letters, digits, `_`, `-`, `.`; at most 64.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("it is longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err("use letters, digits, `-`, `_` and `.` only");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("it does not start with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_and_model_names() {
        for good in ["mailer", "challenge.v2", "A-b_c"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a\0b", "a/b", ".hidden", &"m".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn code_is_stored_as_the_text_that_names_it() {
        let sha = "ab".repeat(32);
        for (code, text) in [
            (
                RegisteredCode::Component {
                    sha256: sha.clone(),
                },
                sha.as_str(),
            ),
            (
                RegisteredCode::Native {
                    name: "builtin:mails".to_owned(),
                },
                "builtin:mails",
            ),
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<RegisteredCode>(&json).unwrap(), code);
            assert_eq!(code.as_str(), text);
        }
    }

    #[test]
    fn a_registration_written_before_keeps_reading() {
        // As stored by earlier versions: `hash` holds the code's name.
        let stored = r#"{"name":"mails","hash":"builtin:mails","order":3,
            "sources":[],"handlers":["^challenge"]}"#;
        let registration: Registration = serde_json::from_str(stored).unwrap();
        assert_eq!(
            registration.code,
            RegisteredCode::Native {
                name: "builtin:mails".to_owned()
            }
        );
        assert_eq!(registration.order, 3);
        assert!(registration.exports.is_empty());
    }
}

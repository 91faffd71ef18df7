use std::fmt::Display;

use serde::de::DeserializeOwned;

use crate::{Context, Error};

/// Something that happened: a group, a key and a context.
///
/// The host processes each key once, whatever its group: an event whose key was seen
/// before is a duplicate and goes no further. Handlers are chosen by regexes on the
/// group.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The kind of event, e.g. `challenge_created`. Non-empty, at most 128 bytes.
    pub group: String,
    /// The identity of the event, unique across groups. Non-empty, at most 256 bytes.
    pub key: String,
    /// Data for handlers, read as a `serde_json::Value`. The host accepts only a JSON
    /// object here (`{}` for none).
    pub context: Context,
}

/// An event with django-spark's key format: `"{group}_{id}"`.
///
/// Two different pairs can make the same key (`event("a_b", 1, ..)` and
/// `event("a", "b_1", ..)` are both `a_b_1`); choose groups and ids so they do not.
///
/// `context` is a `json!` value, or a [`Context`] made from one and cloned for each
/// event that shares it (its text is then written once).
///
/// ```
/// use spark_guest::{event, json};
/// let e = event("challenge_created", 42, json!({ "title": "Run" }));
/// assert_eq!(e.key, "challenge_created_42");
/// ```
pub fn event(group: &str, id: impl Display, context: impl Into<Context>) -> Event {
    Event {
        group: group.to_owned(),
        key: format!("{group}_{id}"),
        context: context.into(),
    }
}

impl Event {
    /// An event with a key of your own choosing.
    pub fn new(
        group: impl Into<String>,
        key: impl Into<String>,
        context: impl Into<Context>,
    ) -> Self {
        Self {
            group: group.into(),
            key: key.into(),
            context: context.into(),
        }
    }

    /// The whole context, parsed into `T` (straight from the host's text, when the
    /// context has not been read as a `Value` before).
    ///
    /// ```
    /// # use spark_guest::{event, json};
    /// #[derive(serde::Deserialize)]
    /// struct Context { title: String }
    /// let e = event("challenge_created", 42, json!({ "title": "Run" }));
    /// assert_eq!(e.context_as::<Context>().unwrap().title, "Run");
    /// ```
    pub fn context_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.context
            .parse()
            .map_err(|error| Error::msg(format!("context of event `{}`: {error}", self.key)))
    }

    /// One field of the context, parsed into `T`; an error names the missing field.
    ///
    /// ```
    /// # use spark_guest::{event, json};
    /// let e = event("challenge_created", 42, json!({ "donations": 3 }));
    /// assert_eq!(e.field::<u32>("donations").unwrap(), 3);
    /// assert!(e.field::<u32>("owner").is_err());
    /// ```
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        let value = self.context.get(name).ok_or_else(|| {
            Error::msg(format!("context of event `{}` has no `{name}`", self.key))
        })?;
        T::deserialize(value).map_err(|error| {
            Error::msg(format!(
                "`{name}` in the context of event `{}`: {error}",
                self.key
            ))
        })
    }
}

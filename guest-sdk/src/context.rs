use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::Error;

/// An event's context: a JSON object, which reads as a [`Value`]
/// (`event.context["challenge"]["title"]`).
///
/// It is kept as the value, the JSON text the host sends and receives, or both, and
/// each is made from the other only when asked for, once. So a handler that reads its
/// context with [`Event::context_as`](crate::Event::context_as) parses the text straight
/// into its own types, without a [`Value`] tree in between; and the events of a source
/// that share one context (made from a `json!` value with `.into()`, then cloned) share
/// its text too: clones are cheap, and the text is written once for all of them.
/// [`Context::of`] writes one straight from a type of your own, without a `Value`.
///
/// ```
/// use spark_guest::{Context, event, json};
/// let context: Context = json!({ "challenge": { "title": "Run" } }).into();
/// let created = event("challenge_created", 7, context.clone());
/// let ended = event("challenge_ended", 7, context);
/// assert_eq!(created.context["challenge"]["title"], "Run");
/// assert_eq!(created.context.text(), ended.context.text());
/// ```
#[derive(Clone)]
pub struct Context(Arc<Forms>);

/// At least one of the two is set.
#[derive(Clone)]
struct Forms {
    value: OnceLock<Value>,
    text: OnceLock<String>,
}

impl Context {
    /// A context written straight from `value` (a struct that derives `Serialize`, a
    /// map), without a [`Value`] tree in between: the cheapest way to make one. Fails
    /// when `value` is not a JSON object (the host accepts nothing else).
    ///
    /// ```
    /// use spark_guest::{Context, event};
    /// #[derive(serde::Serialize)]
    /// struct Signup<'a> { email: &'a str }
    /// let context = Context::of(&Signup { email: "ada@example.com" })?;
    /// assert_eq!(context.text(), r#"{"email":"ada@example.com"}"#);
    /// let created = event("signup_created", 7, context);
    /// assert_eq!(created.context["email"], "ada@example.com");
    /// assert!(Context::of(&[1, 2]).is_err());
    /// # Ok::<(), spark_guest::Error>(())
    /// ```
    pub fn of(value: &impl Serialize) -> Result<Self, Error> {
        let text = serde_json::to_string(value)?;
        if !text.starts_with('{') {
            let kind = match text.as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b'n') => "null",
                Some(b't' | b'f') => "a boolean",
                _ => "a number",
            };
            return Err(Error::msg(format!(
                "a context is a JSON object, not {kind}"
            )));
        }
        Ok(Self::from_text(text))
    }

    /// A context from JSON text known to be an object: the host's (it delivers only
    /// objects it has checked) or one written by [`Context::of`]. It is parsed when
    /// first read.
    pub(crate) fn from_text(text: String) -> Self {
        Self(Arc::new(Forms {
            value: OnceLock::new(),
            text: OnceLock::from(text),
        }))
    }

    /// The context as JSON text, as the host receives it; written once, when first
    /// asked for, and shared by every clone.
    pub fn text(&self) -> &str {
        self.0
            .text
            .get_or_init(|| crate::json_text(self.0.value.get().expect("a context has a form")))
    }

    /// The text, taken without a copy when no other clone holds it.
    pub(crate) fn into_text(self) -> String {
        self.text();
        match Arc::try_unwrap(self.0) {
            Ok(forms) => forms.text.into_inner().expect("written just now"),
            Err(shared) => shared.text.get().expect("written just now").clone(),
        }
    }

    /// The context parsed into `T`: straight from the text when it has not been read as
    /// a [`Value`] yet (no tree built and then copied out of).
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match (self.0.value.get(), self.0.text.get()) {
            (None, Some(text)) => serde_json::from_str(text).or_else(|error| {
                // A text may say a thing twice, e.g. `{"a": 1, "a": 2}`, which a
                // `Value` reads (the last one wins) and a derived type refuses: the
                // value decides, so that both ways agree.
                T::deserialize(self.value()).map_err(|_| error)
            }),
            _ => T::deserialize(self.value()),
        }
    }

    fn value(&self) -> &Value {
        self.0.value.get_or_init(|| {
            let text = self.0.text.get().expect("a context has a form");
            serde_json::from_str(text).unwrap_or_else(|error| {
                panic!("the host sent a context that is not JSON ({error}): {text}")
            })
        })
    }
}

impl From<Value> for Context {
    fn from(value: Value) -> Self {
        Self(Arc::new(Forms {
            value: OnceLock::from(value),
            text: OnceLock::new(),
        }))
    }
}

/// The empty object, `{}`: a context with nothing in it.
impl Default for Context {
    fn default() -> Self {
        Value::Object(serde_json::Map::new()).into()
    }
}

impl Deref for Context {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

/// Changing the context changes this clone only; its text is written again when next
/// asked for.
impl DerefMut for Context {
    fn deref_mut(&mut self) -> &mut Value {
        self.value();
        let forms = Arc::make_mut(&mut self.0);
        forms.text = OnceLock::new();
        forms.value.get_mut().expect("read just now")
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.value() == other.value()
    }
}

impl PartialEq<Value> for Context {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value().fmt(f)
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Title {
        title: String,
    }

    #[test]
    fn text_from_the_host_parses_straight_into_a_type_without_a_value() {
        let context = Context::from_text(r#"{"title":"Run","donations":3}"#.to_owned());
        assert_eq!(context.parse::<Title>().unwrap().title, "Run");
        assert!(context.0.value.get().is_none(), "no value tree was built");
        assert_eq!(context["donations"], 3);
        assert!(context.0.value.get().is_some());
    }

    #[test]
    fn a_key_said_twice_reads_as_the_value_reads_it() {
        let context = Context::from_text(r#"{"title":"Run","title":"Swim"}"#.to_owned());
        assert_eq!(context.parse::<Title>().unwrap().title, "Swim");
        assert_eq!(context["title"], "Swim");
    }

    #[test]
    fn a_missing_field_is_an_error_either_way() {
        let from_text = Context::from_text(r#"{"other":1}"#.to_owned());
        let error = from_text.parse::<Title>().unwrap_err();
        assert!(error.to_string().contains("title"), "{error}");
        let from_value = Context::from(json!({ "other": 1 }));
        assert!(from_value.parse::<Title>().is_err());
    }

    #[test]
    fn clones_share_one_text_and_a_change_is_the_changed_clone_s_alone() {
        let context = Context::from(json!({ "title": "Run" }));
        let mut changed = context.clone();
        assert!(std::ptr::eq(context.text(), changed.text()), "one text");
        changed["title"] = json!("Swim");
        assert_eq!(changed.text(), r#"{"title":"Swim"}"#);
        assert_eq!(context.text(), r#"{"title":"Run"}"#);
        assert_eq!(context.clone().into_text(), r#"{"title":"Run"}"#);
        assert_ne!(context, changed);
    }

    #[test]
    fn of_writes_a_type_straight_to_text_and_refuses_what_is_not_an_object() {
        #[derive(Serialize)]
        struct Run<'a> {
            title: &'a str,
        }
        let context = Context::of(&Run { title: "Run" }).unwrap();
        assert!(context.0.value.get().is_none(), "no value tree was built");
        assert_eq!(context.text(), r#"{"title":"Run"}"#);
        assert_eq!(context.parse::<Title>().unwrap().title, "Run");
        let error = Context::of(&"Run").unwrap_err();
        assert_eq!(
            error.to_string(),
            "a context is a JSON object, not a string"
        );
        assert!(Context::of(&Option::<u8>::None).is_err());
        assert!(Context::of(&json!(7)).is_err());
    }

    #[test]
    fn equal_however_it_is_kept() {
        let text = Context::from_text(r#"{"a":[1,2]}"#.to_owned());
        assert_eq!(text, Context::from(json!({ "a": [1, 2] })));
        assert_eq!(text, json!({ "a": [1, 2] }));
        assert_eq!(Context::default(), json!({}));
        assert_eq!(format!("{text:?}"), format!("{:?}", json!({ "a": [1, 2] })));
    }
}

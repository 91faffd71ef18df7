//! Write Spark sources and handlers as plain Rust functions.
//!
//! A Spark module is a WebAssembly component that turns records into events (a
//! *source*) or events into effects (a *handler*). This crate is the only dependency an
//! author needs: put [`source`] or [`handler`] on a function and build the crate with
//! `cargo build --target wasm32-wasip2 --release`; the attribute generates the
//! component glue for the `spark:engine@0.1.0` interface (`wit/engine.wit`).
//!
//! ```no_run
//! use spark_guest::{Effect, Event, Invocation, Mail, event, json};
//!
//! #[derive(serde::Deserialize)]
//! struct Signup { id: u64, email: String }
//!
//! /// One event per signup record.
//! #[spark_guest::source]
//! fn signups(signup: Signup, _inv: &Invocation) -> Vec<Event> {
//!     vec![event("signup_created", signup.id, json!({ "email": signup.email }))]
//! }
//!
//! /// A welcome mail for each new signup.
//! #[spark_guest::handler]
//! fn welcome(event: &Event, _inv: &Invocation) -> spark_guest::Result<Vec<Effect>> {
//!     let email: String = event.field("email")?;
//!     Ok(vec![Mail::to(email).subject("Welcome").body("Glad you are here.").into()])
//! }
//! # fn main() {}
//! ```
//!
//! # Core concepts
//! - [`Event`]: a group, a key unique across groups, and a JSON object of context
//!   ([`Context`], read as a [`Value`]). [`event`] builds one with django-spark's key
//!   format `"{group}_{id}"`.
//! - [`Effect`]: what a handler asks the host to do: emit an event, send a [`Mail`],
//!   or write an output for operators. A handler acts only by returning effects.
//! - [`Invocation`]: what each call is told: the tenant, the run's logical time (use
//!   [`Invocation::today`] instead of a clock, so a run can be replayed), the attempt.
//! - [`Error`]: any error converts into it with `?`; returning it reports the failure
//!   to the host, which retries a handler later and reports a source's error.

mod allocator;
mod context;
mod effect;
mod error;
mod event;
mod invocation;

pub use allocator::SizeClasses;
pub use context::Context;
pub use effect::{Effect, Mail};
pub use error::{Error, Result};
pub use event::{Event, event};
pub use invocation::Invocation;

/// A JSON value as the text the host receives. `serde_json::to_string` writes straight
/// into a buffer; `Value`'s `Display` (`to_string()`) goes through `fmt::Formatter` a
/// token at a time, which made it the costliest part of a typical source in wasm.
pub(crate) fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value always serialises")
}

/// Marks `fn(record: T, inv: &Invocation) -> R` as the module's source.
///
/// `T` is any type that implements `serde::Deserialize`: the record arrives as JSON and
/// is parsed into it (a record that does not parse is reported as the source's error).
/// The second parameter is optional. `R` is `Vec<Event>` or `Result<I, E>` where `I`
/// iterates over events and `E` implements `Display`. A crate has at most one source.
pub use spark_guest_macros::source;

/// Marks `fn(event: &Event, inv: &Invocation) -> R` as the module's handler.
///
/// The event may be taken by value or by reference; the second parameter is optional.
/// `R` is `Vec<Effect>` or `Result<I, E>` where `I` iterates over effects and `E`
/// implements `Display`. A crate has at most one handler.
pub use spark_guest_macros::handler;

/// Marks `fn(record: T, inv: &Invocation) -> R` as the module's context function,
/// which tells generators what a record offers to their conditions.
///
/// Takes the record like a source; returns a JSON object (`Value`, or
/// `Result<Value, E>` where `E` implements `Display`): generators test their conditions
/// on it and use it as the context of the events they make. The attribute's arguments
/// describe the variables, for `spark generators describe`:
///
/// ```no_run
/// use spark_guest::{Invocation, Value, json};
///
/// #[derive(serde::Deserialize)]
/// struct Challenge { id: u64, donations: u32, owner: Value }
///
/// #[spark_guest::context(donations = "donations so far", "owner.email" = "the owner's address")]
/// fn challenge_context(challenge: Challenge, _inv: &Invocation) -> Value {
///     json!({ "donations": challenge.donations, "owner": challenge.owner })
/// }
/// # fn main() {}
/// ```
pub use spark_guest_macros::context;

/// Builds a JSON value: `json!({"challenge": challenge})` (re-exported from serde_json).
pub use serde_json::json;

/// The JSON value type of contexts (re-exported from serde_json).
pub use serde_json::Value;

/// Dates and times (re-exported): [`Invocation::today`] is a `jiff::civil::Date`, and
/// records may hold dates such as `"2024-05-01"` as `jiff::civil::Date` fields.
pub use jiff;

/// The author guide's code blocks, compiled as doctests so the guide stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct AuthorGuide;

/// What the generated glue uses. Not part of the API: it changes without notice.
#[doc(hidden)]
pub mod __private;

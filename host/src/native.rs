//! Native modules: handlers and sources compiled into the host process rather than
//! loaded as WebAssembly. The built-in mail handler is one; a benchmark's native
//! baseline is another. They are trusted code, so no sandbox or per-call limit applies,
//! but what they return is checked like a module's.
//!
//! A native module is registered with the [`Spark`](crate::Spark) host under a name
//! starting with `builtin:`, then registered for a tenant like a component:
//! `spark module add builtin:mails --name mails --handler '^challenge'`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::CallError;
use crate::event::{Effect, Event, Invocation};

/// A source, handler or context function written in Rust and run in the host.
pub trait NativeModule: Send + Sync {
    /// The Spark interfaces it offers: some of `source`, `handler`, `context`.
    fn exports(&self) -> Vec<&'static str>;

    /// The events a record implies (if it exports `source`).
    fn events(&self, model: &str, record: &str, inv: &Invocation) -> Result<Vec<Event>, CallError> {
        let _ = (model, record, inv);
        Err(not_exported("source"))
    }

    /// The effects of a new event (if it exports `handler`).
    fn handle(&self, event: &Event, inv: &Invocation) -> Result<Vec<Effect>, CallError> {
        let _ = (event, inv);
        Err(not_exported("handler"))
    }

    /// A record's context for generators, a JSON object as text (if it exports
    /// `context`).
    fn context(&self, model: &str, record: &str, inv: &Invocation) -> Result<String, CallError> {
        let _ = (model, record, inv);
        Err(not_exported("context"))
    }

    /// The variables `context` offers for `model`, as (name, description).
    fn describe(&self, model: &str) -> Vec<(String, String)> {
        let _ = model;
        Vec::new()
    }
}

fn not_exported(interface: &str) -> CallError {
    CallError::Host {
        message: format!("the native module does not export a {interface}"),
    }
}

/// The native modules of a host, by name.
#[derive(Clone, Default)]
pub(crate) struct NativeModules {
    modules: BTreeMap<String, Arc<dyn NativeModule>>,
}

impl NativeModules {
    pub(crate) fn insert(&mut self, name: String, module: Arc<dyn NativeModule>) {
        self.modules.insert(name, module);
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn NativeModule>> {
        self.modules.get(name).cloned()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.modules.keys().cloned().collect()
    }
}

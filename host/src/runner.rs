//! What runs a module's calls in a pipeline: a live WebAssembly instance, or a native
//! module. Both return the same checked results.

use std::sync::Arc;

use crate::error::CallError;
use crate::event::{Effect, Event, Invocation, check_context};
use crate::native::NativeModule;
use crate::wasm::{CallOutput, Instance, LastCall};

pub(crate) enum Runner {
    /// Boxed: an instance is large, and the enum is moved around.
    Wasm(Box<Instance>),
    Native(Arc<dyn NativeModule>),
}

fn checked<T>(
    value: T,
    check: impl FnOnce(&T) -> Result<(), CallError>,
) -> Result<CallOutput<T>, CallError> {
    check(&value)?;
    Ok(CallOutput {
        value,
        log: String::new(),
    })
}

impl Runner {
    /// What the last call used and logged (a native module uses no fuel and logs
    /// through `tracing`).
    pub(crate) fn take_last_call(&mut self) -> LastCall {
        match self {
            Runner::Wasm(instance) => instance.take_last_call(),
            Runner::Native(_) => LastCall::default(),
        }
    }

    /// Whether the runner must be replaced before the next call.
    pub(crate) fn is_spent(&self) -> bool {
        match self {
            Runner::Wasm(instance) => instance.is_spent(),
            Runner::Native(_) => false,
        }
    }

    pub(crate) fn events(
        &mut self,
        model: &str,
        record: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<Event>>, CallError> {
        match self {
            Runner::Wasm(instance) => instance.events(model, record, inv),
            Runner::Native(module) => checked(module.events(model, record, inv)?, |events| {
                events.iter().try_for_each(Event::validate)
            }),
        }
    }

    pub(crate) fn handle(
        &mut self,
        event: &Event,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<Effect>>, CallError> {
        match self {
            Runner::Wasm(instance) => instance.handle(event, inv),
            Runner::Native(module) => checked(module.handle(event, inv)?, |effects| {
                effects.iter().try_for_each(Effect::validate)
            }),
        }
    }

    pub(crate) fn context(
        &mut self,
        model: &str,
        record: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<String>, CallError> {
        match self {
            Runner::Wasm(instance) => instance.context(model, record, inv),
            Runner::Native(module) => checked(module.context(model, record, inv)?, |context| {
                check_context(context, || "context".to_owned())
            }),
        }
    }
}

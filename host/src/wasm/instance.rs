//! A live module instance and its calls: each under the per-call limits, each failure
//! sorted into the [`CallError`] an operator acts on.

use rustc_demangle::demangle;
use wasmtime::{Store, Trap, WasmBacktrace};

use super::EPOCH_TICK;
use super::bindings::exports::spark::engine::{context, handler, source};
use super::bindings::spark::engine::types as wit;
use super::sandbox::{LimitHit, SandboxState};
use crate::error::CallError;
use crate::event::{Effect, Event, Invocation, Mail, check_context};
use crate::limits::{Limit, Limits};

/// One live instance of a module. After a call fails with anything but the module's
/// own error, the instance is poisoned and must be replaced (its memory may be in any
/// state).
pub struct Instance {
    pub(super) store: Store<SandboxState>,
    pub(super) source: Option<source::Guest>,
    pub(super) handler: Option<handler::Guest>,
    pub(super) context: Option<context::Guest>,
    pub(super) limits: Limits,
    pub(super) poisoned: bool,
    /// Calls served so far.
    pub(super) calls: u64,
    /// What the last call used and, if it failed, logged: for the event's trace.
    pub(super) last_call: LastCall,
}

/// What the last call of an instance used and logged, whether it failed or not (a
/// call can succeed and its result still be refused).
#[derive(Debug, Default)]
pub struct LastCall {
    /// Fuel used, when the call ran.
    pub fuel: Option<u64>,
    /// What it wrote to stdout and stderr.
    pub log: String,
}

/// A successful call's result with what the module logged.
pub struct CallOutput<T> {
    pub value: T,
    pub log: String,
}

impl Instance {
    /// Whether this instance must be replaced before the next call: it failed, or it
    /// served its `calls-per-instance`.
    pub fn is_spent(&self) -> bool {
        self.poisoned || self.calls >= self.limits.calls_per_instance
    }

    /// What the last call used and logged; taken, so asked once.
    pub fn take_last_call(&mut self) -> LastCall {
        std::mem::take(&mut self.last_call)
    }

    /// Calls the module's source with one record.
    pub fn events(
        &mut self,
        model: &str,
        record: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<Event>>, CallError> {
        let Some(source) = self.source.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a source".to_owned(),
            });
        };
        let wit_inv = wit_invocation(inv);
        let output = self.call(record.len() + model.len(), seed(record), inv, |store| {
            source.call_events(store, model, record, wit_inv)
        })?;
        let events: Vec<Event> = output.value.into_iter().map(from_wit_event).collect();
        check_count(
            Limit::EventsPerCall,
            events.len(),
            self.limits.events_per_call,
        )?;
        check_size(events.iter().map(Event::text_len).sum(), &self.limits)?;
        let mut previous = None;
        for event in &events {
            event.validate_after(previous)?;
            previous = Some(event);
        }
        Ok(CallOutput {
            value: events,
            log: output.log,
        })
    }

    /// Calls the module's handler with one event.
    pub fn handle(
        &mut self,
        event: &Event,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<Effect>>, CallError> {
        let Some(handler) = self.handler.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a handler".to_owned(),
            });
        };
        let wit_inv = wit_invocation(inv);
        let wit_event = wit::EventParam {
            group: &event.group,
            key: &event.key,
            context: &event.context,
        };
        let output = self.call(event.text_len(), seed(&event.key), inv, |store| {
            handler.call_handle(store, wit_event, wit_inv)
        })?;
        let effects: Vec<Effect> = output.value.into_iter().map(from_wit_effect).collect();
        check_count(
            Limit::EffectsPerCall,
            effects.len(),
            self.limits.effects_per_call,
        )?;
        check_size(effects.iter().map(Effect::text_len).sum(), &self.limits)?;
        for effect in &effects {
            effect.validate()?;
        }
        Ok(CallOutput {
            value: effects,
            log: output.log,
        })
    }

    /// Calls the module's context function with one record: the record's context for
    /// generators, a JSON object as text.
    pub fn context(
        &mut self,
        model: &str,
        record: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<String>, CallError> {
        let Some(context) = self.context.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a context function".to_owned(),
            });
        };
        let wit_inv = wit_invocation(inv);
        let output = self.call(record.len() + model.len(), seed(record), inv, |store| {
            context.call_context(store, model, record, wit_inv)
        })?;
        check_size(output.value.len(), &self.limits)?;
        check_context(&output.value, || "context".to_owned())?;
        Ok(output)
    }

    /// Asks the module's context function which variables it offers for `model`.
    pub fn describe(
        &mut self,
        model: &str,
        inv: &Invocation,
    ) -> Result<CallOutput<Vec<(String, String)>>, CallError> {
        let Some(context) = self.context.clone() else {
            return Err(CallError::Host {
                message: "the module does not export a context function".to_owned(),
            });
        };
        let output = self.call(model.len(), seed(model), inv, |store| {
            context.call_describe(store, model).map(Ok)
        })?;
        let bytes: usize = output.value.iter().map(|(n, d)| n.len() + d.len()).sum();
        check_size(bytes, &self.limits)?;
        Ok(output)
    }

    /// Runs `f` under the per-call limits and sorts its failure into a [`CallError`].
    fn call<T>(
        &mut self,
        input_bytes: usize,
        seed: u64,
        inv: &Invocation,
        f: impl FnOnce(&mut Store<SandboxState>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<CallOutput<T>, CallError> {
        if self.poisoned {
            return Err(CallError::Host {
                message: "the instance was poisoned by an earlier failure".to_owned(),
            });
        }
        if input_bytes as u64 > self.limits.input_bytes {
            return Err(CallError::Limit {
                limit: Limit::InputBytes,
                max: self.limits.input_bytes,
                actual: Some(input_bytes as u64),
            });
        }
        self.calls += 1;
        let log_limit = usize::try_from(self.limits.log_bytes).unwrap_or(usize::MAX);
        self.store.data().call.begin(inv.now_ms, seed, log_limit);
        arm(&mut self.store, &self.limits);
        let result = f(&mut self.store);
        let log = self.store.data().call.take_log();
        // Fuel is enabled in the engine config, so reading it cannot fail.
        let left = self.store.get_fuel().unwrap_or(0);
        self.last_call = LastCall {
            fuel: Some(self.limits.fuel.saturating_sub(left)),
            log: log.clone(),
        };
        match result {
            Ok(Ok(value)) => Ok(CallOutput { value, log }),
            Ok(Err(message)) => Err(CallError::Guest {
                message: bounded(message, self.limits.output_bytes),
            }),
            Err(error) => {
                self.poisoned = true;
                Err(classify(error, &self.limits, log))
            }
        }
    }
}

/// Sets the fuel and the deadline for the next call.
pub(super) fn arm(store: &mut Store<SandboxState>, limits: &Limits) {
    // Fuel is enabled in the engine config, so setting it cannot fail.
    let _ = store.set_fuel(limits.fuel);
    let tick = EPOCH_TICK.as_millis() as u64;
    store.set_epoch_deadline(limits.deadline_ms.div_ceil(tick) + 1);
}

/// Sorts a wasmtime failure into the variant an operator acts on.
pub(super) fn classify(error: wasmtime::Error, limits: &Limits, log: String) -> CallError {
    if let Some(hit) = error.downcast_ref::<LimitHit>() {
        return CallError::Limit {
            limit: hit.limit,
            max: hit.max,
            actual: Some(hit.asked),
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => {
                return CallError::Limit {
                    limit: Limit::Fuel,
                    max: limits.fuel,
                    actual: None,
                };
            }
            Trap::Interrupt => {
                return CallError::Limit {
                    limit: Limit::DeadlineMs,
                    max: limits.deadline_ms,
                    actual: None,
                };
            }
            _ => {}
        }
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallError::Trap {
            message: format!("the module called exit({})", exit.0),
            log,
        };
    }
    if let Some(message) = super::pool::exhausted(&error) {
        return CallError::Host { message };
    }
    // The operating system refused the host something (address space for an
    // instance's memory under `ulimit -v`, say): not the module's doing.
    // Rust prints an OS error number the same way whichever crate carries it.
    if error.root_cause().to_string().contains("(os error ") {
        return CallError::Host {
            message: format!("{error:#}"),
        };
    }
    // Limits on instances, tables and memories at instantiation come as plain errors.
    let message = error.root_cause().to_string();
    if message.contains("resource limit exceeded: instance count too high") {
        return CallError::Limit {
            limit: Limit::Instances,
            max: u64::from(limits.instances),
            actual: None,
        };
    }
    let message = match error.downcast_ref::<Trap>() {
        Some(Trap::MemoryOutOfBounds) => match recursion(&error) {
            Some(function) => format!(
                "{message}, with `{function}` calling itself over and over: most likely \
                 the module's stack overflowed (a Rust module's stack is part of its memory)"
            ),
            None => message,
        },
        _ => message,
    };
    CallError::Trap { message, log }
}

/// The function whose calls fill the whole backtrace of a trap, if one does: the mark
/// of runaway recursion. (wasmtime keeps the innermost 20 frames.)
fn recursion(error: &wasmtime::Error) -> Option<String> {
    let frames = error.downcast_ref::<WasmBacktrace>()?.frames();
    let (innermost, rest) = frames.split_first()?;
    let recursing = rest.len() >= 15
        && rest
            .iter()
            .all(|frame| frame.func_index() == innermost.func_index());
    recursing.then(|| match innermost.func_name() {
        Some(name) => format!("{:#}", demangle(name)),
        None => format!("function {}", innermost.func_index()),
    })
}

fn check_count(limit: Limit, count: usize, max: u32) -> Result<(), CallError> {
    if count as u64 > u64::from(max) {
        return Err(CallError::Limit {
            limit,
            max: u64::from(max),
            actual: Some(count as u64),
        });
    }
    Ok(())
}

fn check_size(bytes: usize, limits: &Limits) -> Result<(), CallError> {
    if bytes as u64 > limits.output_bytes {
        return Err(CallError::Limit {
            limit: Limit::OutputBytes,
            max: limits.output_bytes,
            actual: Some(bytes as u64),
        });
    }
    Ok(())
}

/// A guest's error message, cut to the output limit so that it cannot flood storage.
fn bounded(mut message: String, max: u64) -> String {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" [cut off]");
    }
    message
}

/// The seed of a call's randomness: the same input gets the same numbers (FNV-1a).
fn seed(input: &str) -> u64 {
    input.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn wit_invocation(inv: &Invocation) -> wit::Invocation<'_> {
    wit::Invocation {
        tenant: &inv.tenant,
        now_ms: inv.now_ms,
        attempt: inv.attempt,
    }
}

fn from_wit_event(event: wit::EventResult) -> Event {
    Event {
        group: event.group,
        key: event.key,
        context: event.context,
    }
}

fn from_wit_effect(effect: wit::Effect) -> Effect {
    match effect {
        wit::Effect::Emit(event) => Effect::Emit(from_wit_event(event)),
        wit::Effect::Mail(mail) => Effect::Mail(Mail {
            to: mail.to,
            subject: mail.subject,
            body: mail.body,
            template: mail.template,
            context: mail.context,
            ..Mail::default()
        }),
        wit::Effect::Output((channel, payload)) => Effect::Output { channel, payload },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_guest_errors_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short".to_owned(), 10), "short");
        assert_eq!(bounded("ééé".to_owned(), 3), "é [cut off]");
    }
}

//! Mail templates rendered in the sandbox: the renderer component (`host/renderer`,
//! built by `host/build.rs` and embedded in the binary) compiled once per process, and
//! [`Renderer`], one instance of it with a tenant's templates set, whose every call runs
//! under the fixed limits below.
//!
//! Why not render natively, as the host once did: minijinja's fuel counts template
//! instructions, and one instruction may format a billion numbers or build a string of
//! gigabytes, which hung the process or aborted it (Rust cannot recover from a failed
//! allocation). In an instance, memory stops at the limiter, time at the deadline and
//! the fuel, and a trap drops the instance with everything it allocated.
//!
//! What it costs, measured on the 2-core development machine with the example's
//! `challenge_ended.txt` and a challenge's context (the test profile, where minijinja
//! and wasmtime are optimised): 15 µs per render in the sandbox, against 10 µs natively
//! (the context is copied in and the text out, and wasm runs minijinja somewhat slower);
//! a fresh instance with its templates set, 0.1 ms, once per run (and after a trap);
//! compiling the component, 1.6 s, once per process where the compile cache does not
//! have it yet (loading it from there takes under 1 ms). So one instance serves every
//! render of a [`Renderer`] and has its templates set once, and nothing is compiled per
//! render.

use std::sync::{Arc, OnceLock};

use wasmtime::Store;
use wasmtime::component::Component;

use super::instance::{arm, classify};
use super::sandbox::SandboxState;
use super::{EngineCore, WasmEngine};
use crate::error::{CallError, RenderError};
use crate::limits::{Limit, Limits};

mod bindings {
    wasmtime::component::bindgen!({
        path: "renderer/wit",
        world: "renderer",
    });
}

use bindings::exports::spark::renderer::templates::RenderError as GuestError;

/// The renderer component, built from `host/renderer` by the build script.
static COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/renderer.wasm"));
/// Its SHA-256, which names its compiled form in the compile cache.
const COMPONENT_SHA256: &str = env!("SPARK_RENDERER_SHA256");

/// Linear memory a renderer may use for rendering: its stack and data (1.1 MiB, all
/// that the example's render needs), the context and minijinja's values, and the text.
/// Generous for mails; templates get [`MEMORY_PER_TEMPLATE_BYTE`] on top.
pub const MEMORY_BYTES: u64 = 64 << 20;
/// Memory per byte of template source, for the parsed templates the instance keeps
/// (minijinja keeps the source and its instructions: about 20 bytes per byte of a
/// 700 KB template, measured).
const MEMORY_PER_TEMPLATE_BYTE: u64 = 32;
/// Wall time one render (or setting the templates) may take: the time limit.
pub const DEADLINE_MS: u64 = 1_000;
/// WebAssembly instructions one render may execute: about 1.3 s of rendering on the
/// development machine (a render of the example takes 50,000), so that the deadline
/// ends a runaway render first there. Fuel ends it where the deadline cannot: should
/// the epoch thread not run, or run late on a loaded machine.
pub const FUEL: u64 = 5_000_000_000;
/// Bytes one render may return. The guest stops writing at this limit, so that even a
/// single huge `{{ ... }}` ends early.
pub const OUTPUT_BYTES: u64 = 1 << 20;
/// Bytes of the renderer's stderr kept per call: a panic's message, which says why a
/// trap that is not a limit happened.
const LOG_BYTES: usize = 4 << 10;

/// The renderer compiled and linked on an engine, ready to instantiate.
pub(super) struct RendererCode {
    pre: bindings::RendererPre<SandboxState>,
}

/// The renderer compiled for one engine, made on first use (see [`EngineCore`]).
pub(super) type CompiledRenderer = OnceLock<Result<Arc<RendererCode>, String>>;

/// One tenant's templates in a renderer instance. The instance is made when the
/// renderer is, kept across renders, and replaced (with the templates set again) after
/// a call that trapped or hit a limit.
pub struct Renderer {
    /// Keeps the engine and its deadline thread alive as long as the renderer.
    core: Arc<EngineCore>,
    code: Arc<RendererCode>,
    templates: Vec<(String, String)>,
    limits: Limits,
    live: Option<Live>,
}

/// A renderer instance with the templates set.
struct Live {
    store: Store<SandboxState>,
    renderer: bindings::Renderer,
    /// The context the instance rendered with last, which it keeps parsed: a mail with
    /// the same one (the next event of the same record, most often) does not send it.
    context: Option<String>,
}

impl WasmEngine {
    /// A renderer of `templates` (group, source), its instance started and the
    /// templates set: a template that does not parse is a [`RenderError::Template`]
    /// naming its group and line.
    pub fn renderer(&self, templates: Vec<(String, String)>) -> Result<Renderer, RenderError> {
        let code = self
            .core
            .renderer
            .get_or_init(|| self.compile_renderer().map(Arc::new))
            .clone()
            .map_err(RenderError::Sandbox)?;
        let mut renderer = Renderer {
            core: self.core.clone(),
            code,
            limits: limits(&templates),
            templates,
            live: None,
        };
        renderer.live = Some(renderer.start()?);
        Ok(renderer)
    }

    fn compile_renderer(&self) -> Result<RendererCode, String> {
        let component = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.core.engine, COMPONENT, COMPONENT_SHA256),
            None => Component::new(&self.core.engine, COMPONENT),
        }
        .map_err(|error| format!("cannot compile the template renderer: {error:#}"))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(bindings::RendererPre::new)
            .map_err(|error| format!("cannot link the template renderer: {error:#}"))?;
        Ok(RendererCode { pre })
    }
}

/// The limits of a renderer of `templates`.
fn limits(templates: &[(String, String)]) -> Limits {
    const MIB: u64 = 1 << 20;
    let source_bytes: u64 = templates
        .iter()
        .map(|(group, source)| (group.len() + source.len()) as u64)
        .sum();
    // Whole MiB, so that the limit reads well in messages.
    let for_templates = source_bytes
        .saturating_mul(MEMORY_PER_TEMPLATE_BYTE)
        .div_ceil(MIB)
        .saturating_mul(MIB);
    Limits {
        fuel: FUEL,
        deadline_ms: DEADLINE_MS,
        memory_bytes: MEMORY_BYTES.saturating_add(for_templates),
        output_bytes: OUTPUT_BYTES,
        ..Limits::default()
    }
}

impl Renderer {
    /// The text the template of `group` renders for `context` (a JSON object as text;
    /// text that is not JSON is an empty context), or why it does not; `None` when
    /// `group` has no template.
    pub fn render(&mut self, group: &str, context: &str) -> Option<Result<String, RenderError>> {
        // Out of `self` during the call: should the call panic, the next render starts
        // a fresh instance instead of using one stopped half-way.
        let mut live = match self.live.take() {
            Some(live) => live,
            None => match self.start() {
                Ok(live) => live,
                Err(error) => return Some(Err(error)),
            },
        };
        begin(&mut live.store, &self.limits);
        let same_context = live.context.as_deref() == Some(context);
        let result = live.renderer.spark_renderer_templates().call_render(
            &mut live.store,
            group,
            (!same_context).then_some(context),
        );
        let rendered = match result {
            Ok(rendered) => rendered,
            Err(error) => {
                // A trap leaves the instance's memory in any state: it is dropped here
                // with everything it allocated, and the next render starts a fresh one.
                let log = live.store.data().call.take_log();
                return Some(Err(sorted(classify(error, &self.limits, log))));
            }
        };
        // The guest's own errors leave the instance as good as before: it freed what
        // the render allocated, and kept the context.
        if !same_context {
            live.context = Some(context.to_owned());
        }
        self.live = Some(live);
        Some(rendered?.map_err(|error| match error {
            GuestError::Output(limit_bytes) => RenderError::Output { limit_bytes },
            GuestError::Template(why) => RenderError::Template(why),
        }))
    }

    /// A fresh instance with the templates set, under the renderer's limits.
    fn start(&self) -> Result<Live, RenderError> {
        let mut store = Store::new(&self.core.engine, SandboxState::new(&self.limits));
        store.limiter(|state| &mut state.limiter);
        begin(&mut store, &self.limits);
        let renderer = self.code.pre.instantiate(&mut store).map_err(|error| {
            let log = store.data().call.take_log();
            sorted(classify(error, &self.limits, log))
        })?;
        // Setting the templates parses them: a call of its own, with its own budget.
        begin(&mut store, &self.limits);
        let set = renderer.spark_renderer_templates().call_set_templates(
            &mut store,
            &self.templates,
            self.limits.output_bytes,
        );
        match set {
            Ok(Ok(())) => Ok(Live {
                store,
                renderer,
                context: None,
            }),
            Ok(Err(why)) => Err(RenderError::Template(why)),
            Err(error) => {
                let log = store.data().call.take_log();
                Err(sorted(classify(error, &self.limits, log)))
            }
        }
    }
}

/// Prepares a call: fuel, deadline and an empty log (the time and randomness the
/// sandbox gives are fixed: rendering reads neither).
fn begin(store: &mut Store<SandboxState>, limits: &Limits) {
    store.data().call.begin(0, 0, LOG_BYTES);
    arm(store, limits);
}

/// A failed call of the renderer, sorted as for modules, in a renderer's terms.
fn sorted(error: CallError) -> RenderError {
    match error {
        CallError::Limit {
            limit: Limit::MemoryBytes,
            max,
            ..
        } => RenderError::Memory { limit_bytes: max },
        CallError::Limit {
            limit: Limit::DeadlineMs,
            max,
            ..
        } => RenderError::Time { limit_ms: max },
        CallError::Limit {
            limit: Limit::Fuel,
            max,
            ..
        } => RenderError::Fuel { limit: max },
        // A panic of the renderer (a bug: minijinja reports what templates do wrong as
        // errors) says why in its log.
        CallError::Trap { message, log } if !log.trim().is_empty() => {
            RenderError::Sandbox(format!("it trapped: {message}; it wrote: {}", log.trim()))
        }
        CallError::Trap { message, .. } => RenderError::Sandbox(format!("it trapped: {message}")),
        CallError::Host { message } => RenderError::Sandbox(message),
        other => RenderError::Sandbox(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bombs of issue 15: each ran for ever or aborted the process when templates
    /// rendered natively.
    const FORMAT_A_BILLION: &str = "{{ [[[1]*1000]*1000]*1000 }}";
    const JOIN_FOUR_GB: &str = "{{ ([\"x\"*10000000]*400)|join|length }}";
    /// One instruction that compares a billion numbers and writes nothing.
    const COMPARE_A_BILLION: &str = "{{ [[[1]*1000]*1000]*1000 == [[[1]*1000]*1000]*1000 }}";
    const HELLO: &str = "Hello {{ name }}!";

    /// `{% set a = "x" * 1000000 %}` and twelve doublings: 4 GB, one `~` at a time.
    fn doubling() -> String {
        let mut source = "{% set a = \"x\" * 1000000 %}".to_owned();
        for _ in 0..12 {
            source.push_str("{% set a = a ~ a %}");
        }
        source + "{{ a|length }}"
    }

    /// A renderer of `bomb` (as `bomb`) and of a normal template (as `hello`).
    fn renderer(bomb: &str) -> Renderer {
        let engine = WasmEngine::new(None).unwrap();
        engine
            .renderer(vec![
                ("bomb".to_owned(), bomb.to_owned()),
                ("hello".to_owned(), HELLO.to_owned()),
            ])
            .unwrap()
    }

    /// Renders `bomb`, which must fail, then `hello`, which must render.
    fn defused(bomb: &str) -> RenderError {
        let mut renderer = renderer(bomb);
        let error = renderer.render("bomb", "{}").unwrap().unwrap_err();
        let hello = renderer.render("hello", r#"{"name": "Ada"}"#).unwrap();
        assert_eq!(hello.unwrap(), "Hello Ada!", "after {error}");
        error
    }

    /// A context is sent to the instance once and serves the renders after it with the
    /// same text, whichever template they render and however they end; an instance
    /// started after a trap is sent it again.
    #[test]
    fn a_context_sent_once_serves_until_another_or_a_fresh_instance() {
        let mut renderer = renderer(JOIN_FOUR_GB);
        let ada = r#"{"name": "Ada"}"#;
        let hello = |renderer: &mut Renderer, context: &str| {
            renderer.render("hello", context).unwrap().unwrap()
        };
        assert_eq!(hello(&mut renderer, ada), "Hello Ada!");
        assert_eq!(hello(&mut renderer, ada), "Hello Ada!");
        assert_eq!(hello(&mut renderer, r#"{"name": "Bob"}"#), "Hello Bob!");
        assert_eq!(hello(&mut renderer, ada), "Hello Ada!");
        // The bomb traps at the memory limit: the next render is a fresh instance's.
        renderer.render("bomb", ada).unwrap().unwrap_err();
        assert_eq!(hello(&mut renderer, ada), "Hello Ada!");
        assert_eq!(hello(&mut renderer, "{}"), "Hello !");
        assert_eq!(hello(&mut renderer, ada), "Hello Ada!");
    }

    /// The memory limit of [`renderer`]'s two small templates: 64 MiB and 1 MiB for
    /// the templates.
    const SMALL_TEMPLATES_MEMORY: u64 = 65 << 20;

    #[test]
    fn formatting_a_billion_numbers_stops_at_the_output_limit() {
        let error = defused(FORMAT_A_BILLION);
        assert_eq!(
            error,
            RenderError::Output {
                limit_bytes: OUTPUT_BYTES
            }
        );
        assert!(
            error.to_string().contains("output limit of 1 MiB"),
            "{error}"
        );
    }

    #[test]
    fn joining_four_gigabytes_stops_at_the_memory_limit() {
        let error = defused(JOIN_FOUR_GB);
        assert_eq!(
            error,
            RenderError::Memory {
                limit_bytes: SMALL_TEMPLATES_MEMORY
            }
        );
        assert!(
            error.to_string().contains("memory limit of 65 MiB"),
            "{error}"
        );
    }

    #[test]
    fn doubling_a_string_stops_at_the_memory_limit() {
        let error = defused(&doubling());
        assert_eq!(
            error,
            RenderError::Memory {
                limit_bytes: SMALL_TEMPLATES_MEMORY
            }
        );
    }

    #[test]
    fn comparing_a_billion_numbers_stops_at_the_time_limit() {
        let error = defused(COMPARE_A_BILLION);
        // The deadline ends it on any machine whose epoch thread runs; the fuel would
        // a little later.
        assert!(
            matches!(
                error,
                RenderError::Time {
                    limit_ms: DEADLINE_MS
                } | RenderError::Fuel { limit: FUEL }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("limit of"), "{error}");
    }

    #[test]
    fn a_trap_replaces_the_instance_and_a_template_error_keeps_it() {
        let mut renderer = renderer(JOIN_FOUR_GB);
        assert!(renderer.live.is_some());
        renderer.render("bomb", "{}").unwrap().unwrap_err();
        assert!(renderer.live.is_none(), "a trapped instance is dropped");
        assert_eq!(renderer.render("hello", "{}").unwrap().unwrap(), "Hello !");
        assert!(renderer.live.is_some(), "a fresh instance serves");

        let engine = WasmEngine::new(None).unwrap();
        let mut renderer = engine
            .renderer(vec![("g".to_owned(), "{{ 1 // 0 }}".to_owned())])
            .unwrap();
        let error = renderer.render("g", "{}").unwrap().unwrap_err();
        assert!(
            matches!(&error, RenderError::Template(why) if why.contains("line 1")),
            "{error:?}"
        );
        assert!(renderer.live.is_some(), "a template's own error is no trap");
        assert!(renderer.render("other", "{}").is_none());
    }

    #[test]
    fn the_output_limit_is_inclusive() {
        let engine = WasmEngine::new(None).unwrap();
        let mut renderer = engine
            .renderer(vec![
                (
                    "fits".to_owned(),
                    format!("{{{{ \"x\" * {OUTPUT_BYTES} }}}}"),
                ),
                (
                    "over".to_owned(),
                    format!("{{{{ \"x\" * {OUTPUT_BYTES} }}}}y"),
                ),
            ])
            .unwrap();
        let fits = renderer.render("fits", "{}").unwrap().unwrap();
        assert_eq!(fits.len() as u64, OUTPUT_BYTES);
        assert_eq!(
            renderer.render("over", "{}").unwrap().unwrap_err(),
            RenderError::Output {
                limit_bytes: OUTPUT_BYTES
            }
        );
    }

    #[test]
    fn a_template_that_does_not_parse_is_named() {
        let engine = WasmEngine::new(None).unwrap();
        let error = engine
            .renderer(vec![
                ("fine".to_owned(), HELLO.to_owned()),
                ("broken".to_owned(), "Hi\n{% if x %}".to_owned()),
            ])
            .err()
            .unwrap();
        assert!(
            matches!(&error, RenderError::Template(why) if why.starts_with("template `broken`") && why.contains("line 2")),
            "{error:?}"
        );
    }

    #[test]
    fn memory_grows_with_the_templates_in_whole_mib() {
        assert_eq!(limits(&[]).memory_bytes, MEMORY_BYTES);
        let tiny = [("g".to_owned(), "x".to_owned())];
        assert_eq!(limits(&tiny).memory_bytes, SMALL_TEMPLATES_MEMORY);
        // 100,002 bytes at 32 bytes each: 3.05 MiB, so 4 MiB.
        let long = [("g".to_owned(), "x".repeat(100_001))];
        assert_eq!(limits(&long).memory_bytes, MEMORY_BYTES + (4 << 20));
        // A long template renders in what it is given.
        let engine = WasmEngine::new(None).unwrap();
        let source = "{{ name }} and {% if x %}{{ y|length }}{% endif %}\n".repeat(10_000);
        let mut renderer = engine.renderer(vec![("g".to_owned(), source)]).unwrap();
        let text = renderer.render("g", r#"{"name": "Ada"}"#).unwrap().unwrap();
        assert_eq!(text.lines().count(), 10_000);
    }

    /// The example's templates, rendered as the host rendered them natively before
    /// (minijinja with the same settings), for each of the example's challenges.
    #[test]
    fn the_examples_render_exactly_as_they_did_natively() {
        let examples =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/challenges");
        let mut templates = Vec::new();
        for entry in std::fs::read_dir(examples.join("templates")).unwrap() {
            let path = entry.unwrap().path();
            let group = path.file_stem().unwrap().to_str().unwrap().to_owned();
            templates.push((group, std::fs::read_to_string(&path).unwrap()));
        }
        assert_eq!(templates.len(), 5);
        let mut native = minijinja::Environment::new();
        native.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        native.set_fuel(Some(1_000_000));
        for (group, source) in &templates {
            native
                .add_template_owned(group.clone(), source.clone())
                .unwrap();
        }
        let engine = WasmEngine::new(None).unwrap();
        let mut renderer = engine.renderer(templates.clone()).unwrap();
        let challenges = std::fs::read_to_string(examples.join("challenges.jsonl")).unwrap();
        let mut rendered = 0;
        for line in challenges.lines().take(10) {
            let challenge: serde_json::Value = serde_json::from_str(line).unwrap();
            let context = serde_json::json!({ "challenge": challenge, "days_running": 3 });
            for (group, _) in &templates {
                let expected = native
                    .get_template(group)
                    .unwrap()
                    .render(minijinja::Value::from(minijinja::value::Serde(&context)))
                    .unwrap();
                let text = renderer
                    .render(group, &context.to_string())
                    .unwrap()
                    .unwrap();
                assert_eq!(text, expected, "{group} with {context}");
                rendered += 1;
            }
        }
        assert_eq!(rendered, 50);
    }

    #[test]
    fn messages_name_the_limit_and_its_value() {
        let cases = [
            (
                RenderError::Memory {
                    limit_bytes: 64 << 20,
                },
                "rendering needed more than its memory limit of 64 MiB (67108864 bytes)",
            ),
            (
                RenderError::Time { limit_ms: 1_000 },
                "rendering took longer than its time limit of 1000 ms",
            ),
            (
                RenderError::Output {
                    limit_bytes: 1 << 20,
                },
                "the rendered text is longer than its output limit of 1 MiB (1048576 bytes)",
            ),
            (
                RenderError::Fuel { limit: 7 },
                "rendering did more work than its fuel limit of 7 WebAssembly instructions",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}

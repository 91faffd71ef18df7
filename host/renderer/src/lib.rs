//! Spark's mail templates, rendered inside the host's WebAssembly sandbox.
//!
//! This component is built for `wasm32-wasip2` by `host/build.rs` and embedded in the
//! `spark` binary; `host/src/wasm/renderer.rs` runs it under fixed limits. The host
//! keeps the templates' syntax check and django-spark's split into subject and body;
//! this renders, and nothing else.
//!
//! The sandbox bounds what minijinja cannot: one template instruction may format a
//! billion numbers or build a string of gigabytes, and here that ends in a trap at the
//! instance's memory or time limit instead of hanging or aborting the host. What is
//! bounded here too: minijinja's fuel (loops), and the output (a writer that refuses
//! bytes past the limit stops even a single huge `{{ ... }}` early).

wit_bindgen::generate!({
    path: "wit",
    world: "renderer",
});

use std::cell::RefCell;
use std::io;

use exports::spark::renderer::templates::{Guest, RenderError};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// How much work one rendering may do (minijinja's fuel): templates are the operator's,
/// but their loops run over contexts that modules and records provide.
const RENDER_FUEL: u64 = 1_000_000;

/// The templates and the output limit `set-templates` gave. A component instance runs
/// on one thread, so a thread-local is the instance's state.
struct Templates {
    env: Environment<'static>,
    output_limit: u64,
}

thread_local! {
    static TEMPLATES: RefCell<Option<Templates>> = const { RefCell::new(None) };
    /// The context of the last call, parsed: the host sends none for "the same again".
    static LAST_CONTEXT: RefCell<minijinja::Value> =
        const { RefCell::new(minijinja::Value::UNDEFINED) };
}

/// The context to render with: `context` parsed into minijinja's values and kept for
/// the calls that send none; text that is not JSON is an empty context.
fn context(context: Option<String>) -> minijinja::Value {
    LAST_CONTEXT.with_borrow_mut(|last| {
        if let Some(text) = context {
            // Straight into minijinja's values (one tree, not serde_json's and then
            // minijinja's: that copy was a third of a rendering).
            *last = serde_json::from_str(&text).unwrap_or_else(|_| minijinja::Value::from(()));
        }
        last.clone()
    })
}

/// Mails are plain text, so nothing is HTML-escaped; a variable the context lacks
/// renders as nothing, as in Django, however deep: `{{ challenge.owner.name }}` without
/// a `challenge` too (minijinja's chainable undefined; its default, lenient, fails on
/// an attribute of an undefined value).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(RENDER_FUEL));
    env
}

/// minijinja's message with its line, as the host's syntax check words it.
fn describe(error: &minijinja::Error) -> String {
    let detail = error
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    match error.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail,
    }
}

/// The rendered text, refusing every write that would take it past `limit` bytes.
/// A refused write fails the rendering at once, so that `{{ huge }}` stops at the limit
/// instead of formatting all of itself first.
struct Capped {
    text: Vec<u8>,
    limit: usize,
    over: bool,
}

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.text.len().saturating_add(bytes.len()) > self.limit {
            self.over = true;
            return Err(io::Error::other("the output limit is reached"));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Renderer;

impl Guest for Renderer {
    fn set_templates(templates: Vec<(String, String)>, output_limit: u64) -> Result<(), String> {
        let mut env = environment();
        for (group, source) in templates {
            env.add_template_owned(group.clone(), source)
                .map_err(|error| format!("template `{group}`: {}", describe(&error)))?;
        }
        TEMPLATES.with_borrow_mut(|state| *state = Some(Templates { env, output_limit }));
        Ok(())
    }

    fn render(group: String, context: Option<String>) -> Option<Result<String, RenderError>> {
        // First, so that the next call's "the same context" means this one whatever
        // happens below.
        let context = self::context(context);
        TEMPLATES.with_borrow(|state| {
            let templates = state.as_ref()?;
            let template = templates.env.get_template(&group).ok()?;
            let mut output = Capped {
                text: Vec::new(),
                limit: usize::try_from(templates.output_limit).unwrap_or(usize::MAX),
                over: false,
            };
            let rendered = template.render_captured_to(context, &mut output);
            Some(match rendered {
                Ok(_) => Ok(into_string(output.text)),
                Err(_) if output.over => Err(RenderError::Output(templates.output_limit)),
                Err(error) => Err(RenderError::Template(describe(&error))),
            })
        })
    }
}

/// minijinja writes only `str`s, so the text is UTF-8; should it ever not be, the
/// mail gets replacement characters rather than the renderer a panic.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

export!(Renderer);

/// The renderer's own logic, natively (`cargo test -p spark-renderer`); the host's tests
/// run it in the sandbox.
#[cfg(test)]
mod tests {
    use super::*;

    fn set(source: &str, output_limit: u64) {
        Renderer::set_templates(vec![("g".to_owned(), source.to_owned())], output_limit).unwrap();
    }

    /// What `group` renders, with an error as text.
    fn render(group: &str, context: &str) -> Option<Result<String, String>> {
        render_with(group, Some(context))
    }

    /// What `group` renders with `context`, or with the last one when none.
    fn render_with(group: &str, context: Option<&str>) -> Option<Result<String, String>> {
        let rendered = Renderer::render(group.to_owned(), context.map(str::to_owned))?;
        Some(rendered.map_err(|error| match error {
            RenderError::Output(limit) => format!("output limit {limit}"),
            RenderError::Template(why) => why,
        }))
    }

    #[test]
    fn renders_plain_text_with_missing_variables_empty() {
        set("Hi {{ name }}{{ nothing }} <{{ tag }}>", 1 << 20);
        let text = render("g", r#"{"name": "O'Brien", "tag": "&"}"#);
        assert_eq!(text, Some(Ok("Hi O'Brien <&>".to_owned())));
        assert_eq!(render("g", "{not json"), Some(Ok("Hi  <>".to_owned())));
        assert_eq!(render("other", "{}"), None);
        // However deep the missing variable, as in Django.
        set("Hi {{ challenge.owner.name }}!", 1 << 20);
        assert_eq!(render("g", "{}"), Some(Ok("Hi !".to_owned())));
        assert_eq!(
            render("g", r#"{"challenge": {"owner": {"name": "Ada"}}}"#),
            Some(Ok("Hi Ada!".to_owned()))
        );
    }

    #[test]
    fn each_rendering_has_its_own_context_however_often_it_is_reused() {
        set("{{ name }}{% set name = 'changed' %}", 1 << 20);
        // None: the context of the call before, unchanged by what that call did.
        let calls = [
            (None, ""),
            (Some(r#"{"name": "Ada"}"#), "Ada"),
            (None, "Ada"),
            (None, "Ada"),
            (Some(r#"{"name": "Bob"}"#), "Bob"),
            (Some("{not json"), ""),
            (None, ""),
            (Some(r#"{"name": "Ada"}"#), "Ada"),
        ];
        for (context, expected) in calls {
            assert_eq!(
                render_with("g", context),
                Some(Ok(expected.to_owned())),
                "{context:?}"
            );
        }
    }

    #[test]
    fn output_stops_at_the_limit() {
        set("{{ 'x' * 10 }}", 10);
        assert_eq!(render("g", "{}"), Some(Ok("x".repeat(10))));
        set("{{ 'x' * 10 }}!", 10);
        assert_eq!(render("g", "{}"), Some(Err("output limit 10".to_owned())));
    }

    #[test]
    fn errors_name_the_template_and_line() {
        let error = Renderer::set_templates(
            vec![("broken".to_owned(), "x\n{% if %}".to_owned())],
            1 << 20,
        )
        .unwrap_err();
        assert!(error.starts_with("template `broken`: "), "{error}");
        assert!(error.ends_with("(line 2)"), "{error}");
        set("{{ 1 // 0 }}", 1 << 20);
        let failed = render("g", "{}");
        assert!(
            matches!(&failed, Some(Err(why)) if why.contains("line 1")),
            "{failed:?}"
        );
    }
}

//! Mail templates, kept per tenant and exact event group in Jinja syntax (minijinja, the
//! closest to Django's templates), and django-spark's rules for turning a rendered
//! template into a subject and a body.
//!
//! Templates render in the WebAssembly sandbox (`wasm::Renderer`, running the host's
//! renderer component `host/renderer`), under fixed limits of memory, time and output:
//! rendered natively, one template instruction could hang the process or abort it.
//! Mails are plain text, so nothing is HTML-escaped (django-spark escaped `O'Brien` to
//! `O&#x27;Brien`; that was a bug). A variable the context lacks renders as nothing, as
//! in Django. The renderer has minijinja with the same settings as the check below.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use minijinja::Environment;

use crate::error::{Error, RenderError};
use crate::wasm::{Renderer, WasmEngine};

/// A tenant's templates, by event group, in a renderer instance of their own.
pub struct Templates {
    groups: HashSet<String>,
    /// None when there are no templates: nothing to start. Behind a lock because the
    /// templates are shared with the commit thread, which renders (`compose_later`).
    renderer: Option<Mutex<Renderer>>,
}

/// A rendered template, split into subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Checks a template's syntax; the error names the line.
///
/// This stays native: parsing takes time and memory in proportion to the template's
/// size (a template's loops and filters run only when it renders, and that happens in
/// the sandbox), and a template is saved by the operator, who can only hurt themselves
/// with a huge one. Auto-escaping and fuel do not change what parses.
pub fn check_template(source: &str) -> Result<(), String> {
    let env = Environment::new();
    env.template_from_str(source).map(drop).map_err(describe)
}

fn describe(error: minijinja::Error) -> String {
    let detail = error
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    match error.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail,
    }
}

impl Templates {
    /// The templates `(group, source)`, each checked when it was saved, set in a
    /// renderer on `engine`: a template that does not parse is a
    /// [`RenderError::Template`] that names its group.
    pub fn new(
        engine: &WasmEngine,
        templates: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, RenderError> {
        let templates: Vec<(String, String)> = templates.into_iter().collect();
        let groups = templates.iter().map(|(group, _)| group.clone()).collect();
        let renderer = if templates.is_empty() {
            None
        } else {
            Some(Mutex::new(engine.renderer(templates)?))
        };
        Ok(Self { groups, renderer })
    }

    /// [`new`](Self::new) for a tenant's stored templates, which were each checked when
    /// saved: one that no longer parses is a damaged store.
    pub fn stored(engine: &WasmEngine, templates: Vec<(String, String)>) -> Result<Self, Error> {
        Self::new(engine, templates).map_err(|error| match error {
            RenderError::Template(why) => Error::Storage(why),
            error => Error::Engine(error.to_string()),
        })
    }

    /// Whether there is a template for `group`.
    pub fn has(&self, group: &str) -> bool {
        self.groups.contains(group)
    }

    /// Renders the template of `group` with `context`, a JSON object as text (text that
    /// is not JSON renders as an empty context): `None` when there is no such template,
    /// else the subject and body or why rendering failed.
    pub fn render(&self, group: &str, context: &str) -> Option<Result<Rendered, String>> {
        self.try_render(group, context)
            .map(|rendered| rendered.map_err(|error| error.to_string()))
    }

    /// [`render`](Self::render), with why it failed as a [`RenderError`].
    pub fn try_render(&self, group: &str, context: &str) -> Option<Result<Rendered, RenderError>> {
        if !self.has(group) {
            return None;
        }
        // A panic while rendering leaves no half-used instance behind (the renderer
        // starts a fresh one), so a poisoned lock guards a usable renderer.
        let mut renderer = self
            .renderer
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let text = renderer.render(group, context)?;
        Some(text.map(|text| split(&text)))
    }
}

/// django-spark's rules: trailing whitespace is stripped from each line; the subject
/// is the first non-empty line (its leading whitespace kept); the body is the rest,
/// with the newlines around it stripped (inner blank lines and indentation kept).
pub fn split(rendered: &str) -> Rendered {
    let lines: Vec<&str> = rendered.lines().map(str::trim_end).collect();
    let Some(first) = lines.iter().position(|line| !line.is_empty()) else {
        return Rendered {
            subject: String::new(),
            body: String::new(),
        };
    };
    let body = lines[first + 1..].join("\n");
    Rendered {
        subject: lines[first].to_owned(),
        body: body.trim_matches('\n').to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The process's engine, without a compile cache.
    fn engine() -> WasmEngine {
        WasmEngine::new(None).unwrap()
    }

    #[test]
    fn the_reference_example_splits_as_django_spark() {
        let rendered = split("\n   \n\nSubject line  \n\n  body line 1  \n\nbody line 3\n\n\n");
        assert_eq!(rendered.subject, "Subject line");
        assert_eq!(rendered.body, "  body line 1\n\nbody line 3");
    }

    #[test]
    fn splitting_edge_cases() {
        let cases = [
            ("", "", ""),
            ("\n\n  \n", "", ""),
            ("Only a subject", "Only a subject", ""),
            ("  indented subject\nbody", "  indented subject", "body"),
            ("s\r\nb1\r\n\r\nb2\r\n", "s", "b1\n\nb2"),
        ];
        for (text, subject, body) in cases {
            let rendered = split(text);
            assert_eq!(
                (rendered.subject.as_str(), rendered.body.as_str()),
                (subject, body),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_django_spark_mail_case() {
        let templates = Templates::new(&engine(), [(
            "g".to_owned(),
            "Dear {{ user }}\n\nThis is the key: {{ key }} ({{ key|length }})\n\nBest regards\n"
                .to_owned(),
        )])
        .unwrap();
        let rendered = templates
            .render("g", &json!({ "user": "test", "key": "asdf" }).to_string())
            .unwrap()
            .unwrap();
        assert_eq!(rendered.subject, "Dear test");
        assert_eq!(rendered.body, "This is the key: asdf (4)\n\nBest regards");
        assert!(templates.render("other", "{}").is_none());
    }

    #[test]
    fn plain_text_is_not_escaped_and_missing_variables_are_empty() {
        let templates = Templates::new(
            &engine(),
            [("g".to_owned(), "Hi {{ name }}{{ nothing }}!".to_owned())],
        )
        .unwrap();
        let rendered = templates
            .render("g", &json!({ "name": "O'Brien <o@b>" }).to_string())
            .unwrap()
            .unwrap();
        assert_eq!(rendered.subject, "Hi O'Brien <o@b>!");
    }

    #[test]
    fn syntax_errors_name_the_line_and_render_errors_are_reported() {
        let error = check_template("Subject\n\n{% if x %}\nunclosed").unwrap_err();
        assert!(error.contains("line"), "{error}");
        assert!(check_template("").is_ok());
        let templates =
            Templates::new(&engine(), [("g".to_owned(), "{{ 1 // 0 }}".to_owned())]).unwrap();
        assert!(templates.render("g", "{}").unwrap().is_err());
    }

    #[test]
    fn a_context_that_is_not_json_renders_as_an_empty_one() {
        let templates =
            Templates::new(&engine(), [("g".to_owned(), "Hi {{ name }}!".to_owned())]).unwrap();
        let rendered = templates.render("g", "{not json").unwrap().unwrap();
        assert_eq!(rendered.subject, "Hi !");
    }

    #[test]
    fn rendering_is_bounded() {
        let templates = Templates::new(
            &engine(),
            [(
                "g".to_owned(),
                "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}"
                    .to_owned(),
            )],
        )
        .unwrap();
        let error = templates.render("g", "{}").unwrap().unwrap_err();
        assert!(error.contains("fuel"), "{error}");
    }

    #[test]
    fn a_template_that_would_exhaust_the_host_fails_naming_the_limit() {
        let templates = Templates::new(
            &engine(),
            [
                (
                    "bomb".to_owned(),
                    r#"{{ (["x"*10000000]*400)|join|length }}"#.to_owned(),
                ),
                ("g".to_owned(), "Hi {{ name }}\n\nBody".to_owned()),
            ],
        )
        .unwrap();
        let error = templates.render("bomb", "{}").unwrap().unwrap_err();
        assert!(error.contains("memory limit of 65 MiB"), "{error}");
        let rendered = templates
            .render("g", r#"{"name": "Ada"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (rendered.subject.as_str(), rendered.body.as_str()),
            ("Hi Ada", "Body")
        );
    }

    #[test]
    fn no_templates_start_no_renderer() {
        let templates = Templates::new(&engine(), []).unwrap();
        assert!(templates.renderer.is_none());
        assert!(!templates.has("g"));
        assert!(templates.render("g", "{}").is_none());
    }
}

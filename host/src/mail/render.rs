//! Mail templates, kept per tenant and exact event group in Jinja syntax (minijinja, the
//! closest to Django's templates), and django-spark's rules for turning a rendered
//! template into a subject and a body.
//!
//! Mails are plain text, so nothing is HTML-escaped (django-spark escaped `O'Brien` to
//! `O&#x27;Brien`; that was a bug). A variable the context lacks renders as nothing, as
//! in Django.

use minijinja::{AutoEscape, Environment};

/// How much work one rendering may do (minijinja's fuel): templates are the operator's,
/// but their loops run over contexts that modules and records provide.
const RENDER_FUEL: u64 = 1_000_000;

/// A tenant's templates, by event group.
pub struct Templates {
    env: Environment<'static>,
}

/// A rendered template, split into subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(RENDER_FUEL));
    env
}

/// Checks a template's syntax; the error names the line.
pub fn check_template(source: &str) -> Result<(), String> {
    let env = environment();
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
    /// The templates `(group, source)`, each checked when it was saved.
    pub fn new(templates: impl IntoIterator<Item = (String, String)>) -> Result<Self, String> {
        let mut env = environment();
        for (group, source) in templates {
            env.add_template_owned(group.clone(), source)
                .map_err(|error| format!("template `{group}`: {}", describe(error)))?;
        }
        Ok(Self { env })
    }

    /// Whether there is a template for `group`.
    pub fn has(&self, group: &str) -> bool {
        self.env.get_template(group).is_ok()
    }

    /// Renders the template of `group` with `context`, a JSON object as text (text that
    /// is not JSON renders as an empty context): `None` when there is no such template,
    /// else the subject and body or why rendering failed.
    pub fn render(&self, group: &str, context: &str) -> Option<Result<Rendered, String>> {
        let template = self.env.get_template(group).ok()?;
        // Through serde_json's tree: reading the text with minijinja's own
        // `Deserialize` cost 4 µs more per mail (measured with the example's templates).
        let context: serde_json::Value = serde_json::from_str(context).unwrap_or_default();
        let context = minijinja::Value::from(minijinja::value::Serde(&context));
        Some(
            template
                .render(context)
                .map(|text| split(&text))
                .map_err(describe),
        )
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
        let templates = Templates::new([(
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
        let templates =
            Templates::new([("g".to_owned(), "Hi {{ name }}{{ nothing }}!".to_owned())]).unwrap();
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
        let templates = Templates::new([("g".to_owned(), "{{ 1 // 0 }}".to_owned())]).unwrap();
        assert!(templates.render("g", "{}").unwrap().is_err());
    }

    #[test]
    fn a_context_that_is_not_json_renders_as_an_empty_one() {
        let templates = Templates::new([("g".to_owned(), "Hi {{ name }}!".to_owned())]).unwrap();
        let rendered = templates.render("g", "{not json").unwrap().unwrap();
        assert_eq!(rendered.subject, "Hi !");
    }

    #[test]
    fn rendering_is_bounded() {
        let templates = Templates::new([(
            "g".to_owned(),
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}"
                .to_owned(),
        )])
        .unwrap();
        let error = templates.render("g", "{}").unwrap().unwrap_err();
        assert!(error.contains("fuel"), "{error}");
    }
}

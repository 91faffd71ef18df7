//! Generators: "emit group G for every record of model M whose context satisfies these
//! conditions", declared by operators without code (django-spark's `spark_generators`).
//!
//! A condition is `variable operator value`: `donations >= 3`, `owner.name = 'Ada'`,
//! `score < 2.5`, `is_active = true`. The variable is a dotted path into the candidate's
//! context; the value an integer, a float, a quoted string or a boolean. Operators are
//! `>`, `<`, `>=`, `<=`, `=` (also `==`) and `!=`; numbers and strings are ordered,
//! booleans only compared for equality. Conditions are ANDed, in order.
//!
//! A candidate whose context lacks a variable (or holds `null` there) is skipped
//! silently, as in django-spark. One whose variable has another type than the value
//! (`"3" > 2`) is skipped too, and reported: the run goes on.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// A generator as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    /// Unique within the tenant.
    pub name: String,
    /// The group of the events it makes; their keys are `{group}_{record id}`.
    pub group: String,
    /// Whose stored records are its candidates.
    pub model: String,
    /// ANDed, in order; none means every candidate.
    pub conditions: Vec<Condition>,
    /// Only active generators run.
    pub active: bool,
}

/// `variable operator value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    path: Vec<String>,
    operator: Operator,
    value: Literal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Greater,
    Less,
    GreaterOrEqual,
    LessOrEqual,
    Equal,
    NotEqual,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Integer(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// What a candidate's context makes of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    Fail,
    /// The variable is not there (or is `null`): skip silently.
    Missing,
    /// The variable's type does not fit the value: skip and report why.
    Mismatch(String),
}

/// Operators, longest first so that `>=` is not read as `>`.
const OPERATORS: &[(&str, Operator)] = &[
    (">=", Operator::GreaterOrEqual),
    ("<=", Operator::LessOrEqual),
    ("!=", Operator::NotEqual),
    ("==", Operator::Equal),
    (">", Operator::Greater),
    ("<", Operator::Less),
    ("=", Operator::Equal),
];

impl Operator {
    fn symbol(self) -> &'static str {
        match self {
            Operator::Greater => ">",
            Operator::Less => "<",
            Operator::GreaterOrEqual => ">=",
            Operator::LessOrEqual => "<=",
            Operator::Equal => "=",
            Operator::NotEqual => "!=",
        }
    }

    fn orders(self) -> bool {
        !matches!(self, Operator::Equal | Operator::NotEqual)
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Operator::Greater => ordering == Ordering::Greater,
            Operator::Less => ordering == Ordering::Less,
            Operator::GreaterOrEqual => ordering != Ordering::Less,
            Operator::LessOrEqual => ordering != Ordering::Greater,
            Operator::Equal => ordering == Ordering::Equal,
            Operator::NotEqual => ordering != Ordering::Equal,
        }
    }
}

impl Condition {
    /// Parses `variable operator value`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (start, symbol, operator) = find_operator(text).ok_or_else(|| {
            let known: Vec<&str> = OPERATORS.iter().map(|(symbol, _)| *symbol).collect();
            format!(
                "no operator in `{text}`; write `variable operator value` with one of {}",
                known.join(" ")
            )
        })?;
        let variable = text[..start].trim();
        let value = text[start + symbol.len()..].trim();
        let path = parse_path(variable).map_err(|why| format!("`{text}`: {why}"))?;
        let value = parse_literal(value).map_err(|why| format!("`{text}`: {why}"))?;
        if operator.orders() && matches!(value, Literal::Bool(_)) {
            return Err(format!(
                "`{text}`: booleans can only be compared with = and !="
            ));
        }
        Ok(Self {
            path,
            operator,
            value,
        })
    }

    /// The condition's verdict on a context.
    pub fn test(&self, context: &Value) -> Verdict {
        let mut found = context;
        for step in &self.path {
            match found.get(step) {
                Some(value) => found = value,
                None => return Verdict::Missing,
            }
        }
        let ordering = match (found, &self.value) {
            (Value::Null, _) => return Verdict::Missing,
            (Value::Number(number), Literal::Integer(wanted)) => match number.as_i64() {
                Some(number) => number.cmp(wanted),
                None => compare_floats(number.as_f64(), *wanted as f64),
            },
            (Value::Number(number), Literal::Float(wanted)) => {
                compare_floats(number.as_f64(), *wanted)
            }
            (Value::String(text), Literal::Text(wanted)) => text.as_str().cmp(wanted.as_str()),
            (Value::Bool(flag), Literal::Bool(wanted)) => flag.cmp(wanted),
            (found, _) => {
                return Verdict::Mismatch(format!(
                    "`{}` is {}, not comparable with {}",
                    self.path.join("."),
                    type_name(found),
                    self.value
                ));
            }
        };
        if self.operator.holds(ordering) {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

fn compare_floats(found: Option<f64>, wanted: f64) -> Ordering {
    found
        .and_then(|found| found.partial_cmp(&wanted))
        .unwrap_or(Ordering::Less)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The first operator outside quotes: (byte offset, symbol, operator).
fn find_operator(text: &str) -> Option<(usize, &'static str, Operator)> {
    let mut quote = None;
    for (index, c) in text.char_indices() {
        match quote {
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {
                let rest = &text[index..];
                if let Some((symbol, operator)) = OPERATORS
                    .iter()
                    .find(|(symbol, _)| rest.starts_with(symbol))
                {
                    return Some((index, symbol, *operator));
                }
            }
        }
    }
    None
}

fn parse_path(variable: &str) -> Result<Vec<String>, String> {
    if variable.is_empty() {
        return Err("the variable is missing".to_owned());
    }
    let path: Vec<String> = variable.split('.').map(str::to_owned).collect();
    for step in &path {
        let valid = !step.is_empty()
            && step
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(format!(
                "`{variable}` is not a variable (letters, digits, `_` and `-`, with `.` between names)"
            ));
        }
    }
    Ok(path)
}

fn parse_literal(value: &str) -> Result<Literal, String> {
    if value.is_empty() {
        return Err("the value is missing".to_owned());
    }
    match value {
        "true" => return Ok(Literal::Bool(true)),
        "false" => return Ok(Literal::Bool(false)),
        _ => {}
    }
    for quote in ['\'', '"'] {
        if let Some(inner) = value.strip_prefix(quote) {
            return match inner.strip_suffix(quote) {
                Some(text) if !text.contains(quote) => Ok(Literal::Text(text.to_owned())),
                _ => Err(format!(
                    "the text {value} is not closed by a single {quote}"
                )),
            };
        }
    }
    if let Ok(integer) = value.parse::<i64>() {
        return Ok(Literal::Integer(integer));
    }
    if let Ok(float) = value.parse::<f64>()
        && float.is_finite()
    {
        return Ok(Literal::Float(float));
    }
    Err(format!(
        "`{value}` is not a value (an integer, a number like 2.5, 'text' or true/false)"
    ))
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Integer(integer) => write!(f, "{integer}"),
            Literal::Float(float) => write!(f, "{float:?}"),
            Literal::Text(text) if text.contains('\'') => write!(f, "\"{text}\""),
            Literal::Text(text) => write!(f, "'{text}'"),
            Literal::Bool(flag) => write!(f, "{flag}"),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.path.join("."),
            self.operator.symbol(),
            self.value
        )
    }
}

impl From<Condition> for String {
    fn from(condition: Condition) -> Self {
        condition.to_string()
    }
}

impl TryFrom<String> for Condition {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Condition::parse(&text)
    }
}

impl Generator {
    /// A generator from its parts, with every condition parsed; the error names the
    /// generator and the condition.
    pub fn new(
        name: &str,
        group: &str,
        model: &str,
        conditions: &[String],
        active: bool,
    ) -> Result<Self, Error> {
        let invalid = |why: String| Error::InvalidGenerator {
            name: name.to_owned(),
            why,
        };
        crate::registration::validate_name(name)
            .map_err(|why| invalid(format!("its name: {why}")))?;
        crate::registration::validate_name(model)
            .map_err(|why| invalid(format!("its model `{model}`: {why}")))?;
        let probe = crate::Event {
            group: group.to_owned(),
            key: format!("{group}_1"),
            context: "{}".to_owned(),
        };
        probe
            .validate()
            .map_err(|error| invalid(format!("its group `{group}`: {error}")))?;
        let conditions = conditions
            .iter()
            .map(|text| Condition::parse(text))
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
        Ok(Self {
            name: name.to_owned(),
            group: group.to_owned(),
            model: model.to_owned(),
            conditions,
            active,
        })
    }

    /// The verdict of all conditions, in order: the first that does not pass decides.
    pub fn test(&self, context: &Value) -> Verdict {
        for condition in &self.conditions {
            match condition.test(context) {
                Verdict::Pass => {}
                other => return other,
            }
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict(condition: &str, context: Value) -> Verdict {
        Condition::parse(condition).unwrap().test(&context)
    }

    #[test]
    fn operators_on_integers_as_django_spark() {
        let context = json!({ "n": 5 });
        let cases = [
            ("n > 4", true),
            ("n > 5", false),
            ("n < 6", true),
            ("n < 5", false),
            ("n >= 5", true),
            ("n >= 6", false),
            ("n <= 5", true),
            ("n <= 4", false),
            ("n = 5", true),
            ("n == 5", true),
            ("n = 4", false),
            ("n != 4", true),
            ("n != 5", false),
            ("n>4", true),
            ("  n   >=   5  ", true),
        ];
        for (condition, passes) in cases {
            let expected = if passes { Verdict::Pass } else { Verdict::Fail };
            assert_eq!(verdict(condition, context.clone()), expected, "{condition}");
        }
    }

    #[test]
    fn floats_strings_booleans_and_paths() {
        let context = json!({
            "score": 2.5,
            "count": 3,
            "name": "Ada",
            "active": true,
            "owner": { "email": "ada@example.com", "address": { "city": "Zürich" } },
        });
        let cases = [
            ("score > 2", Verdict::Pass),
            ("score < 2.6", Verdict::Pass),
            ("score = 2.5", Verdict::Pass),
            ("count > 2.5", Verdict::Pass),
            ("count = 3.0", Verdict::Pass),
            ("name = 'Ada'", Verdict::Pass),
            ("name = \"Ada\"", Verdict::Pass),
            ("name != 'Grace'", Verdict::Pass),
            ("name < 'B'", Verdict::Pass),
            ("name >= 'Ada'", Verdict::Pass),
            ("active = true", Verdict::Pass),
            ("active != true", Verdict::Fail),
            ("owner.email = 'ada@example.com'", Verdict::Pass),
            ("owner.address.city = 'Zürich'", Verdict::Pass),
            ("name = 'a > b'", Verdict::Fail),
        ];
        for (condition, expected) in cases {
            assert_eq!(verdict(condition, context.clone()), expected, "{condition}");
        }
    }

    #[test]
    fn missing_variables_are_skipped_and_mismatches_explained() {
        let context = json!({ "n": "5", "gone": null, "owner": { "name": "Ada" } });
        assert_eq!(verdict("key_length > 5", context.clone()), Verdict::Missing);
        assert_eq!(verdict("gone > 5", context.clone()), Verdict::Missing);
        assert_eq!(
            verdict("owner.email = 'x'", context.clone()),
            Verdict::Missing
        );
        assert_eq!(verdict("n.deeper = 1", context.clone()), Verdict::Missing);
        match verdict("n > 5", context.clone()) {
            Verdict::Mismatch(why) => assert_eq!(why, "`n` is a string, not comparable with 5"),
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(matches!(
            verdict("owner > 5", context),
            Verdict::Mismatch(_)
        ));
    }

    #[test]
    fn bad_conditions_are_refused_with_the_reason() {
        let cases = [
            ("key_length ~ 5", "no operator"),
            ("key_length 5", "no operator"),
            ("> 5", "the variable is missing"),
            ("key_length >", "the value is missing"),
            ("key length > 5", "is not a variable"),
            ("a..b > 5", "is not a variable"),
            ("name = 'open", "not closed"),
            ("name = five", "is not a value"),
            ("active > true", "booleans can only be compared"),
            ("score > inf", "is not a value"),
        ];
        for (text, expected) in cases {
            let error = Condition::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn conditions_print_as_they_parse() {
        for text in [
            "n > 5",
            "score <= 2.5",
            "name = 'Ada'",
            "flag != false",
            "a.b.c = \"it's\"",
        ] {
            let condition = Condition::parse(text).unwrap();
            assert_eq!(Condition::parse(&condition.to_string()).unwrap(), condition);
        }
        assert_eq!(Condition::parse("n==5").unwrap().to_string(), "n = 5");
    }

    #[test]
    fn all_conditions_must_pass_and_the_first_other_verdict_decides() {
        let generator = Generator::new(
            "g",
            "big",
            "thing",
            &[
                "n > 1".to_owned(),
                "missing = 1".to_owned(),
                "n < 0".to_owned(),
            ],
            true,
        )
        .unwrap();
        assert_eq!(generator.test(&json!({ "n": 5 })), Verdict::Missing);
        assert_eq!(generator.test(&json!({ "n": 0 })), Verdict::Fail);
        let none = Generator::new("g", "all", "thing", &[], true).unwrap();
        assert_eq!(none.test(&json!({})), Verdict::Pass);
    }

    #[test]
    fn definitions_are_checked() {
        assert!(Generator::new("../g", "x", "thing", &[], true).is_err());
        assert!(Generator::new("g", "", "thing", &[], true).is_err());
        assert!(Generator::new("g", "x", "a model", &[], true).is_err());
        let error = Generator::new("g", "x", "thing", &["n ~ 1".to_owned()], true).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid generator `g`: no operator"),
            "{error}"
        );
    }
}

/// What conditions can test for a model, as `spark generators describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelDescription {
    /// A source module of the model computes the context and described its variables.
    Module {
        module: String,
        variables: Vec<(String, String)>,
    },
    /// No module computes a context: conditions test the record itself. `fields` are
    /// the top-level fields of one stored record with their JSON types, if there is one.
    Record { fields: Vec<(String, String)> },
}

impl ModelDescription {
    /// The description of a model whose conditions test the record itself: the
    /// top-level fields of `sample`, a stored record, with their JSON types.
    pub(crate) fn of_record(sample: Option<&str>) -> Self {
        let fields = match sample.map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(map))) => map
                .iter()
                .map(|(name, value)| (name.clone(), type_name(value).to_owned()))
                .collect(),
            _ => Vec::new(),
        };
        ModelDescription::Record { fields }
    }
}

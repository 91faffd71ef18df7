//! Which handlers an event goes to: each module's group regexes, searched unanchored
//! (like Python's `re.search`), in registration order, each module at most once.

use regex::Regex;

use crate::Error;
use crate::registration::Registration;

/// The handlers of a tenant, in registration order.
#[derive(Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

#[derive(Debug)]
struct Route {
    module: String,
    regexes: Vec<Regex>,
}

/// Compiles a group regex, with a message naming it when it does not compile.
pub fn compile_regex(pattern: &str) -> Result<Regex, Error> {
    Regex::new(pattern).map_err(|error| Error::InvalidRegex {
        regex: pattern.to_owned(),
        why: error.to_string(),
    })
}

impl Routes {
    /// The routes of `modules`, which must be in registration order.
    pub fn new(modules: &[Registration]) -> Result<Self, Error> {
        let routes = modules
            .iter()
            .filter(|module| !module.handlers.is_empty())
            .map(|module| {
                Ok(Route {
                    module: module.name.clone(),
                    regexes: module
                        .handlers
                        .iter()
                        .map(|pattern| compile_regex(pattern))
                        .collect::<Result<_, Error>>()?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self { routes })
    }

    /// The modules whose regexes match `group`, in registration order, each once.
    pub fn matching<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.routes
            .iter()
            .filter(move |route| route.regexes.iter().any(|regex| regex.is_match(group)))
            .map(|route| route.module.as_str())
    }

    /// Whether `module` is a handler here.
    pub fn has_handler(&self, module: &str) -> bool {
        self.routes.iter().any(|route| route.module == module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registration::RegisteredCode;

    fn module(name: &str, handlers: &[&str]) -> Registration {
        Registration {
            name: name.to_owned(),
            code: RegisteredCode::Native {
                name: String::new(),
            },
            order: 0,
            sources: vec![],
            handlers: handlers.iter().map(|h| (*h).to_owned()).collect(),
            exports: vec!["handler".to_owned()],
            limits: Default::default(),
            clock: Default::default(),
            since_ms: None,
        }
    }

    #[test]
    fn routing_table() {
        let routes = Routes::new(&[
            module("anchored", &["^challenge"]),
            module("anywhere", &["challenge"]),
            module("twice", &["created$", "^challenge_"]),
            module("source-only", &[]),
            module("exact", &["^challenge_ended$"]),
            module("case", &["^Challenge"]),
        ])
        .unwrap();
        let cases: &[(&str, &[&str])] = &[
            ("challenge_created", &["anchored", "anywhere", "twice"]),
            ("old_challenge_x", &["anywhere"]),
            (
                "challenge_ended",
                &["anchored", "anywhere", "twice", "exact"],
            ),
            ("user_created", &["twice"]),
            ("Challenge_created", &["twice", "case"]),
            ("unrelated", &[]),
        ];
        for (group, expected) in cases {
            let got: Vec<&str> = routes.matching(group).collect();
            assert_eq!(&got, expected, "group {group}");
        }
        assert!(routes.has_handler("exact"));
        assert!(!routes.has_handler("source-only"));
    }

    #[test]
    fn a_bad_regex_is_named() {
        let error = Routes::new(&[module("m", &["(unclosed"])]).unwrap_err();
        assert!(matches!(error, Error::InvalidRegex { regex, .. } if regex == "(unclosed"));
    }
}

//! Which language a component was built from, told by the names its toolchain leaves
//! in it, so that advice about a module that is not right speaks the author's language
//! (a Python author told about Rust attributes and cargo is told nothing).

/// A guest language Spark has a guide for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    Rust,
    Python,
    JavaScript,
}

impl Language {
    /// The language of `bytes` (a component or a core module), Rust when nothing says
    /// otherwise: componentize-py embeds its runtime by name, componentize-qjs its
    /// runtime and shim.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        if has(b"componentize_py_runtime") {
            Language::Python
        } else if has(b"componentize_qjs_runtime") || has(b"componentize-qjs") {
            Language::JavaScript
        } else {
            Language::Rust
        }
    }

    /// How to build a component, for a core module.
    pub(crate) fn build_advice(self) -> &'static str {
        match self {
            Language::Rust => "build it with `cargo build --target wasm32-wasip2`",
            Language::Python => {
                "build it with `componentize-py -d guest-sdk/wit -w handler-module componentize \
                 -p . -p guest-sdk/python APP -o module.wasm` (guest-sdk/python.md)"
            }
            Language::JavaScript => {
                "build it with `npx componentize-qjs --wit guest-sdk/javascript/wit --js \
                 module.js -n handler-module --sync -o module.wasm` (guest-sdk/javascript.md)"
            }
        }
    }

    /// How to export a Spark interface, for a component that exports none.
    pub(crate) fn export_advice(self) -> &'static str {
        match self {
            Language::Rust => "build it with spark-guest's #[source], #[handler] or #[context]",
            Language::Python => {
                "define its functions with spark_guest's @source, @handler or @context and \
                 build it for the `source-module`, `handler-module`, `context-module` or \
                 `source-context-module` world (guest-sdk/python.md)"
            }
            Language::JavaScript => {
                "export `source`, `handler` or `context` (spark-guest's defineSource, \
                 defineHandler or defineContext) and build it for the `source-module`, \
                 `handler-module`, `context-module` or `source-context-module` world \
                 (guest-sdk/javascript.md)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_told_by_the_toolchains_names() {
        assert_eq!(Language::of(b"\0asm...spark_guest..."), Language::Rust);
        assert_eq!(
            Language::of(b"\0asm..componentize_py_runtime.so:memory.."),
            Language::Python
        );
        assert_eq!(
            Language::of(b"\0asm..componentize-qjs:shim.js.."),
            Language::JavaScript
        );
    }
}

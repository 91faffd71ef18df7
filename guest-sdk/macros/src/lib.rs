//! The attributes of `spark-guest`. Use them through `spark_guest::source` and
//! `spark_guest::handler`: the code they generate names `::spark_guest`.
//!
//! Each attribute leaves the author's function as written and adds a hidden module with
//! the `wit_bindgen` glue for one world of `spark:engine` (`source-module` or
//! `handler-module`). A crate with both attributes exports both interfaces: the
//! component tooling merges the two worlds into one component.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Token, Type};

/// The interface, read from the SDK's own directory so that authors need no WIT files
/// of their own. An absolute path, because `wit_bindgen` resolves relative paths (and,
/// without one, a `wit/` directory) against the crate being compiled.
const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");

/// Marks the module's source function. See `spark_guest::source`.
#[proc_macro_attribute]
pub fn source(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_explain(Entry::Source, attr.into(), item.into()).into()
}

/// Marks the module's handler function. See `spark_guest::handler`.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_explain(Entry::Handler, attr.into(), item.into()).into()
}

/// Marks the module's context function for generators. See `spark_guest::context`.
#[proc_macro_attribute]
pub fn context(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_explain(Entry::Context, attr.into(), item.into()).into()
}

/// The expansion, or the error next to the item as written, so that the author sees
/// this one error rather than a cascade about the item having vanished.
fn expand_or_explain(entry: Entry, attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    match expand(entry, attr, item.clone()) {
        Ok(expanded) => expanded,
        Err(error) => {
            let error = error.into_compile_error();
            quote! {
                #error
                #item
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Entry {
    Source,
    Handler,
    Context,
}

impl Entry {
    fn attribute(self) -> &'static str {
        match self {
            Entry::Source => "#[spark_guest::source]",
            Entry::Handler => "#[spark_guest::handler]",
            Entry::Context => "#[spark_guest::context]",
        }
    }

    fn shape(self) -> &'static str {
        match self {
            Entry::Source => "fn name(record: T, inv: &Invocation) -> Vec<Event>",
            Entry::Handler => "fn name(event: &Event, inv: &Invocation) -> Vec<Effect>",
            Entry::Context => "fn name(record: T, inv: &Invocation) -> Value",
        }
    }
}

/// The parameters of a checked entry point: how to pass each argument.
struct Signature {
    input_by_ref: bool,
    /// `None` when the function takes no invocation; `Some(by_ref)` otherwise.
    invocation_by_ref: Option<bool>,
    output_span: Span,
}

fn expand(entry: Entry, attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let variables = match entry {
        Entry::Context => parse_variables(attr)?,
        Entry::Source | Entry::Handler if attr.is_empty() => Vec::new(),
        Entry::Source | Entry::Handler => {
            return Err(syn::Error::new_spanned(
                attr,
                format!("`{}` takes no arguments", entry.attribute()),
            ));
        }
    };
    let func: ItemFn = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            format!(
                "`{}` goes on a function: `{}`",
                entry.attribute(),
                entry.shape()
            ),
        )
    })?;
    let signature = check(entry, &func)?;
    let glue = match entry {
        Entry::Source => source_glue(&func, &signature),
        Entry::Handler => handler_glue(&func, &signature),
        Entry::Context => context_glue(&func, &signature, &variables),
    };
    Ok(quote! {
        #func
        #glue
    })
}

fn check(entry: Entry, func: &ItemFn) -> syn::Result<Signature> {
    let sig = &func.sig;
    let attribute = entry.attribute();
    let fail = |tokens: &dyn quote::ToTokens, why: &str| {
        Err(syn::Error::new_spanned(
            tokens,
            format!("`{attribute}` {why}: `{}`", entry.shape()),
        ))
    };
    if let Some(asyncness) = &sig.asyncness {
        return fail(
            asyncness,
            "cannot be async; the host calls it synchronously",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        return fail(unsafety, "cannot be unsafe");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return fail(&sig.generics, "cannot be generic");
    }
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return fail(receiver, "goes on a free function, not a method");
            }
            FnArg::Typed(typed) => types.push(&*typed.ty),
        }
    }
    if types.is_empty() || types.len() > 2 {
        let what = match entry {
            Entry::Source | Entry::Context => "takes the record and, optionally, the invocation",
            Entry::Handler => "takes the event and, optionally, the invocation",
        };
        return if types.is_empty() {
            fail(&sig.ident, what)
        } else {
            fail(&sig.inputs, what)
        };
    }
    for ty in &types {
        if contains_impl_trait(ty) {
            return fail(ty, "cannot take `impl Trait` parameters");
        }
    }
    let input_by_ref = matches!(types[0], Type::Reference(_));
    if input_by_ref && matches!(entry, Entry::Source | Entry::Context) {
        return fail(types[0], "takes the record by value (any `T: Deserialize`)");
    }
    let output_span = match &sig.output {
        ReturnType::Default => {
            let what = match entry {
                Entry::Source => "must return its events",
                Entry::Handler => "must return its effects",
                Entry::Context => "must return the context",
            };
            return fail(&sig.ident, what);
        }
        ReturnType::Type(_, ty) => ty.span(),
    };
    Ok(Signature {
        input_by_ref,
        invocation_by_ref: types.get(1).map(|ty| matches!(ty, Type::Reference(_))),
        output_span,
    })
}

/// The attribute's `name = "description"` pairs; a dotted name is written as a string:
/// `#[context(donations = "...", "owner.email" = "...")]`.
fn parse_variables(attr: TokenStream2) -> syn::Result<Vec<(String, LitStr)>> {
    let parser = Punctuated::<Variable, Token![,]>::parse_terminated;
    let variables = parser.parse2(attr)?;
    let mut seen = std::collections::HashSet::new();
    let mut pairs = Vec::new();
    for variable in variables {
        if !seen.insert(variable.name.clone()) {
            return Err(syn::Error::new(
                variable.span,
                format!("variable `{}` is described twice", variable.name),
            ));
        }
        pairs.push((variable.name, variable.description));
    }
    Ok(pairs)
}

/// `name = "description"` or `"dotted.name" = "description"`.
struct Variable {
    name: String,
    span: Span,
    description: LitStr,
}

impl Parse for Variable {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let (name, span) = if input.peek(LitStr) {
            let name: LitStr = input.parse()?;
            (name.value(), name.span())
        } else {
            let name: syn::Ident = input.parse().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "`#[spark_guest::context]` takes `variable = \"description\"` pairs",
                )
            })?;
            (name.to_string(), name.span())
        };
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                span,
                format!("describe the variable: `{name} = \"what it means\"`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let description: LitStr = input.parse()?;
        Ok(Self {
            name,
            span,
            description,
        })
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Reference(reference) => contains_impl_trait(&reference.elem),
        Type::Paren(paren) => contains_impl_trait(&paren.elem),
        _ => false,
    }
}

/// The call of the author's function from the glue, with arguments spanned at the
/// author's parameters so that type errors point there.
fn call(func: &ItemFn, signature: &Signature, input: TokenStream2) -> TokenStream2 {
    let name = &func.sig.ident;
    let input = if signature.input_by_ref {
        quote!(&#input)
    } else {
        input
    };
    match signature.invocation_by_ref {
        None => quote!(super::#name(#input)),
        Some(true) => quote!(super::#name(#input, &__invocation)),
        Some(false) => quote!(super::#name(#input, __invocation)),
    }
}

/// The `wit_bindgen` bindings of one world, generated in the glue module.
fn bindings(world: &str) -> TokenStream2 {
    quote! {
        ::spark_guest::__private::wit_bindgen::generate!({
            path: #WIT_DIR,
            world: #world,
            runtime_path: "::spark_guest::__private::wit_bindgen::rt",
        });
    }
}

fn source_glue(func: &ItemFn, signature: &Signature) -> TokenStream2 {
    let bindings = bindings("source-module");
    let call = call(func, signature, quote!(__record));
    let into_events = quote_spanned! {signature.output_span=>
        ::spark_guest::__private::SourceOutput::into_events(__output)
    };
    quote! {
        #[doc(hidden)]
        #[allow(unused_braces, dead_code, unused_macros, clippy::all)]
        mod __spark_source_glue {
            #bindings

            struct Glue;

            impl exports::spark::engine::source::Guest for Glue {
                fn events(
                    model: ::std::string::String,
                    data: ::std::string::String,
                    inv: spark::engine::types::Invocation,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<spark::engine::types::Event>,
                    ::std::string::String,
                > {
                    let __invocation = ::spark_guest::__private::invocation(
                        inv.tenant, inv.now_ms, inv.attempt, ::std::option::Option::Some(model),
                    );
                    let __record = ::spark_guest::__private::parse_record(&data)?;
                    let __output = #call;
                    let __events = #into_events?;
                    ::std::result::Result::Ok(
                        __events
                            .into_iter()
                            .map(|event| {
                                let (group, key, context) =
                                    ::spark_guest::__private::event_parts(event);
                                spark::engine::types::Event { group, key, context }
                            })
                            .collect(),
                    )
                }
            }

            // Only a component exports; a native build (the author's unit tests, a
            // native baseline) type-checks the glue and links the functions as they are.
            #[cfg(target_arch = "wasm32")]
            export!(Glue);
        }
    }
}

fn handler_glue(func: &ItemFn, signature: &Signature) -> TokenStream2 {
    let bindings = bindings("handler-module");
    let call = call(func, signature, quote!(__event));
    let into_effects = quote_spanned! {signature.output_span=>
        ::spark_guest::__private::HandlerOutput::into_effects(__output)
    };
    quote! {
        #[doc(hidden)]
        #[allow(unused_braces, dead_code, unused_macros, clippy::all)]
        mod __spark_handler_glue {
            #bindings

            struct Glue;

            impl exports::spark::engine::handler::Guest for Glue {
                fn handle(
                    event: spark::engine::types::Event,
                    inv: spark::engine::types::Invocation,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<spark::engine::types::Effect>,
                    ::std::string::String,
                > {
                    use ::spark_guest::__private::EffectParts;
                    use spark::engine::types as wit;
                    let __invocation = ::spark_guest::__private::invocation(
                        inv.tenant, inv.now_ms, inv.attempt, ::std::option::Option::None,
                    );
                    let __event = ::spark_guest::__private::host_event(
                        event.group, event.key, event.context,
                    );
                    let __output = #call;
                    let __effects = #into_effects?;
                    ::std::result::Result::Ok(
                        __effects
                            .into_iter()
                            .map(|effect| match ::spark_guest::__private::effect_parts(effect) {
                                EffectParts::Emit(group, key, context) => {
                                    wit::Effect::Emit(wit::Event { group, key, context })
                                }
                                EffectParts::Mail(mail) => wit::Effect::Mail(wit::Mail {
                                    to: mail.to,
                                    subject: mail.subject,
                                    body: mail.body,
                                    template: mail.template,
                                    context: mail.context,
                                }),
                                EffectParts::Output(channel, payload) => {
                                    wit::Effect::Output((channel, payload))
                                }
                            })
                            .collect(),
                    )
                }
            }

            // Only a component exports; a native build (the author's unit tests, a
            // native baseline) type-checks the glue and links the functions as they are.
            #[cfg(target_arch = "wasm32")]
            export!(Glue);
        }
    }
}

fn context_glue(
    func: &ItemFn,
    signature: &Signature,
    variables: &[(String, LitStr)],
) -> TokenStream2 {
    let bindings = bindings("context-module");
    let call = call(func, signature, quote!(__record));
    let into_context = quote_spanned! {signature.output_span=>
        ::spark_guest::__private::ContextOutput::into_context(__output)
    };
    let names = variables.iter().map(|(name, _)| name);
    let descriptions = variables.iter().map(|(_, description)| description);
    quote! {
        #[doc(hidden)]
        #[allow(unused_braces, dead_code, unused_macros, clippy::all)]
        mod __spark_context_glue {
            #bindings

            struct Glue;

            impl exports::spark::engine::context::Guest for Glue {
                fn context(
                    model: ::std::string::String,
                    data: ::std::string::String,
                    inv: spark::engine::types::Invocation,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    let __invocation = ::spark_guest::__private::invocation(
                        inv.tenant, inv.now_ms, inv.attempt, ::std::option::Option::Some(model),
                    );
                    let __record = ::spark_guest::__private::parse_record(&data)?;
                    let __output = #call;
                    #into_context
                }

                fn describe(
                    _model: ::std::string::String,
                ) -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
                    ::std::vec![
                        #((::std::string::String::from(#names), ::std::string::String::from(#descriptions)),)*
                    ]
                }
            }

            // Only a component exports; a native build (the author's unit tests, a
            // native baseline) type-checks the glue and links the functions as they are.
            #[cfg(target_arch = "wasm32")]
            export!(Glue);
        }
    }
}

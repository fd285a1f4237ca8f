//! References: how one step's params pull values out of the run's context.
//!
//! A reference names a root (a step id, `input`, `workflow`, or a name a construct binds,
//! such as `item`) and a path into its value: `{user.city}`, `{weather[temp]}`,
//! `{items[0].name}`, `$user.city`. See [`template`] for how references sit in JSON.
//!
//! Layout:
//! - [`path`]: the path grammar and its canonical spelling.
//! - [`template`]: JSON values carrying references, parsed once, resolved many times.
//! - [`resolve`]: scopes and resolution errors that say what was found instead.

pub mod path;
pub mod resolve;
pub mod template;

pub use path::{Path, PathError, Segment, is_ident};
pub use resolve::{Context, Layered, Lookup, ResolveError, Scope, SkippedAsNull, describe, resolve_path};
pub use template::{Piece, Template, TemplateError};

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn ctx() -> Context {
        let mut c = Context::with_input(json!({"x": 7, "name": "Ada"}));
        c.set("user", json!({"id": 123, "city": "London", "tags": ["a", "b"]}));
        c.set("weather", json!({"temp": 15, "location": "London", "conditions": "Cloudy"}));
        c.skip("premium");
        c
    }

    fn render(value: Value) -> Result<Value, ResolveError> {
        Template::parse(&value).expect("template parses").resolve(&ctx())
    }

    #[test]
    fn whole_reference_keeps_type() {
        assert_eq!(render(json!("{user.id}")).expect("resolves"), json!(123));
        assert_eq!(render(json!("$user.tags")).expect("resolves"), json!(["a", "b"]));
        assert_eq!(render(json!("{ user.city }")).expect("resolves"), json!("London"));
        assert_eq!(render(json!({"n": ["{input.x}"]})).expect("resolves"), json!({"n": [7]}));
    }

    #[test]
    fn embedded_references_interpolate_as_text() {
        let out = render(json!("Weather in {weather.location}: {weather[temp]}°C, {weather.conditions}"));
        assert_eq!(out.expect("resolves"), json!("Weather in London: 15°C, Cloudy"));
        assert_eq!(render(json!("tags={user.tags}")).expect("resolves"), json!("tags=[\"a\",\"b\"]"));
    }

    #[test]
    fn escapes_are_literal() {
        assert_eq!(render(json!("{{user.id}}")).expect("resolves"), json!("{user.id}"));
        assert_eq!(render(json!("$$user.id")).expect("resolves"), json!("$user.id"));
        assert_eq!(render(json!("$5.00")).expect("resolves"), json!("$5.00"));
        assert_eq!(render(json!("a }} b")).expect("resolves"), json!("a } b"));
    }

    #[test]
    fn errors_say_what_was_there() {
        let e = render(json!("{weather.temperature}")).expect_err("missing key");
        assert_eq!(
            e.to_string(),
            "`{weather.temperature}`: `weather` has no field `temperature` (its fields: `temp`, `location`, `conditions`)"
        );
        let e = render(json!("{user.tags[5]}")).expect_err("out of range");
        assert!(e.to_string().contains("index 5 is out of range for `user.tags`, which has 2 items"), "{e}");
        let e = render(json!("{user.city.name}")).expect_err("wrong type");
        assert!(e.to_string().contains("which is the string \"London\""), "{e}");
        assert!(matches!(render(json!("{premium.level}")), Err(ResolveError::Skipped { .. })));
        assert!(matches!(render(json!("{nobody}")), Err(ResolveError::UnknownRoot { .. })));
    }

    #[test]
    fn malformed_templates_are_located() {
        let errors = Template::parse(&json!({"a": ["ok", "bad {user"]})).expect_err("unclosed");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "/a/1");
        assert!(errors[0].message.contains("unclosed"), "{}", errors[0].message);
        assert!(Template::parse_str("x } y").is_err());
        assert!(Template::parse_str("{}").is_err());
        assert!(Template::parse_str("{1x}").is_err());
    }

    #[test]
    fn references_are_listed_in_order() {
        let t = Template::parse(&json!({"a": "{user.id}", "b": "x {weather.temp} {input.x}"})).expect("parses");
        let roots: Vec<&str> = t.references().iter().map(|p| p.root.as_str()).collect();
        assert_eq!(roots, ["user", "weather", "input"]);
    }
}

//! Built-in tools, available on every worker: `echo`, `sleep`, `fail`, `http`, `transform`.
//!
//! Their specs match `examples/tools/catalogue.json` (a test keeps them in step).

pub mod echo;
pub mod fail;
pub mod http;
pub mod sleep;
pub mod transform;

use std::sync::Arc;

use crate::tool::Tool;

/// Names of the built-in tools.
pub const NAMES: [&str; 5] = ["echo", "sleep", "fail", "http", "transform"];

/// One of each built-in tool.
pub fn all() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(echo::Echo),
        Arc::new(sleep::Sleep),
        Arc::new(fail::Fail),
        Arc::new(http::Http),
        Arc::new(transform::Transform),
    ]
}

#[cfg(test)]
mod tests {
    use weft_lang::catalogue::ToolSpec;

    use super::*;

    #[test]
    fn specs_match_the_catalogue() {
        let catalogue: Vec<ToolSpec> =
            serde_json::from_str(include_str!("../../examples/tools/catalogue.json")).expect("catalogue parses");
        let tools = all();
        assert_eq!(tools.iter().map(|t| t.spec().name).collect::<Vec<_>>(), NAMES);
        for tool in tools {
            let spec = tool.spec();
            let listed = catalogue.iter().find(|c| c.name == spec.name).expect("built-in is in the catalogue");
            assert_eq!(spec.params, listed.params, "params schema of `{}`", spec.name);
            assert_eq!(spec.version, listed.version, "version of `{}`", spec.name);
        }
    }
}

//! Structured output: an answer read as JSON and checked against the step's schema, and
//! what the model is told when it does not match.

use serde_json::Value;
use weft_protocol::wire::{ToolError, codes};

use crate::tool::bad_params;

/// Most validation errors sent back to a model or shown in an error.
const MOST_PROBLEMS: usize = 10;

/// How an answer is checked.
#[derive(Debug)]
pub(crate) struct Check {
    /// `None` for `json_object`: any JSON object will do.
    validator: Option<jsonschema::Validator>,
}

/// The check a `response_format` asks for, if any.
pub(crate) fn schema_of(format: Option<&Value>) -> Result<Option<Check>, ToolError> {
    let Some(format) = format else { return Ok(None) };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format.pointer("/json_schema/schema").ok_or_else(|| {
                bad_params("llm: a json_schema response_format needs `json_schema.schema`".to_owned())
            })?;
            let validator = jsonschema::validator_for(schema).map_err(|e| {
                bad_params(format!("llm: `response_format.json_schema.schema` is not a JSON Schema: {e}"))
            })?;
            Ok(Some(Check { validator: Some(validator) }))
        }
        Some("json_object") => Ok(Some(Check { validator: None })),
        _ => Ok(None),
    }
}

impl Check {
    /// The parsed answer, or what is wrong with it.
    pub(crate) fn check(&self, content: Option<&str>) -> Result<Value, Vec<String>> {
        let text = content.map(strip_fence).unwrap_or_default();
        let value: Value = serde_json::from_str(text).map_err(|e| vec![format!("the answer is not JSON: {e}")])?;
        let Some(validator) = &self.validator else {
            return if value.is_object() { Ok(value) } else { Err(vec!["the answer is not a JSON object".into()]) };
        };
        let problems: Vec<String> = validator
            .iter_errors(&value)
            .take(MOST_PROBLEMS)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("at {at}: {e}") }
            })
            .collect();
        if problems.is_empty() { Ok(value) } else { Err(problems) }
    }
}

/// Models asked for JSON sometimes wrap it in a Markdown code fence anyway.
fn strip_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(inner) = trimmed.strip_prefix("```") else { return trimmed };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

/// What the model is told when its answer does not match.
pub(crate) fn repair_prompt(problems: &[String]) -> String {
    format!(
        "Your answer does not match the required JSON Schema:\n- {}\nAnswer again with only the corrected JSON.",
        problems.join("\n- ")
    )
}

/// The step's error once the repairs ran out.
pub(crate) fn mismatch(repairs: u32, problems: &[String]) -> ToolError {
    ToolError::new(format!(
        "llm: the answer did not match its JSON Schema after {repairs} repair(s): {}",
        problems.join("; ")
    ))
    .with_code(codes::SCHEMA_MISMATCH)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_parsed_and_checked() {
        let format = json!({"type": "json_schema", "json_schema": {"name": "city", "schema": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
        let check = schema_of(Some(&format)).expect("valid").expect("a check");
        assert_eq!(check.check(Some("```json\n{\"city\": \"Paris\"}\n```")), Ok(json!({"city": "Paris"})));
        let problems = check.check(Some(r#"{"city": 3}"#)).expect_err("wrong type");
        assert!(problems[0].contains("/city"), "{problems:?}");
        let problems = check.check(Some("Paris")).expect_err("not JSON");
        assert!(problems[0].starts_with("the answer is not JSON"), "{problems:?}");
        assert!(schema_of(Some(&json!({"type": "text"}))).expect("valid").is_none());
        let bad = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 7}}});
        assert!(schema_of(Some(&bad)).is_err());
    }
}

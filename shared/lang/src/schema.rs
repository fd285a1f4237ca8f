//! The workflow format as a JSON Schema, generated from the document model.
//!
//! Editors validate and complete workflows with it, and a model's structured output can
//! be held to it (the `plan` step's planner is). The copy committed as
//! `docs/workflow.schema.json` is checked against [`workflow_schema`] by a test, so it
//! cannot drift from the parser; `weft schema` prints it.
//!
//! The schema describes the document's shape, as the parser reads it. What only
//! validation sees (references, cycles, a step's one kind) is `weft validate`'s to say.

use serde_json::Value;

use crate::definition::WorkflowDef;

/// Where the published schema says it lives.
pub const SCHEMA_ID: &str = "https://weft.invalid/schemas/workflow.schema.json";

/// The JSON Schema (draft 2020-12) of a workflow document.
pub fn workflow_schema() -> Value {
    let schema =
        schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<WorkflowDef>();
    let mut value = schema.to_value();
    if let Some(map) = value.as_object_mut() {
        map.insert("$id".into(), Value::String(SCHEMA_ID.into()));
        map.insert("title".into(), Value::String("Weft workflow".into()));
    }
    value
}

/// [`workflow_schema`] as the committed file holds it: pretty, with a final newline.
pub fn workflow_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&workflow_schema()).unwrap_or_default();
    text.push('\n');
    text
}

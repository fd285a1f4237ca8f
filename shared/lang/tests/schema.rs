//! The published JSON Schema matches the parser, and every example fits it.

use std::path::{Path, PathBuf};

use weft_lang::schema::{workflow_schema, workflow_schema_text};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let file = root().join("docs/workflow.schema.json");
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    if committed != workflow_schema_text() {
        if std::env::var_os("WEFT_WRITE_SCHEMA").is_some() {
            std::fs::write(&file, workflow_schema_text()).expect("schema written");
        } else {
            panic!(
                "docs/workflow.schema.json is out of date: run `WEFT_WRITE_SCHEMA=1 cargo test -p weft-lang --test schema`"
            );
        }
    }
}

#[test]
fn every_example_fits_the_schema_and_a_typo_does_not() {
    let validator = jsonschema::validator_for(&workflow_schema()).expect("the schema compiles");
    let mut checked = 0;
    for dir in ["examples", "examples/patterns", "examples/llm"] {
        for entry in std::fs::read_dir(root().join(dir)).expect("examples") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let doc: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
            let problems: Vec<String> =
                validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
            assert!(problems.is_empty(), "{}: {problems:?}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} examples");
    let typo = serde_json::json!({"name": "x", "steps": [{"id": "a", "tool": "echo", "depend_on": ["b"]}]});
    assert!(!validator.is_valid(&typo), "an unknown field fits the schema");
    let wrong =
        serde_json::json!({"name": "x", "steps": [{"id": "a", "tool": "echo", "retry": {"max_attempts": "3"}}]});
    assert!(!validator.is_valid(&wrong), "a string for a number fits the schema");
}

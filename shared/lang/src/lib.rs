//! `weft-lang`, the language of Weft: how workflows are written, checked and understood.
//!
//! A workflow is a JSON document ([`definition::WorkflowDef`]) of steps that call tools
//! or nest control-flow constructs. Params pull values from earlier steps through
//! references (`{user.city}`); conditions decide what runs. [`validate::compile`] checks
//! a definition and produces a [`plan::Plan`], the form the coordinator executes and
//! [`analysis`] reads. This crate does no I/O beyond reading a file when asked, and needs
//! no async runtime: the wire protocol is `weft-protocol`, the client `weft-client`.
//!
//! # Layout
//!
//! - [`definition`]: the document model and its parser (errors with path, line, column).
//! - [`reference`]: reference paths, templates, resolution against a run's context.
//! - [`condition`]: `when` conditions as data, and their evaluation.
//! - [`catalogue`]: tool specs (name, JSON Schema of params) for validation and LLMs.
//! - [`validate`]: every problem of a definition at once, or a [`plan::Plan`].
//! - [`plan`]: validated steps, dependencies by kind, retry policies.
//! - [`planned`]: what a model-written plan may hold: its allowed tools, within its caps.
//! - [`graph`]: cycles, levels, longest paths, largest antichains.
//! - [`analysis`]: execution levels, maximal parallelism, critical path.
//! - [`export`]: Mermaid and DOT drawings.
//! - [`schema`]: the workflow format as a JSON Schema (`docs/workflow.schema.json`).
//! - [`limits`]: how much one workflow may ask: steps, iterations, patterns, and per run.
//!
//! # Example
//!
//! ```
//! use weft_lang::{definition::WorkflowDef, validate, analysis};
//!
//! let def = WorkflowDef::from_json(r#"{
//!   "name": "greet",
//!   "steps": [
//!     {"id": "user", "tool": "get_user", "params": {"user_id": "{input.id}"}},
//!     {"id": "hello", "tool": "echo", "params": {"text": "Hello {user.name}"}}
//!   ]
//! }"#).unwrap();
//! let plan = validate::compile(&def, None).unwrap();
//! let report = analysis::analyze(&plan, &analysis::Weights::default());
//! assert_eq!(report.levels, vec![vec!["user".to_string()], vec!["hello".to_string()]]);
//! ```

pub mod analysis;
pub mod catalogue;
pub mod condition;
pub mod definition;
pub mod export;
pub mod graph;
pub mod limits;
pub mod plan;
pub mod planned;
pub mod reference;
pub mod schema;
pub mod validate;

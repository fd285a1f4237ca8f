//! Compiled plans, shared by every run of the same definition.
//!
//! Validating a definition (its references, its params against the tools' JSON Schemas)
//! costs far more than a step does, and most runs repeat a definition seen a moment ago.
//! The supervisor keeps one cache for the definitions it reads from the log; the API keeps
//! another for the definitions it validates at submit, cleared whenever the tool catalogue
//! it validated against changes.

use std::collections::HashMap;
use std::sync::Arc;

use weft_lang::catalogue::Catalogue;
use weft_lang::definition::WorkflowDef;
use weft_lang::plan::Plan;
use weft_lang::validate::{self, Problems};

/// Plans by workflow name and version, a few different definitions of each.
#[derive(Debug, Default)]
pub(crate) struct Plans {
    by_name: HashMap<(String, u32), Vec<Arc<Plan>>>,
}

impl Plans {
    /// How many different definitions of one name and version are kept.
    const PER_VERSION: usize = 8;

    /// The cached plan of `def`, if it was compiled before.
    pub(crate) fn get(&self, def: &WorkflowDef) -> Option<Arc<Plan>> {
        self.by_name.get(&(def.name.clone(), def.version))?.iter().find(|p| p.source == *def).cloned()
    }

    /// Keeps `plan` for the next run of its definition (the oldest of its version goes
    /// when there are too many).
    pub(crate) fn insert(&mut self, plan: Arc<Plan>) {
        let cached = self.by_name.entry((plan.name.clone(), plan.version)).or_default();
        if cached.iter().any(|p| p.source == plan.source) {
            return;
        }
        if cached.len() == Self::PER_VERSION {
            cached.remove(0);
        }
        cached.push(plan);
    }

    /// The plan of `def`, compiled (against `catalogue` if given) unless it is cached.
    pub(crate) fn compile(&mut self, def: &WorkflowDef, catalogue: Option<&Catalogue>) -> Result<Arc<Plan>, Problems> {
        if let Some(plan) = self.get(def) {
            return Ok(plan);
        }
        let plan = Arc::new(validate::compile(def, catalogue)?);
        self.insert(plan.clone());
        Ok(plan)
    }

    /// Forgets every plan (the catalogue they were validated against changed).
    pub(crate) fn clear(&mut self) {
        self.by_name.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, tool: &str) -> WorkflowDef {
        serde_json::from_value(serde_json::json!({"name": name, "steps": [{"id": "a", "tool": tool}]}))
            .expect("a definition")
    }

    #[test]
    fn one_plan_per_definition_and_a_changed_definition_gets_its_own() {
        let mut plans = Plans::default();
        let first = plans.compile(&def("w", "echo"), None).expect("valid");
        let again = plans.compile(&def("w", "echo"), None).expect("valid");
        assert!(Arc::ptr_eq(&first, &again), "the same definition shares one plan");
        let other = plans.compile(&def("w", "sleep"), None).expect("valid");
        assert!(!Arc::ptr_eq(&first, &other), "same name and version, other content: another plan");
        assert_eq!(other.source, def("w", "sleep"));
        plans.clear();
        assert!(plans.get(&def("w", "echo")).is_none());
    }

    #[test]
    fn an_invalid_definition_is_not_cached() {
        let mut plans = Plans::default();
        let catalogue = Catalogue::default();
        assert!(plans.compile(&def("w", "nope"), Some(&catalogue)).is_err());
        assert!(plans.get(&def("w", "nope")).is_none());
    }

    #[test]
    fn at_most_a_few_definitions_per_version_are_kept() {
        let mut plans = Plans::default();
        for i in 0..Plans::PER_VERSION + 2 {
            plans.compile(&def("w", &format!("t{i}")), None).expect("valid");
        }
        assert!(plans.get(&def("w", "t0")).is_none(), "the oldest went");
        assert!(plans.get(&def("w", &format!("t{}", Plans::PER_VERSION + 1))).is_some());
        assert_eq!(plans.by_name[&("w".to_owned(), 1)].len(), Plans::PER_VERSION);
    }
}

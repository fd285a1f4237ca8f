//! The seed corpus: every example workflow, references, conditions, and a wire message of
//! each kind Weft reads.

use std::sync::OnceLock;

use serde_json::json;
use weft_lang::catalogue::Catalogue;

/// Seeds by kind.
pub(crate) struct Corpus {
    pub(crate) definitions: Vec<Vec<u8>>,
    pub(crate) references: Vec<Vec<u8>>,
    pub(crate) conditions: Vec<Vec<u8>>,
    pub(crate) wire: Vec<Vec<u8>>,
}

/// The seeds; the examples are read from the repository.
pub(crate) fn corpus() -> Corpus {
    let root = weft_tests::repo_root().join("examples");
    let mut definitions = Vec::new();
    for dir in [root.clone(), root.join("patterns")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
            if let Ok(bytes) = std::fs::read(&file) {
                definitions.push(bytes);
            }
        }
    }
    definitions.push(
        json!({"name": "all", "steps": [
            {"id": "a", "tool": "echo", "params": {"x": "{input.x}"}, "retry": {"max_attempts": 3}, "timeout": "1s"},
            {"id": "w", "wait": {"duration": "2s"}},
            {"id": "s", "signal": {"name": "go", "timeout": "5s", "default": 1}},
            {"id": "each", "for_each": {"items": "{input.items}", "as": "it", "concurrency": 2, "do": [
                {"id": "one", "tool": "echo", "params": {"v": "{it}"}, "compensate": {"tool": "echo"}}]}},
            {"id": "l", "loop": {"max_iterations": 3, "until": {"matches": ["{l.n}", "^3$"]}, "do": [{"id": "n", "tool": "echo"}]}},
            {"id": "r", "race": {"branches": [[{"id": "r1", "tool": "echo"}], [{"id": "r2", "tool": "echo"}]]}},
            {"id": "f", "fallback": [{"id": "f1", "tool": "fail"}, {"id": "f2", "tool": "echo"}]},
            {"id": "sw", "switch": {"on": "{input.x}", "cases": [{"when": {"equals": ["{input.x}", 1]}, "do": [{"id": "c1", "tool": "echo"}]}]}},
            {"id": "child", "workflow": {"name": "other", "input": {"x": 1}}, "when": {"exists": "{a.x}"}}
        ], "on_failure": "compensate", "output": {"a": "{a}", "each": "{each}"}})
        .to_string()
        .into_bytes(),
    );
    let references = ["{input.x}", "{a.b[0].c}", "{step.idempotency_key}", "x {a} y {{b}}", "{each[3].one.v}", "{}"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let conditions = [
        json!({"equals": ["{a.x}", 1]}),
        json!({"all": [{"exists": "{a}"}, {"not": {"matches": ["{a.s}", "^a+$"]}}]}),
        json!({"any": [{"greater_than": ["{a.n}", 2]}, {"in": ["{a.x}", [1, 2]]}]}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect();
    let run = "00000000-0000-0000-0000-00000000001d";
    let wire = [
        json!({"run_id": run, "step_id": "a", "attempt": 1, "worker": "w", "started_ms": 1, "finished_ms": 2, "outcome": {"ok": {"x": 1}}}),
        json!({"run_id": run, "step_id": "each[0].one", "attempt": 1, "compensation": true, "worker": "w", "started_ms": 18446744073709551615u64, "finished_ms": 0, "outcome": {"err": {"message": "m", "code": "TIMEOUT", "retryable": true}}}),
        json!({"entry": "input", "input": {"kind": "cancel", "reason": "r", "compensate": true}}),
        json!({"entry": "input", "input": {"kind": "signal", "name": "go", "data": {"ok": true}}}),
        json!({"entry": "input", "input": {"kind": "timer", "timer": {"kind": "retry", "step": "a", "attempt": 1}}}),
        json!({"entry": "input", "input": {"kind": "granted", "step": "a", "attempt": 1, "pool": "gpu"}}),
        json!({"entry": "created", "definition": {"name": "w", "steps": [{"id": "a", "tool": "echo"}]}, "input": {}}),
        json!({"run_id": run, "step_id": "a", "attempt": 1, "tool": "echo", "params": {}, "idempotency_key": "k", "reply_to": "weft.in.0.x"}),
        json!({"op": "submit", "definition": {"name": "w", "steps": []}, "input": null}),
        json!({"capacity": 2, "holders": [{"run_id": run, "step": "a", "attempt": 1, "units": 1, "since_ms": 0, "log": "x"}], "waiters": []}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect();
    Corpus { definitions, references, conditions, wire }
}

/// The built-in and demo tools, as a catalogue.
pub(crate) fn catalogue() -> Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| {
            let mut registry = weft_worker::Registry::with_builtins();
            let _ = weft_worker::demo::register(&mut registry);
            let mut catalogue = Catalogue::default();
            for spec in registry.specs() {
                catalogue.insert(spec.clone());
            }
            catalogue
        })
        .clone()
}

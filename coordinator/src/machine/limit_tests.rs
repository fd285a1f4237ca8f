//! Run limits, enforced by the machine where the work happens: items of a `for_each`, step
//! instances (a `for_each` of `for_each`s multiplies), tasks in flight, and the bytes of
//! outputs a run holds.

use serde_json::{Value, json};
use weft_lang::limits::{LIMIT_EXCEEDED, RunLimits};
use weft_protocol::wire::RunStatus;

use super::tests::{dispatched, ok, run};
use super::*;

fn limited(def: Value, input: Value, limits: RunLimits) -> Run {
    run(def, input).with_limits(limits)
}

fn nested(n: usize) -> (Value, Value) {
    let def = json!({"name": "square", "steps": [{"id": "outer", "for_each": {"items": "{input.xs}", "do": [
        {"id": "inner", "for_each": {"items": "{input.xs}", "do": [{"id": "x", "tool": "t"}]}}
    ]}}]});
    (def, json!({"xs": (0..n).collect::<Vec<_>>()}))
}

fn failure(r: &Run) -> String {
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed, "{record:?}");
    record.errors.join("; ")
}

#[test]
fn a_for_each_over_more_items_than_the_limit_fails_naming_it() {
    let def = json!({"name": "wide", "steps": [{"id": "each", "for_each": {"items": "{input.xs}", "do": [{"id": "x", "tool": "t"}]}}]});
    let mut r = limited(def, json!({"xs": [1, 2, 3, 4]}), RunLimits { max_items: 3, ..RunLimits::default() });
    let effects = r.apply(Input::Start, 0);
    assert!(dispatched(&effects).is_empty(), "nothing runs: {effects:?}");
    let errors = failure(&r);
    assert!(errors.contains("the number of items is 4, more than the limit of 3 (WEFT_MAX_ITEMS)"), "{errors}");
    assert!(errors.contains(LIMIT_EXCEEDED) && errors.contains("each"), "{errors}");
}

#[test]
fn outputs_past_the_bytes_a_run_may_hold_fail_the_step_that_brought_them() {
    let def = json!({"name": "big", "steps": [
        {"id": "a", "tool": "t"}, {"id": "b", "tool": "t", "depends_on": ["a"]}
    ]});
    let mut r = limited(def, Value::Null, RunLimits { max_output_bytes: 1_000, ..RunLimits::default() });
    let a = dispatched(&r.apply(Input::Start, 0));
    let b = dispatched(&r.apply(ok(&a[0], json!("x".repeat(600))), 1));
    assert_eq!(b.len(), 1, "602 bytes are within 1,000");
    r.apply(ok(&b[0], json!("y".repeat(600))), 2);
    let errors = failure(&r);
    assert!(errors.contains("step `b` failed"), "{errors}");
    assert!(
        errors.contains(
            "the step outputs the run holds is 1204 bytes, more than the limit of 1000 (WEFT_MAX_OUTPUT_BYTES)"
        ),
        "{errors}"
    );
}

#[test]
fn a_million_nested_instances_stop_at_the_limit_of_instances() {
    let (def, input) = nested(1_000);
    let mut r = run(def, input);
    let effects = r.apply(Input::Start, 0);
    // The limit is reached while the bodies open; what was dispatched is cancelled.
    let errors = failure(&r);
    assert!(errors.contains("WEFT_MAX_INSTANCES") && errors.contains(LIMIT_EXCEEDED), "{errors}");
    assert!(r.insts.len() <= RunLimits::default().max_instances, "{} instances", r.insts.len());
    let tasks = dispatched(&effects);
    assert!(tasks.len() <= RunLimits::default().max_in_flight, "{} tasks", tasks.len());
}

#[test]
fn within_the_limit_nested_for_eaches_complete() {
    let (def, input) = nested(3);
    let mut r = limited(def, input, RunLimits { max_instances: 1 + 3 + 3 * 3 * 2, ..RunLimits::default() });
    let mut pending = dispatched(&r.apply(Input::Start, 0));
    let mut now = 1;
    while let Some(task) = pending.pop() {
        pending.extend(dispatched(&r.apply(ok(&task, json!(now)), now)));
        now += 1;
    }
    assert_eq!(r.record().status, RunStatus::Completed, "{:?}", r.record().errors);
}

#[test]
fn tasks_in_flight_wait_for_a_slot_under_the_limit() {
    let def = json!({"name": "wide", "steps": [{"id": "each", "for_each": {"items": "{input.xs}", "do": [{"id": "x", "tool": "t"}]}}]});
    let mut r = limited(def, json!({"xs": [1, 2, 3, 4, 5]}), RunLimits { max_in_flight: 2, ..RunLimits::default() });
    let first = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(first.len(), 2, "{first:?}");
    let next = dispatched(&r.apply(ok(&first[0], json!(1)), 1));
    assert_eq!(next.len(), 1, "one finished, one more starts: {next:?}");
    let mut pending = vec![first[1].clone(), next[0].clone()];
    let mut now = 2;
    while let Some(task) = pending.pop() {
        let more = dispatched(&r.apply(ok(&task, json!(now)), now));
        assert!(r.running.count() <= 2);
        pending.extend(more);
        now += 1;
    }
    assert_eq!(r.record().status, RunStatus::Completed, "{:?}", r.record().errors);
}

/// Time and memory of a wide `for_each` by its width, printed (a measurement, not a test:
/// `cargo test --release -p weft-coordinator --lib a_wide_for_each_scales -- --ignored
/// --nocapture`). Figures of 2026-12-02 are in BENCHMARKS.md.
#[test]
#[ignore]
fn a_wide_for_each_scales_linearly() {
    for n in [1_000usize, 10_000, 100_000, 200_000] {
        let def = json!({"name": "wide", "steps": [{"id": "each", "for_each": {"items": "{input.xs}", "do": [{"id": "x", "tool": "t"}]}}]});
        let mut r = limited(
            def,
            json!({"xs": (0..n).collect::<Vec<_>>()}),
            RunLimits { max_items: 1_000_000, max_instances: 10_000_000, ..RunLimits::default() },
        );
        let t = std::time::Instant::now();
        let mut pending = dispatched(&r.apply(Input::Start, 0));
        let start = t.elapsed();
        let mut now = 1;
        while let Some(task) = pending.pop() {
            pending.extend(dispatched(&r.apply(ok(&task, json!(now)), now)));
            now += 1;
        }
        let run = t.elapsed();
        let rss = |field: &str| {
            std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
                s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
        };
        let held = rss("VmRSS");
        let rec = r.record();
        eprintln!("n={n} held by the run: {held:?} kB RSS");
        eprintln!(
            "n={n} start {start:?} all {run:?} record {:?} {:?} rss {:?} kB hwm {:?} kB",
            t.elapsed() - run,
            rec.status,
            rss("VmRSS"),
            rss("VmHWM")
        );
        drop(rec);
        drop(r);
    }
}

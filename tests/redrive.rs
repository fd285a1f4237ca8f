//! `weft redrive` and `weft terminate`, over real processes. A failed or cancelled run
//! carries on from where it stopped: what completed is not done again, what failed runs
//! again with the next attempt numbers, and a coordinator that takes the run over
//! mid-redrive rebuilds it from the redrive's log entry. A rerun from a step is a new,
//! linked run that carries over what came before the step. A terminated run undoes nothing.

use std::process::Command;

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{RunRecord, RunStatus, StepStatus};
use weft_tests::cluster::{Cluster, FAST};
use weft_tests::{bin, repo_root, text};

fn inline(def: &Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

fn weft_at(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin("weft")).args(args).args(["--nats", url]).current_dir(repo_root()).output().expect("weft runs")
}

fn attempts(record: &RunRecord, path: &str) -> Vec<(u32, bool)> {
    record.steps[path].attempts.iter().map(|a| (a.attempt, a.ok)).collect()
}

/// A run fails in a `for_each` item after its retries; the redrive lists that step, does
/// nothing without `--yes`, needs the inline definition, then completes the run: the step
/// and the item that had completed keep their attempts (not run again), the failed item's
/// next attempt is 3 (with a retry budget of its own, which it does not need: `fail` with
/// `times: 2` succeeds from attempt 3), and the run keeps its creation time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_carries_on_from_its_failed_step() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let def = json!({"name": "redrive_me", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}},
        {"id": "each", "for_each": {"items": "{input.times}", "as": "t", "do": [
            {"id": "item", "tool": "fail", "params": {"message": "not yet", "times": "{t}"},
             "retry": {"max_attempts": 2, "backoff": "10ms"}}]}},
        {"id": "after", "tool": "echo", "params": {"a": "{a.n}", "each": "{each}"}}
    ], "output": "{after}"});
    let workflow = inline(&def);
    let failed = client.run(&workflow, json!({"times": [0, 2]})).await.expect("ran");
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    assert_eq!(attempts(&failed, "each[1].item"), [(1, false), (2, false)]);
    let run_id = failed.run_id.to_string();
    let url = cluster.nats.url.clone();

    // Without --yes: what would run again, and nothing done.
    let out = weft_at(&url, &["redrive", &run_id]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("each[1].item") && stdout.contains("attempt 3 on"), "{stdout}");
    assert!(stdout.contains(&format!("key {run_id}/each[1].item")), "{stdout}");
    assert!(!stdout.contains("  a ") && !stdout.contains("each[0].item"), "completed steps are not listed: {stdout}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(client.status(failed.run_id).await.expect("status").status, RunStatus::Failed);

    // Submitted inline: the definition is needed, and only the one it was submitted with.
    let out = weft_at(&url, &["redrive", &run_id, "--yes"]);
    assert_eq!(out.status.code(), Some(5), "{:?}", text(&out));
    assert!(text(&out).1.contains("submitted inline"), "{:?}", text(&out));
    let dir = tempfile::tempdir().expect("dir");
    let other = dir.path().join("other.json");
    let mut changed = def.clone();
    changed["steps"][0]["params"]["n"] = json!(2);
    std::fs::write(&other, changed.to_string()).expect("written");
    let out = weft_at(&url, &["redrive", &run_id, other.to_str().expect("path"), "--yes"]);
    assert_eq!(out.status.code(), Some(5), "{:?}", text(&out));
    assert!(text(&out).1.contains("not the definition"), "{:?}", text(&out));

    let file = dir.path().join("redrive_me.json");
    std::fs::write(&file, def.to_string()).expect("written");
    let out = weft_at(&url, &["redrive", &run_id, file.to_str().expect("path"), "--yes"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", cluster.logs());
    let done = client.status(failed.run_id).await.expect("status");
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.created_ms, failed.created_ms, "a redrive does not make the run newer");
    assert_eq!(done.steps["a"].attempts, failed.steps["a"].attempts, "a completed step is not run again");
    assert_eq!(done.steps["each[0].item"].attempts, failed.steps["each[0].item"].attempts);
    assert_eq!(attempts(&done, "each[1].item"), [(1, false), (2, false), (3, true)]);
    assert_eq!(done.steps["each[1].item"].output, Some(json!({"attempt": 3})));
    assert_eq!(done.output, Some(json!({"a": 1, "each": [{"attempt": 1}, {"attempt": 3}]})), "{done:?}");
    assert!(done.errors.is_empty(), "{:?}", done.errors);

    // Only a run that failed, timed out or was cancelled carries on.
    let out = weft_at(&url, &["redrive", &run_id, file.to_str().expect("path"), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("cannot be redriven: it is completed"), "{:?}", text(&out));
}

/// A cancelled run waiting for a signal is redriven, and its coordinator is SIGKILLed
/// while the redriven run waits: the coordinator that takes its partition over rebuilds
/// it from the redrive's log entry (the step that had completed is still not run again),
/// and the signal completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_run_survives_a_takeover() {
    let mut cluster = Cluster::start_with(1, 1, FAST).await;
    let client = cluster.client().await;
    let workflow = inline(&json!({"name": "redrive_wait", "version": 1, "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}},
        {"id": "approval", "signal": {"name": "go"}, "depends_on": ["a"]},
        {"id": "after", "tool": "echo", "params": {"ok": "{approval.ok}", "n": "{a.n}"}}
    ], "output": "{after}"}));
    client.deploy(&workflow).await.expect("deployed");
    let run_id = client.submit(&workflow, Value::Null).await.expect("submitted");
    let waiting =
        wait_for(&client, run_id, |r| r.steps.get("approval").is_some_and(|s| s.status == StepStatus::Running)).await;
    client.cancel(run_id, Some("not now".into())).await.expect("cancelled");
    let cancelled = client.wait(run_id).await.expect("ended");
    assert_eq!(cancelled.status, RunStatus::Cancelled);

    // Registered: no file needed.
    client.redrive(run_id, None).await.expect("redriven");
    wait_for(&client, run_id, |r| {
        r.status == RunStatus::Running && r.steps.get("approval").is_some_and(|s| s.status == StepStatus::Running)
    })
    .await;
    cluster.crash_coordinator(FAST);
    // The new coordinator owns the run once it answers with it waiting again.
    wait_for(&client, run_id, |r| r.signals.contains_key("go") && r.status == RunStatus::Running).await;
    let mut signalled = false;
    for _ in 0..100 {
        if client.signal(run_id, "go", json!({"ok": true})).await.is_ok() {
            signalled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(signalled, "the signal was never accepted\n{}", cluster.logs());
    let done = client.wait(run_id).await.expect("ended");
    assert_eq!(done.status, RunStatus::Completed, "{done:?}\n{}", cluster.logs());
    assert_eq!(done.output, Some(json!({"ok": true, "n": 1})));
    assert_eq!(done.steps["a"].attempts, waiting.steps["a"].attempts, "the completed step is not run again");
}

/// Polls the run's record until `ok` holds (up to 30 s); returns it.
async fn wait_for(client: &weft_client::WeftClient, run_id: uuid::Uuid, ok: impl Fn(&RunRecord) -> bool) -> RunRecord {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(record) = client.status(run_id).await
            && ok(&record)
        {
            return record;
        }
        assert!(std::time::Instant::now() < deadline, "run {run_id} never got there");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `weft terminate` ends a run of a saga at once, undoing nothing: no compensation runs
/// (a failure would have run them), the running tool is told to stop, and the run ends
/// `cancelled`, noted as terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_ends_a_saga_at_once_and_undoes_nothing() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let workflow = inline(&json!({"name": "terminate_me", "on_failure": "compensate", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}, "compensate": {"tool": "echo", "params": {"undo": 1}}},
        {"id": "nap", "tool": "sleep", "params": {"ms": 30000}, "depends_on": ["a"]}
    ]}));
    let run_id = client.submit(&workflow, Value::Null).await.expect("submitted");
    wait_for(&client, run_id, |r| r.steps.get("nap").is_some_and(|s| s.status == StepStatus::Running)).await;
    let out = weft_at(&cluster.nats.url, &["terminate", &run_id.to_string(), "--reason", "wrong order"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let done = client.wait(run_id).await.expect("ended");
    assert_eq!(done.status, RunStatus::Cancelled, "{done:?}");
    assert!(done.errors.iter().any(|e| e.contains("terminated: wrong order")), "{:?}", done.errors);
    assert!(done.steps["a"].compensation.is_none(), "nothing undone: {:?}", done.steps["a"]);
    assert_eq!(done.steps["nap"].status, StepStatus::Cancelled);
}

/// `weft rerun --from`: a new run, linked to the old one, in which the step named and what
/// waits for it run again, and the other steps' outputs are carried over (not run): here
/// `b` reads `a`'s carried-over output although the new input differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_from_a_step_carries_over_what_comes_before_it() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let def = json!({"name": "rerun_me", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": "{input.n}"}},
        {"id": "b", "tool": "echo", "params": {"m": "{a.n}"}},
        {"id": "c", "tool": "echo", "params": {"k": "{b.m}"}},
        {"id": "d", "tool": "echo", "params": {"z": 1}}
    ], "output": {"c": "{c.k}", "d": "{d.z}"}});
    let old = client.run(&inline(&def), json!({"n": 1})).await.expect("ran");
    assert_eq!(old.status, RunStatus::Completed);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("rerun_me.json");
    std::fs::write(&file, def.to_string()).expect("written");
    let (url, id, path) = (cluster.nats.url.clone(), old.run_id.to_string(), file.to_str().expect("path").to_owned());

    let out = weft_at(&url, &["rerun", &id, &path, "--from", "b"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let listed: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("  ")).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(listed, ["b", "c"], "{stdout}");
    let out = weft_at(&url, &["rerun", &id, &path, "--from", "nope", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("those are: a, b, c, d"), "{:?}", text(&out));

    let out = weft_at(&url, &["rerun", &id, &path, "--from", "b", "--input", "{\"n\": 5}", "--yes"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", cluster.logs());
    let new_id: uuid::Uuid = stderr
        .split_whitespace()
        .find_map(|w| w.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no run id in {stderr}"));
    let new = client.status(new_id).await.expect("the new run");
    assert_ne!(new_id, old.run_id);
    assert_eq!(new.status, RunStatus::Completed, "{new:?}");
    let of = new.rerun_of.clone().expect("linked");
    assert_eq!((of.run_id, of.from.as_str()), (old.run_id, "b"));
    assert_eq!(new.input, json!({"n": 5}));
    for carried in ["a", "d"] {
        assert!(new.steps[carried].attempts.is_empty(), "{carried} was run: {:?}", new.steps[carried]);
        assert_eq!(new.steps[carried].output, old.steps[carried].output);
    }
    assert_eq!(attempts(&new, "b"), [(1, true)]);
    assert_eq!(new.steps["b"].output, Some(json!({"m": 1})), "b read a's carried-over output");
    assert_eq!(new.output, Some(json!({"c": 1, "d": 1})));
    assert_eq!(client.status(old.run_id).await.expect("old").status, RunStatus::Completed, "the old run is untouched");
}

//! Model calls as steps: the `llm` tool of a real worker process against the scripted
//! OpenAI-compatible server, with a real nats-server and coordinator.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt as _;
use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{RunStatus, StepStatus};
use weft_tests::cluster::Cluster;
use weft_tests::model::{Received, Reply, ScriptedModel};

const KEY: &str = "sk-weft-test-3f9a1c77d2e04b6b";

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

/// What the scripted model answers, by the prompt's first word, counting the requests of each.
fn script() -> impl Fn(&Received, usize) -> Reply + Send + Sync {
    let seen: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    move |request: &Received, _| {
        let first = request.body["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
        let word = first.split_whitespace().next().unwrap_or_default().to_owned();
        let n = {
            let mut seen = seen.lock().expect("script lock");
            let n = seen.entry(word.clone()).or_default();
            *n += 1;
            *n
        };
        match (word.as_str(), n) {
            // A structured answer that misses the schema, then one that fits.
            ("city?", 1) => Reply::json(&json!({"town": "Paris"}), 30, 5),
            ("city?", _) => Reply::json(&json!({"city": "Paris"}), 45, 6),
            ("busy?", 1) => Reply::error(429, "Rate limit reached", None).with_header("retry-after", "1"),
            ("busy?", _) => Reply::text(&format!("answered: {first}"), 10, 3),
            ("tools?", _) => Reply::tool_calls(&[("get_user", json!({"user_id": "7"}))]),
            // A provider echoing the key in its error, as OpenAI's 401 does.
            ("huge?", _) => Reply::error(
                400,
                &format!("This model's maximum context length is 8192 tokens (key {KEY})"),
                Some("context_length_exceeded"),
            ),
            _ => Reply::error(500, "the script has no answer", None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_steps_answer_in_shape_wait_out_rate_limits_and_never_show_the_key() {
    let model = ScriptedModel::start(script());
    let env =
        [("WEFT_LLM_BASE_URL", model.base_url.as_str()), ("WEFT_LLM_API_KEY", KEY), ("WEFT_LLM_MODEL", "default-1")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "llm_steps", "steps": [
        {"id": "city", "tool": "llm", "params": {"prompt": "city? Where is the Louvre?", "model": "big-1",
            "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": {
                "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                "additionalProperties": false}}}}},
        {"id": "busy", "tool": "llm", "params": {"prompt": "busy? weather in {city.city}", "max_tokens": 50},
         "retry": {"max_attempts": 3, "backoff": "10ms"}},
        {"id": "calls", "tool": "llm", "params": {"prompt": "tools? find user 7", "tools": [
            {"type": "function", "function": {"name": "get_user", "parameters": {"type": "object"}}}]}},
        {"id": "huge", "tool": "llm", "params": {"prompt": "huge? everything"},
         "retry": {"max_attempts": 3, "backoff": "10ms"}, "continue_on_error": true}
    ]}));
    let record = client.run(&def, Value::Null).await.expect("the run ends");
    let logs = cluster.logs();
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{logs}");

    // Structured output: the parsed object, after one repair sent with the errors.
    let city = &record.steps["city"];
    assert_eq!(city.output, Some(json!({"city": "Paris"})));
    let usage = city.attempts[0].usage.clone().expect("usage recorded");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.model.as_str()), (75, 11, "scripted-1"));
    let received = model.received();
    let city_calls: Vec<&Received> = received
        .iter()
        .filter(|r| r.body["messages"][0]["content"].as_str().is_some_and(|c| c.starts_with("city?")))
        .collect();
    assert_eq!(city_calls.len(), 2);
    assert_eq!(city_calls[0].body["model"], "big-1");
    assert_eq!(city_calls[0].body["response_format"]["json_schema"]["name"], "place");
    assert!(city_calls[1].last_message().contains("does not match the required JSON Schema"), "{:?}", city_calls[1]);

    // 429 with Retry-After: a retryable failure, the retry no sooner than asked.
    let busy = &record.steps["busy"];
    assert_eq!(busy.attempts.len(), 2, "{busy:#?}");
    let first = busy.attempts[0].error.clone().expect("the 429");
    assert_eq!((first.code.as_deref(), first.retry_after_ms), (Some("RATE_LIMITED"), Some(1000)));
    let waited = busy.attempts[1].dispatched_ms - busy.attempts[0].finished_ms.expect("ended");
    assert!(waited >= 1000, "retried after {waited} ms");
    assert_eq!(busy.output.as_ref().map(|o| o["content"].clone()), Some(json!("answered: busy? weather in Paris")));
    let busy_call = received.iter().find(|r| r.last_message().starts_with("busy?")).expect("busy asked");
    assert_eq!(
        (busy_call.body["model"].as_str(), busy_call.body["max_tokens"].as_u64()),
        (Some("default-1"), Some(50))
    );

    // Tool calls come back as data.
    let calls = record.steps["calls"].output.clone().expect("calls output");
    assert_eq!(calls["tool_calls"][0]["name"], "get_user");
    assert_eq!(calls["tool_calls"][0]["arguments"], json!({"user_id": "7"}));
    assert_eq!(calls["finish_reason"], "tool_calls");

    // A context-length error is not retried.
    let huge = &record.steps["huge"];
    assert_eq!((huge.status, huge.attempts.len()), (StepStatus::Failed, 1), "{huge:#?}");
    assert_eq!(huge.attempts[0].error.as_ref().and_then(|e| e.code.as_deref()), Some("CONTEXT_LENGTH"));

    // The key went to the provider, and nowhere else.
    assert!(received.iter().all(|r| r.header("authorization") == Some(&format!("Bearer {KEY}"))));
    let mut events = Vec::new();
    let mut watch = Box::pin(client.watch(record.run_id).await.expect("events"));
    while let Some(event) = watch.next().await {
        events.push(serde_json::to_string(&event.expect("event")).expect("json"));
    }
    let stored = serde_json::to_string(&client.status(record.run_id).await.expect("record")).expect("json");
    for (what, text) in [("record", stored), ("events", events.join("\n")), ("logs", cluster.logs())] {
        assert!(!text.contains(KEY) && !text.contains("3f9a1c77"), "the key is in the {what}");
    }
    assert!(huge.attempts[0].error.as_ref().is_some_and(|e| e.message.contains("***")), "{huge:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_stops_a_run_before_it_overspends_and_a_resume_adds_to_it() {
    let model = ScriptedModel::start(|_, _| Reply::text("a line", 300, 100));
    let env = [("WEFT_LLM_BASE_URL", model.base_url.as_str()), ("WEFT_LLM_MODEL", "m")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    // Six calls of at most ~210 tokens fit in 3,000; after they spent 2,400, a summary
    // holding ~1,010 does not.
    let def = inline(json!({"name": "budgeted", "budget": {"tokens": 3000}, "steps": [
        {"id": "lines", "for_each": {"items": [1, 2, 3, 4, 5, 6], "concurrency": 6, "do": [
            {"id": "line", "tool": "llm", "params": {"prompt": "line {item}", "max_tokens": 200}}]}},
        {"id": "summary", "tool": "llm", "params": {"prompt": "summarise {lines}", "max_tokens": 1000}}
    ]}));
    let run_id = client.submit(&def, Value::Null).await.expect("submitted");
    let stopped =
        weft_tests::wait::record(&client, run_id, "budget_exceeded", |r| r.status == RunStatus::BudgetExceeded).await;
    assert_eq!(stopped.spent.map(|s| (s.tokens, s.reserved_tokens)), Some((2400, 0)), "{stopped:#?}");
    assert_eq!(stopped.steps["summary"].status, StepStatus::Pending);
    assert_eq!(model.received().len(), 6, "the summary was never asked for");
    // `weft status` shows what was spent against the budget; `weft resume --add-tokens` adds.
    let weft = |args: &[&str]| {
        let out = std::process::Command::new(weft_tests::bin("weft"))
            .args(args)
            .args(["--nats", &cluster.nats.url])
            .output()
            .expect("weft runs");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let status = weft(&["status", &run_id.to_string()]);
    assert!(status.contains("budget_exceeded") && status.contains("2400 tokens of 3000"), "{status}");
    assert!(status.contains("400 tokens (scripted-1)"), "per attempt: {status}");
    let resumed = weft(&["resume", &run_id.to_string(), "--add-tokens", "2000"]);
    assert!(resumed.contains("resuming"), "{resumed}");
    let record = client.wait(run_id).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.spent.map(|s| s.tokens), Some(2800));
    assert_eq!(record.budget.and_then(|b| b.tokens), Some(5000));
    let mut watch = Box::pin(client.watch(run_id).await.expect("events"));
    let mut exceeded = false;
    while let Some(event) = watch.next().await {
        exceeded |= matches!(event.expect("event").kind, weft_protocol::wire::EventKind::BudgetExceeded { .. });
    }
    assert!(exceeded, "the stop is an event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_parallel_calls_keep_a_shared_token_rate_limit_and_none_fails() {
    let model = ScriptedModel::start(|_, _| Reply::text("ok", 100, 50));
    // The limit counts over 2 s here instead of a minute, so the test waits seconds.
    let (window_ms, limit) = (2000, 1000);
    let env = [
        ("WEFT_LLM_BASE_URL", model.base_url.as_str()),
        ("WEFT_LLM_MODEL", "m"),
        ("WEFT_LLM_TPM", "1000"),
        ("WEFT_LLM_RATE_WINDOW", "2s"),
    ];
    // Two workers share the limit through the bucket; three runs share the workers.
    let cluster = Cluster::start_with(1, 2, &env).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "limited", "steps": [
        {"id": "calls", "for_each": {"items": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "concurrency": 10, "do": [
            {"id": "call", "tool": "llm", "params": {"prompt": "call {item}", "max_tokens": 180}}]}}
    ]}));
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(client.submit(&def, Value::Null).await.expect("submitted"));
    }
    for run in runs {
        let record = client.wait(run).await.expect("the run ends");
        assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
        for (path, step) in record.steps.iter().filter(|(p, _)| p.ends_with(".call")) {
            assert_eq!(step.attempts.len(), 1, "{path} failed an attempt: {step:#?}");
        }
    }
    let received = model.received();
    assert_eq!(received.len(), 30);
    // In no window of 2 s did the provider see more than 1,000 tokens (150 per call).
    let mut times: Vec<u64> = received.iter().map(|r| r.at_ms).collect();
    times.sort_unstable();
    for (i, start) in times.iter().enumerate() {
        let within = times[i..].iter().take_while(|t| **t < start + window_ms).count() as u64;
        assert!(within * 150 <= limit, "{within} calls within {window_ms} ms from {start}: {times:?}");
    }
    let span = times[29] - times[0];
    assert!(span >= 4 * window_ms, "30 calls of 150 tokens under 1,000 per window span at least 4 windows: {span} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_published_piece_by_piece_and_watch_prints_it() {
    let chunk = |text: &str| json!({"model": "scripted-1", "choices": [{"index": 0, "delta": {"content": text}}]});
    let pieces = ["Weft ", "streams ", "tokens."];
    let mut events: Vec<Value> = pieces.iter().map(|p| chunk(p)).collect();
    events.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    events.push(json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}));
    let model = ScriptedModel::start(move |_, _| Reply::Stream(events.clone()));
    let env = [("WEFT_LLM_BASE_URL", model.base_url.as_str()), ("WEFT_LLM_MODEL", "m")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    // A pause first, so `weft watch` is listening before the model writes.
    let def = inline(json!({"name": "streamed", "steps": [
        {"id": "pause", "tool": "sleep", "params": {"ms": 1500}},
        {"id": "say", "tool": "llm", "depends_on": "pause", "params": {"prompt": "say it", "stream": true}}
    ]}));
    let run_id = uuid::Uuid::now_v7();
    let mut deltas = Box::pin(client.deltas(run_id).await.expect("listening"));
    client.submit_with_id(run_id, &def, Value::Null).await.expect("submitted");
    let watch = std::process::Command::new(weft_tests::bin("weft"))
        .args(["watch", &run_id.to_string(), "--nats", &cluster.nats.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weft watch runs");
    let mut heard = Vec::new();
    while let Some(delta) = deltas.next().await {
        let done = delta.done;
        heard.push(delta);
        if done {
            break;
        }
    }
    let texts: Vec<&str> = heard.iter().filter(|d| !d.done).map(|d| d.text.as_str()).collect();
    assert_eq!(texts, pieces, "{heard:?}");
    let seqs: Vec<u64> = heard.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    assert!(heard.iter().all(|d| d.step_id == "say" && d.attempt == 1));
    let record = client.wait(run_id).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    let say = &record.steps["say"];
    assert_eq!(say.output.as_ref().map(|o| o["content"].clone()), Some(json!("Weft streams tokens.")));
    assert_eq!(say.attempts[0].usage.as_ref().map(|u| u.total()), Some(15));
    let streamed = model.received()[0].body.clone();
    assert_eq!(
        (streamed["stream"].clone(), streamed["stream_options"]["include_usage"].clone()),
        (json!(true), json!(true))
    );
    let out = watch.wait_with_output().expect("weft watch ends");
    let printed = String::from_utf8_lossy(&out.stderr);
    assert!(printed.contains("say writes: Weft streams tokens."), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triage_example_classifies_routes_and_replies_within_its_budget() {
    let model = ScriptedModel::start(|request: &Received, _| {
        if request.body["stream"] == json!(true) {
            let piece = |t: &str| json!({"choices": [{"index": 0, "delta": {"content": t}}]});
            return Reply::Stream(vec![
                piece("Sorry about the double charge; "),
                piece("a refund is on its way."),
                json!({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 12}}),
            ]);
        }
        Reply::json(&json!({"category": "billing", "urgent": true}), 60, 9)
    });
    let env = [("WEFT_LLM_BASE_URL", model.base_url.as_str()), ("WEFT_LLM_MODEL", "m")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    let def = WorkflowDef::load(&weft_tests::repo_root().join("examples/llm/triage.json")).expect("parses");
    let record = client.run(&def, json!({"message": "I was charged twice"})).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(
        record.output,
        Some(json!({"category": "billing", "urgent": true,
                    "reply": "Sorry about the double charge; a refund is on its way."}))
    );
    assert_eq!(record.steps["page_on_call"].status, StepStatus::Completed);
    assert_eq!(record.spent.map(|s| s.tokens), Some(121));
}

use serde_json::{Value, json};
use weft_protocol::wire::codes;

use super::*;

fn call(name: &str, params: Value) -> Result<Value, ToolError> {
    let f = find(name).unwrap_or_else(|| panic!("no function for `{name}`"));
    let Value::Object(params) = params else { panic!("params must be an object") };
    f(&params)
}

fn code(result: Result<Value, ToolError>) -> Option<String> {
    result.expect_err("fails").code
}

#[test]
fn seed_lab_tools() {
    let out = call(
        "aggregate_user_data",
        json!({"profile": {"id": "123", "name": "Alice"}, "orders": {"user_id": "123", "orders": ["Order1", "Order2"]},
               "reviews": {"user_id": "123", "reviews": ["Review1"]}}),
    );
    assert_eq!(out, Ok(json!({"profile": {"id": "123", "name": "Alice"}, "order_count": 2, "review_count": 1})));
    assert_eq!(
        code(call("aggregate_user_data", json!({"profile": {}, "orders": {}, "reviews": {"reviews": []}}))),
        Some(codes::BAD_PARAMS.into())
    );
    assert_eq!(call("calculate_total", json!({"orders": ["Order1", "Order2"]})), Ok(json!({"total": 100.0})));
}

#[test]
fn data_pipeline_chain() {
    let rows = json!([{"id": 1, "value": 10}, {"id": 2, "value": null}, {"id": 3, "value": 30}]);
    let fetched = json!({"endpoint": "/data", "rows": rows});
    let validated = call("validate_data", json!({"data": fetched})).expect("validates");
    assert_eq!(
        validated,
        json!({"rows": [{"id": 1, "value": 10}, {"id": 3, "value": 30}], "dropped": [{"id": 2, "value": null}]})
    );
    let transformed = call("transform_data", json!({"data": validated})).expect("transforms");
    assert_eq!(
        transformed,
        json!({"rows": [{"id": 1, "value": 10, "scaled": 1.0}, {"id": 3, "value": 30, "scaled": 3.0}]})
    );
    assert_eq!(call("analyze_method_a", json!({"data": transformed})), Ok(json!({"method": "a", "mean": 20.0})));
    assert_eq!(call("analyze_method_b", json!({"data": transformed})), Ok(json!({"method": "b", "max": 30})));
    assert_eq!(code(call("analyze_method_a", json!({"data": {"rows": []}}))), Some(codes::BAD_PARAMS.into()));

    let analysis = call("analyze", json!({"data": {"records": [3, 5, 10], "source": "demo"}})).expect("analyses");
    assert_eq!(analysis, json!({"count": 3, "sum": 18, "mean": 6.0}));
    assert_eq!(analysis.to_string(), r#"{"count":3,"sum":18,"mean":6.0}"#);
}

#[test]
fn outfits_and_summaries() {
    let outfit = |t: i64, c: &str| call("recommend_outfit", json!({"temperature": t, "condition": c})).expect("outfit");
    assert_eq!(outfit(18, "rainy"), json!({"outfit": "Raincoat, umbrella, boots"}));
    assert_eq!(outfit(10, "sunny"), json!({"outfit": "Jacket, long pants"}));
    assert_eq!(outfit(15, "sunny"), json!({"outfit": "T-shirt, shorts"}));

    let articles = json!([{"title": "a #1"}, {"title": "a #2"}]);
    assert_eq!(call("summarize_text", json!({"articles": articles})), Ok(json!({"summary": "a #1; a #2", "count": 2})));
    assert_eq!(
        call("send_summary_email", json!({"recipient": "r@x", "summary": "héllo"})),
        Ok(json!({"sent": true, "to": "r@x", "length": 5}))
    );
    let summary = call(
        "summarize_data",
        json!({"weather": {"location": "London", "temp": 18, "condition": "rainy"}, "stock": 189.5,
               "news": {"results": [1, 2, 3, 4, 5]}}),
    );
    assert_eq!(summary, Ok(json!({"summary": "London: 18°C, rainy; stock at 189.5; 5 news results"})));
}

#[test]
fn saga_tools_fail_with_their_codes() {
    assert_eq!(call("reserve_items", json!({"items": ["a", "b"]})), Ok(json!({"id": "RSV-2", "items": ["a", "b"]})));
    let declined = call("process_card_payment", json!({"amount": 0, "method": "paypal"})).expect_err("declined");
    assert_eq!(declined.code.as_deref(), Some("declined"));
    assert!(declined.retryable, "the workflow's retry policy decides");
    assert_eq!(
        call("process_card_payment", json!({"amount": 12.5, "method": "paypal"})),
        Ok(json!({"id": "TXN-1", "order_id": "ORD-1", "amount": 12.5, "method": "paypal"}))
    );
    assert_eq!(code(call("send_sms", json!({"phone": "0123", "message": "m"}))), Some("invalid_phone".into()));
    assert_eq!(code(call("send_push", json!({"device_id": "", "message": "m"}))), Some("unknown_device".into()));
    assert_eq!(code(call("load_warehouse", json!({"table": "t", "data": {}}))), Some("no_rows".into()));
    assert_eq!(
        call("load_warehouse", json!({"table": "t", "data": {"rows": [1, 2]}})),
        Ok(json!({"table": "t", "loaded": 2}))
    );
}

#[test]
fn documents() {
    let meta = |id: &str| call("extract_metadata", json!({"document_id": id})).expect("metadata")["doc_type"].clone();
    assert_eq!((meta("INV-7"), meta("CTR-1"), meta("X")), (json!("invoice"), json!("contract"), json!("other")));
    assert_eq!(
        call("process_page", json!({"document_id": "d", "page_number": 2, "text": "Page 2 of d"})),
        Ok(json!({"page_number": 2, "words": 4, "confidence": 0.95}))
    );
    assert_eq!(
        code(call("process_page", json!({"document_id": "d", "page_number": 1, "text": ""}))),
        Some("empty_page".into())
    );
    let pages = json!([{"confidence": 0.9}, {"confidence": 0.8}]);
    let quality = |min: f64, extraction: Value| {
        call(
            "validate_quality",
            json!({"document_id": "d", "pages": pages, "extraction": extraction, "min_confidence": min}),
        )
    };
    let passed = quality(0.8, json!({"type": "invoice"})).expect("passes");
    assert_eq!(passed["passed"], true);
    assert!((passed["score"].as_f64().expect("score") - 0.85).abs() < 1e-9);
    assert_eq!(code(quality(0.9, json!({"type": "invoice"}))), Some("low_quality".into()));
    assert_eq!(code(quality(0.1, json!({}))), Some("incomplete".into()));
    let long = "x".repeat(100);
    assert_eq!(
        call("classify_generic", json!({"text": long})).expect("summary")["summary"].as_str().map(str::len),
        Some(80)
    );
    assert_eq!(call("analyze_input", json!({"text": "x".repeat(101)})), Ok(json!({"type": "complex", "length": 101})));
}

#[test]
fn loops_and_pages() {
    let status = |n: u64| call("check_job_status", json!({"job_id": "JOB-1", "attempt": n})).expect("status");
    assert_eq!(status(0), json!({"job_id": "JOB-1", "status": "running", "progress": 0}));
    assert_eq!(status(2), json!({"job_id": "JOB-1", "status": "done", "progress": 100}));

    let page = |n: u64| call("fetch_page", json!({"source": "s", "page": n, "page_size": 2})).expect("page");
    assert_eq!(page(0), json!({"page": 0, "items": [{"id": 1}, {"id": 2}], "has_more": true}));
    assert_eq!(page(1), json!({"page": 1, "items": [{"id": 3}, {"id": 4}], "has_more": true}));
    assert_eq!(page(2), json!({"page": 2, "items": [{"id": 5}], "has_more": false}));
    assert_eq!(page(9), json!({"page": 9, "items": [], "has_more": false}));

    let first = call("process_records", json!({"records": [{"id": 1}, {"id": 2}], "carry": null})).expect("first");
    assert_eq!(first, json!({"processed": 2, "total": 2, "ids": [1, 2]}));
    let second = call("process_records", json!({"records": [{"id": 3}], "carry": first})).expect("second");
    assert_eq!(second, json!({"processed": 1, "total": 3, "ids": [3]}));

    assert_eq!(
        call("record_event", json!({"stream": "s", "position": 4, "event": {"type": "created", "x": 1}})),
        Ok(json!({"type": "created", "x": 1, "stream": "s", "position": 4}))
    );
    assert_eq!(
        code(call("record_event", json!({"stream": "s", "position": 0, "event": {}}))),
        Some("bad_event".into())
    );
    assert_eq!(
        code(call("query_provider", json!({"provider": "delta", "query": "q"}))),
        Some("unknown_provider".into())
    );
}

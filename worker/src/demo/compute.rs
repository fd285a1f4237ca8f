//! The demo tools that calculate, in Rust; each behaves as its description in
//! `examples/tools/catalogue.json` says. Missing or mistyped params are permanent
//! `BAD_PARAMS` errors; failures the catalogue gives a code for are retryable errors with
//! that code, so a workflow's retry policy decides.

use serde_json::{Map, Value, json};
use weft_protocol::wire::ToolError;

use crate::tool::bad_params;

#[cfg(test)]
mod tests;

/// A calculating demo tool: params in, output or error out.
pub type Compute = fn(&Params) -> Result<Value, ToolError>;

/// A demo tool's params.
pub type Params = Map<String, Value>;

const TABLE: [(&str, Compute); 27] = [
    ("aggregate_user_data", aggregate_user_data),
    ("calculate_price", calculate_price),
    ("calculate_total", calculate_total),
    ("recommend_outfit", recommend_outfit),
    ("summarize_text", summarize_text),
    ("send_summary_email", send_summary_email),
    ("summarize_data", summarize_data),
    ("analyze", analyze),
    ("validate_data", validate_data),
    ("transform_data", transform_data),
    ("analyze_method_a", analyze_method_a),
    ("analyze_method_b", analyze_method_b),
    ("reserve_items", reserve_items),
    ("process_card_payment", process_card_payment),
    ("extract_metadata", extract_metadata),
    ("classify_generic", classify_generic),
    ("process_page", process_page),
    ("validate_quality", validate_quality),
    ("query_provider", query_provider),
    ("check_job_status", check_job_status),
    ("fetch_page", fetch_page),
    ("process_records", process_records),
    ("record_event", record_event),
    ("analyze_input", analyze_input),
    ("send_sms", send_sms),
    ("send_push", send_push),
    ("load_warehouse", load_warehouse),
];

/// Names of the calculating tools.
pub const NAMES: [&str; TABLE.len()] = {
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].0;
        i += 1;
    }
    names
};

/// The function of the tool called `name`.
pub fn find(name: &str) -> Option<Compute> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---- reading params -------------------------------------------------------------------

fn get<'a>(p: &'a Params, key: &str) -> Result<&'a Value, ToolError> {
    p.get(key).ok_or_else(|| bad_params(format!("missing param `{key}`")))
}

fn string<'a>(p: &'a Params, key: &str) -> Result<&'a str, ToolError> {
    get(p, key)?.as_str().ok_or_else(|| bad_params(format!("param `{key}` must be a string")))
}

fn number(p: &Params, key: &str) -> Result<f64, ToolError> {
    get(p, key)?.as_f64().ok_or_else(|| bad_params(format!("param `{key}` must be a number")))
}

fn array<'a>(p: &'a Params, key: &str) -> Result<&'a Vec<Value>, ToolError> {
    get(p, key)?.as_array().ok_or_else(|| bad_params(format!("param `{key}` must be an array")))
}

fn object<'a>(p: &'a Params, key: &str) -> Result<&'a Params, ToolError> {
    get(p, key)?.as_object().ok_or_else(|| bad_params(format!("param `{key}` must be an object")))
}

/// The list `field` inside the object param `key` (`orders.orders`, `data.rows`...).
fn list_in<'a>(p: &'a Params, key: &str, field: &str) -> Result<&'a Vec<Value>, ToolError> {
    object(p, key)?
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| bad_params(format!("`{key}` has no `{field}` list")))
}

/// Non-empty `rows` of the `data` param.
fn rows(p: &Params) -> Result<&Vec<Value>, ToolError> {
    let rows = list_in(p, "data", "rows")?;
    if rows.is_empty() {
        return Err(bad_params("`data.rows` is empty"));
    }
    Ok(rows)
}

/// The numeric `value` of each row.
fn row_values(rows: &[Value]) -> Result<Vec<&Value>, ToolError> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| match row.get("value") {
            Some(v) if v.is_number() => Ok(v),
            _ => Err(bad_params(format!("`data.rows[{i}].value` is not a number"))),
        })
        .collect()
}

/// A value inside text: strings as themselves, the rest as JSON (`15`, `6.0`).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A retryable failure with a code a retry policy can name.
fn failure(code: &str, message: String) -> ToolError {
    ToolError::new(message).with_code(code)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

// ---- S0: the lab ----------------------------------------------------------------------

fn aggregate_user_data(p: &Params) -> Result<Value, ToolError> {
    Ok(json!({
        "profile": get(p, "profile")?,
        "order_count": list_in(p, "orders", "orders")?.len(),
        "review_count": list_in(p, "reviews", "reviews")?.len(),
    }))
}

fn calculate_price(p: &Params) -> Result<Value, ToolError> {
    Ok(json!({"product_id": get(p, "product_id")?, "total": number(p, "quantity")? * 10.0}))
}

fn calculate_total(p: &Params) -> Result<Value, ToolError> {
    Ok(json!({"total": array(p, "orders")?.len() as f64 * 50.0}))
}

// ---- S1: tool orchestration -----------------------------------------------------------

fn recommend_outfit(p: &Params) -> Result<Value, ToolError> {
    let outfit = if string(p, "condition")? == "rainy" {
        "Raincoat, umbrella, boots"
    } else if number(p, "temperature")? < 15.0 {
        "Jacket, long pants"
    } else {
        "T-shirt, shorts"
    };
    Ok(json!({"outfit": outfit}))
}

fn summarize_text(p: &Params) -> Result<Value, ToolError> {
    let articles = array(p, "articles")?;
    if articles.is_empty() {
        return Err(bad_params("`articles` is empty"));
    }
    let titles = articles
        .iter()
        .enumerate()
        .map(|(i, a)| a.get("title").map(text).ok_or_else(|| bad_params(format!("`articles[{i}]` has no `title`"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"summary": titles.join("; "), "count": articles.len()}))
}

fn send_summary_email(p: &Params) -> Result<Value, ToolError> {
    Ok(json!({"sent": true, "to": get(p, "recipient")?, "length": string(p, "summary")?.chars().count()}))
}

fn summarize_data(p: &Params) -> Result<Value, ToolError> {
    let weather = object(p, "weather")?;
    let field = |key: &str| weather.get(key).map(text).ok_or_else(|| bad_params(format!("`weather` has no `{key}`")));
    let summary = format!(
        "{}: {}°C, {}; stock at {}; {} news results",
        field("location")?,
        field("temp")?,
        field("condition")?,
        text(get(p, "stock")?),
        list_in(p, "news", "results")?.len()
    );
    Ok(json!({"summary": summary}))
}

fn analyze(p: &Params) -> Result<Value, ToolError> {
    let records = list_in(p, "data", "records")?;
    if records.is_empty() {
        return Err(bad_params("`data.records` is empty"));
    }
    let floats = records
        .iter()
        .map(|r| r.as_f64().ok_or_else(|| bad_params(format!("record {r} is not a number"))))
        .collect::<Result<Vec<_>, _>>()?;
    // Integers add up to an integer, as in Python.
    let ints: Option<Vec<i64>> = records.iter().map(Value::as_i64).collect();
    let sum = match ints {
        Some(ints) => json!(ints.iter().sum::<i64>()),
        None => json!(floats.iter().sum::<f64>()),
    };
    Ok(json!({"count": records.len(), "sum": sum, "mean": mean(&floats)}))
}

fn validate_data(p: &Params) -> Result<Value, ToolError> {
    let (kept, dropped): (Vec<&Value>, Vec<&Value>) =
        list_in(p, "data", "rows")?.iter().partition(|row| row.get("value").is_some_and(|v| !v.is_null()));
    Ok(json!({"rows": kept, "dropped": dropped}))
}

fn transform_data(p: &Params) -> Result<Value, ToolError> {
    let rows = list_in(p, "data", "rows")?;
    let scaled = rows
        .iter()
        .map(|row| {
            let mut row = row.as_object().cloned().ok_or_else(|| bad_params("every row must be an object"))?;
            // A null value (rows not validated first) scales to null.
            let scaled = row.get("value").and_then(Value::as_f64).map_or(Value::Null, |v| json!(v / 10.0));
            row.insert("scaled".into(), scaled);
            Ok(Value::Object(row))
        })
        .collect::<Result<Vec<_>, ToolError>>()?;
    Ok(json!({"rows": scaled}))
}

fn analyze_method_a(p: &Params) -> Result<Value, ToolError> {
    let values: Vec<f64> = row_values(rows(p)?)?.iter().filter_map(|v| v.as_f64()).collect();
    Ok(json!({"method": "a", "mean": mean(&values)}))
}

fn analyze_method_b(p: &Params) -> Result<Value, ToolError> {
    let values = row_values(rows(p)?)?;
    // The largest value keeps its JSON form (30 stays 30).
    let max =
        values.iter().copied().max_by(|a, b| a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(std::cmp::Ordering::Equal));
    Ok(json!({"method": "b", "max": max}))
}

fn reserve_items(p: &Params) -> Result<Value, ToolError> {
    let items = array(p, "items")?;
    if items.is_empty() {
        return Err(bad_params("`items` is empty"));
    }
    Ok(json!({"id": format!("RSV-{}", items.len()), "items": items}))
}

fn process_card_payment(p: &Params) -> Result<Value, ToolError> {
    let amount = number(p, "amount")?;
    if amount <= 0.0 {
        return Err(failure("declined", format!("payment declined: the amount must be positive, not {amount}")));
    }
    Ok(json!({"id": "TXN-1", "order_id": "ORD-1", "amount": get(p, "amount")?, "method": get(p, "method")?}))
}

// ---- S3: document processing ----------------------------------------------------------

fn extract_metadata(p: &Params) -> Result<Value, ToolError> {
    let id = string(p, "document_id")?;
    let doc_type = if id.starts_with("INV") {
        "invoice"
    } else if id.starts_with("CTR") {
        "contract"
    } else {
        "other"
    };
    Ok(json!({"document_id": id, "doc_type": doc_type, "language": "en", "page_count": 3}))
}

fn classify_generic(p: &Params) -> Result<Value, ToolError> {
    Ok(json!({"type": "other", "summary": string(p, "text")?.chars().take(80).collect::<String>()}))
}

fn process_page(p: &Params) -> Result<Value, ToolError> {
    let page = get(p, "page_number")?;
    let text = string(p, "text")?;
    if text.is_empty() {
        return Err(failure("empty_page", format!("page {page} has no text")));
    }
    Ok(json!({"page_number": page, "words": text.split_whitespace().count(), "confidence": 0.95}))
}

fn validate_quality(p: &Params) -> Result<Value, ToolError> {
    let pages = array(p, "pages")?;
    let extraction = object(p, "extraction")?;
    let min = number(p, "min_confidence")?;
    if pages.is_empty() || extraction.is_empty() {
        return Err(failure("incomplete", "no pages or an empty extraction".into()));
    }
    let confidences = pages
        .iter()
        .enumerate()
        .map(|(i, page)| {
            page.get("confidence")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad_params(format!("`pages[{i}]` has no numeric `confidence`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let score = mean(&confidences);
    if score < min {
        return Err(failure("low_quality", format!("quality score {score} is below the minimum {min}")));
    }
    Ok(json!({"passed": true, "score": score}))
}

// ---- S4: patterns ---------------------------------------------------------------------

fn query_provider(p: &Params) -> Result<Value, ToolError> {
    // The delay per provider is in demo.json.
    let provider = string(p, "provider")?;
    let score = match provider {
        "alpha" => 0.7,
        "beta" => 0.5,
        "gamma" => 0.9,
        other => return Err(failure("unknown_provider", format!("no provider called {other:?}"))),
    };
    let answer = format!("{provider}: {}", text(get(p, "query")?));
    Ok(json!({"success": true, "provider": provider, "answer": answer, "score": score}))
}

fn check_job_status(p: &Params) -> Result<Value, ToolError> {
    let attempt = get(p, "attempt")?.as_u64().ok_or_else(|| bad_params("param `attempt` must be a whole number"))?;
    let status = if attempt >= 2 { "done" } else { "running" };
    Ok(json!({"job_id": get(p, "job_id")?, "status": status, "progress": attempt.saturating_mul(50).min(100)}))
}

/// Records in the paged source.
const PAGED_RECORDS: u64 = 5;

fn fetch_page(p: &Params) -> Result<Value, ToolError> {
    let whole =
        |key: &str| get(p, key)?.as_u64().ok_or_else(|| bad_params(format!("param `{key}` must be a whole number")));
    let page = whole("page")?;
    let size = whole("page_size")?;
    if size == 0 {
        return Err(bad_params("param `page_size` must be at least 1"));
    }
    let start = page.saturating_mul(size);
    let end = page.saturating_add(1).saturating_mul(size);
    let items: Vec<Value> = (start + 1..=end.min(PAGED_RECORDS)).map(|id| json!({"id": id})).collect();
    Ok(json!({"page": page, "items": items, "has_more": end < PAGED_RECORDS}))
}

fn process_records(p: &Params) -> Result<Value, ToolError> {
    let records = array(p, "records")?;
    let ids: Vec<Value> = records.iter().map(|r| r.get("id").cloned().unwrap_or(Value::Null)).collect();
    let carried = p.get("carry").and_then(|c| c.get("total"));
    let total = match carried {
        Some(t) if t.is_i64() || t.is_u64() => json!(t.as_i64().unwrap_or_default() + records.len() as i64),
        Some(t) if t.is_f64() => json!(t.as_f64().unwrap_or_default() + records.len() as f64),
        _ => json!(records.len()),
    };
    Ok(json!({"processed": records.len(), "total": total, "ids": ids}))
}

fn record_event(p: &Params) -> Result<Value, ToolError> {
    let mut event = object(p, "event")?.clone();
    if !event.contains_key("type") {
        return Err(failure("bad_event", "the event has no `type`".into()));
    }
    event.insert("stream".into(), get(p, "stream")?.clone());
    event.insert("position".into(), get(p, "position")?.clone());
    Ok(Value::Object(event))
}

fn analyze_input(p: &Params) -> Result<Value, ToolError> {
    let length = string(p, "text")?.chars().count();
    Ok(json!({"type": if length <= 100 { "simple" } else { "complex" }, "length": length}))
}

fn send_sms(p: &Params) -> Result<Value, ToolError> {
    let phone = string(p, "phone")?;
    if !phone.starts_with('+') {
        return Err(failure("invalid_phone", format!("{phone:?} is not an international number (+...)")));
    }
    Ok(json!({"sent": true, "to": phone}))
}

fn send_push(p: &Params) -> Result<Value, ToolError> {
    let device = string(p, "device_id")?;
    if device.is_empty() {
        return Err(failure("unknown_device", "no device id".into()));
    }
    Ok(json!({"sent": true, "device": device}))
}

fn load_warehouse(p: &Params) -> Result<Value, ToolError> {
    let table = get(p, "table")?;
    let rows = object(p, "data")?
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(|| failure("no_rows", "`data` has no `rows` list".into()))?;
    Ok(json!({"table": table, "loaded": rows.len()}))
}

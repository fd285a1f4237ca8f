//! Encoding results so they always fit in a NATS message.

use weft_protocol::wire::{Outcome, TaskResult, ToolError, codes};

/// Room kept for headers (message id, trace context) under the server's `max_payload`.
pub(super) const HEADER_ROOM: usize = 4 * 1024;

/// `max_payload` assumed while the server has not said (the NATS default).
pub(super) const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The result as JSON; an outcome too large for a message of `max_payload` bytes is
/// replaced by a permanent `OUTPUT_TOO_LARGE` error that gives the size and the limit
/// (then the second value is true).
pub(super) fn encode(mut result: TaskResult, max_payload: usize) -> (Vec<u8>, bool) {
    let max_payload = if max_payload == 0 { DEFAULT_MAX_PAYLOAD } else { max_payload };
    let limit = max_payload.saturating_sub(HEADER_ROOM);
    let size = match serde_json::to_vec(&result) {
        Ok(bytes) if bytes.len() <= limit => return (bytes, false),
        Ok(bytes) => bytes.len(),
        // Values of serde_json always serialise; kept total all the same.
        Err(e) => {
            result.outcome = Outcome::Err(ToolError::new(format!("the result cannot be encoded: {e}")).permanent());
            return (serde_json::to_vec(&result).expect("a result is plain data and serialises"), true);
        }
    };
    let what = match result.outcome {
        Outcome::Ok(_) => "output",
        Outcome::Err(_) => "error",
    };
    result.outcome = Outcome::Err(
        ToolError::new(format!(
            "the tool's {what} takes {size} bytes as a result message, more than the {limit} bytes allowed \
             (the server's max_payload of {max_payload} bytes less {HEADER_ROOM} for headers)"
        ))
        .with_code(codes::OUTPUT_TOO_LARGE)
        .permanent(),
    );
    (serde_json::to_vec(&result).expect("a result is plain data and serialises"), true)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;

    fn result(outcome: Outcome) -> TaskResult {
        TaskResult {
            run_id: Uuid::now_v7(),
            step_id: "s".into(),
            attempt: 1,
            compensation: false,
            worker: "w".into(),
            started_ms: 1,
            finished_ms: 2,
            outcome,
            usage: None,
            token: String::new(),
        }
    }

    fn decode(bytes: &[u8]) -> TaskResult {
        serde_json::from_slice(bytes).expect("a result")
    }

    #[test]
    fn small_results_pass_unchanged() {
        let r = result(Outcome::Ok(json!({"x": 1})));
        let (bytes, replaced) = encode(r.clone(), 64 * 1024);
        assert_eq!((decode(&bytes), replaced), (r.clone(), false));
        // Zero means the server has not said: the NATS default applies.
        assert_eq!(decode(&encode(r.clone(), 0).0), r);
    }

    #[test]
    fn large_outputs_become_errors_that_say_the_sizes() {
        let big = result(Outcome::Ok(Value::String("x".repeat(10_000))));
        let (bytes, replaced) = encode(big.clone(), 8 * 1024);
        assert!(replaced);
        assert!(bytes.len() <= 8 * 1024 - HEADER_ROOM);
        let decoded = decode(&bytes);
        assert_eq!((decoded.run_id, &decoded.step_id, decoded.attempt), (big.run_id, &big.step_id, 1));
        let Outcome::Err(e) = decoded.outcome else { panic!("an error") };
        assert_eq!(e.code.as_deref(), Some(codes::OUTPUT_TOO_LARGE));
        assert!(!e.retryable);
        let size = serde_json::to_vec(&big).expect("encodes").len();
        assert!(e.message.contains(&format!("{size} bytes")), "{}", e.message);
        assert!(e.message.contains(&format!("{} bytes allowed", 8 * 1024 - HEADER_ROOM)), "{}", e.message);

        // Right at the limit still passes.
        let exact = serde_json::to_vec(&big).expect("encodes").len();
        assert_eq!(decode(&encode(big.clone(), exact + HEADER_ROOM).0), big);
        assert_ne!(decode(&encode(big.clone(), exact + HEADER_ROOM - 1).0), big);
    }
}

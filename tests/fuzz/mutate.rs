//! Mutations: of bytes (flips, cuts, copies, tokens of the format), and of JSON nodes (a
//! value replaced by an edge case: huge, deep, empty, of another type).

use serde_json::Value;

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 if `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    pub(crate) fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Tokens of Weft's formats, spliced in by byte mutations.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "{input.x}",
    "{a.b}",
    "{{",
    "}}",
    "[0]",
    "\"steps\"",
    "\"for_each\"",
    "\"loop\"",
    "\"race\"",
    "\"switch\"",
    "\"workflow\"",
    "\"signal\"",
    "\"wait\"",
    "\"depends_on\"",
    "\"when\"",
    "\"matches\"",
    "\"retry\"",
    "\"timeout\"",
    "\"compensate\"",
    "\"entry\"",
    "\"kind\"",
    "\"outcome\"",
    "null",
    "true",
    "-1",
    "1e308",
    "18446744073709551615",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"(a+)+$\"",
    "\"\\\\w{500}\"",
];

/// `input` mutated once to a few times.
pub(crate) fn mutate(input: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    let mut out = input;
    for _ in 0..=rng.below(3) {
        out = if rng.below(2) == 0 {
            json_mutation(&out, rng).unwrap_or_else(|| byte_mutation(out, rng))
        } else {
            byte_mutation(out, rng)
        };
    }
    out
}

fn byte_mutation(mut b: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    let at = rng.below(b.len() + 1);
    match rng.below(6) {
        0 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 if !b.is_empty() => {
            let end = (at + rng.below(16)).min(b.len());
            b.drain(at.min(end)..end);
        }
        2 => {
            let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
            b.splice(at..at, token.iter().copied());
        }
        3 if !b.is_empty() => {
            let start = rng.below(b.len());
            let end = (start + rng.below(64)).min(b.len());
            let chunk = b[start..end].to_vec();
            b.splice(at..at, chunk);
        }
        4 => b.insert(at, rng.byte()),
        _ => {
            if b.len() > 1 {
                b.truncate(rng.below(b.len()));
            }
        }
    }
    b
}

/// Replaces one node of the JSON document by an edge case; `None` if it is not JSON.
fn json_mutation(bytes: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(bytes).ok()?;
    let count = nodes(&doc);
    let target = rng.below(count);
    let replacement = edge_case(rng);
    replace(&mut doc, &mut { target }, replacement);
    serde_json::to_vec(&doc).ok()
}

fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(nodes).sum(),
        Value::Object(o) => o.values().map(nodes).sum(),
        _ => 0,
    }
}

/// Replaces the `n`th node (depth first) by `with`; true once done.
fn replace(v: &mut Value, n: &mut usize, with: Value) -> bool {
    if *n == 0 {
        *v = with;
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => {
            for child in a {
                if replace(child, n, with.clone()) {
                    return true;
                }
            }
        }
        Value::Object(o) => {
            for child in o.values_mut() {
                if replace(child, n, with.clone()) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn edge_case(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::from(u64::MAX),
        2 => Value::from(-1),
        3 => Value::from(1e308),
        4 => Value::from(""),
        5 => Value::from("x".repeat(rng.below(100_000))),
        6 => {
            let mut v = Value::from(1);
            for _ in 0..rng.below(200) {
                v = Value::Array(vec![v]);
            }
            v
        }
        7 => Value::Array((0..rng.below(2_000)).map(Value::from).collect()),
        8 => Value::from(TOKENS[rng.below(TOKENS.len())].trim_matches('"')),
        9 => serde_json::json!({}),
        10 => serde_json::json!({"id": "a", "tool": "echo", "params": {"x": "{a.x}"}}),
        _ => Value::Bool(rng.below(2) == 0),
    }
}

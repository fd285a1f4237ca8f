//! Property tests of references: paths and templates round-trip, escapes are exact,
//! resolution finds what is there and says precisely what is not, in any script.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use weft_lang::reference::{Context, Path, ResolveError, Segment, Template, template::escape_text};

fn fail<E: std::fmt::Debug>(e: E) -> TestCaseError {
    TestCaseError::fail(format!("{e:?}"))
}

/// Names in several scripts: Latin, Greek, CJK, accented.
fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z_αβγδ城市é][a-zA-Z0-9_αβγ城é-]{0,8}"
}

/// Keys that need quoting as well as plain ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![ident(), "[ -~]{0,6}", "[\"'\\\\{}\\[\\]. ]{1,4}", "\\PC{0,5}"]
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![key().prop_map(Segment::Key), (-5i64..50).prop_map(Segment::Index)]
}

fn path() -> impl Strategy<Value = Path> {
    (ident(), prop::collection::vec(segment(), 0..5)).prop_map(|(root, segments)| Path { root, segments })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        "[{}$a-z.]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value and a path that exists inside it, with what it leads to.
fn value_and_path() -> impl Strategy<Value = (Value, Vec<Segment>, Value)> {
    (json_value(), prop::collection::vec(any::<prop::sample::Index>(), 0..4)).prop_map(|(root, picks)| {
        let mut segments = Vec::new();
        let mut at = root.clone();
        for pick in picks {
            let next = match &at {
                Value::Array(items) if !items.is_empty() => {
                    let i = pick.index(items.len());
                    segments.push(Segment::Index(i as i64));
                    items[i].clone()
                }
                Value::Object(m) if !m.is_empty() => {
                    let (k, v) =
                        m.iter().nth(pick.index(m.len())).map(|(k, v)| (k.clone(), v.clone())).unwrap_or_default();
                    segments.push(Segment::Key(k));
                    v
                }
                _ => break,
            };
            at = next;
        }
        (root, segments, at)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn paths_round_trip_through_their_spelling(p in path()) {
        let text = p.to_string();
        prop_assert_eq!(Path::parse(&text).map_err(fail)?, p);
    }

    #[test]
    fn templates_round_trip(v in json_value()) {
        if let Ok(t) = Template::parse(&v) {
            let again = Template::parse(&t.to_json()).map_err(fail)?;
            prop_assert_eq!(again, t);
        }
    }

    #[test]
    fn escaped_literals_resolve_to_themselves(v in json_value()) {
        // Any JSON, escaped, reads back as exactly itself: nothing in it is a reference.
        let escaped = Template::Literal(v.clone()).to_json();
        let t = Template::parse(&escaped).map_err(fail)?;
        prop_assert!(t.references().is_empty());
        prop_assert_eq!(t.resolve(&Context::default()).map_err(fail)?, v);
    }

    #[test]
    fn whole_references_keep_type_and_embedded_ones_interpolate(
        root in ident(), (value, segments, leaf) in value_and_path(), pre in "\\PC{0,6}", post in "\\PC{0,6}"
    ) {
        prop_assume!(root != "input");
        let mut ctx = Context::default();
        ctx.set(root.clone(), value);
        let p = Path { root, segments };
        let whole = Template::parse_str(&format!("{{{p}}}")).map_err(fail)?;
        prop_assert_eq!(whole.resolve(&ctx).map_err(fail)?, leaf.clone());
        let dollar = Template::parse_str(&format!("${p}")).map_err(fail)?;
        prop_assert_eq!(dollar.resolve(&ctx).map_err(fail)?, leaf.clone());

        let text = format!("{}{{{p}}}{}", escape_text(&pre), escape_text(&post));
        let rendered = Template::parse_str(&text).map_err(fail)?.resolve(&ctx).map_err(fail)?;
        if pre.is_empty() && post.is_empty() {
            // Nothing around it: still a whole reference.
            prop_assert_eq!(rendered, leaf);
        } else {
            let middle = match &leaf { Value::String(s) => s.clone(), other => other.to_string() };
            prop_assert_eq!(rendered, Value::String(format!("{pre}{middle}{post}")));
        }
    }

    #[test]
    fn missing_keys_name_the_place_and_what_is_there(
        root in ident(), (value, segments, leaf) in value_and_path(), missing in key()
    ) {
        let Value::Object(map) = &leaf else { return Ok(()) };
        prop_assume!(!map.contains_key(&missing));
        let mut ctx = Context::default();
        ctx.set(root.clone(), value);
        let at = Path { root: root.clone(), segments: segments.clone() };
        let mut longer = segments;
        longer.push(Segment::Key(missing.clone()));
        let p = Path { root, segments: longer };
        let err = Template::Ref(p).resolve(&ctx).expect_err("missing key");
        let ResolveError::MissingKey { at: reported, key, available, .. } = err else {
            return Err(TestCaseError::fail(format!("wrong error {err:?}")));
        };
        prop_assert_eq!(reported, at.to_string());
        prop_assert_eq!(key, missing);
        prop_assert_eq!(available, map.keys().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn indexes_past_the_end_report_the_length(items in prop::collection::vec(json_value(), 0..5), extra in 0i64..5) {
        let len = items.len();
        let mut ctx = Context::default();
        ctx.set("list", Value::Array(items));
        let index = len as i64 + extra;
        let p = Path { root: "list".into(), segments: vec![Segment::Index(index)] };
        let err = Template::Ref(p).resolve(&ctx).expect_err("out of range");
        prop_assert_eq!(err, ResolveError::OutOfRange { reference: format!("list[{index}]"), at: "list".into(), index, len });
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
        let _ = Template::parse_str(&s);
        let _ = Path::parse(&s);
    }
}

#[test]
fn objects_keep_key_order() {
    let t = Template::parse(&json!({"z": "{a}", "a": 1, "m": "x"})).expect("parses");
    let mut ctx = Context::default();
    ctx.set("a", json!(true));
    let Value::Object(out) = t.resolve(&ctx).expect("resolves") else { panic!("object") };
    let keys: Vec<&String> = out.keys().collect();
    assert_eq!(keys, ["z", "a", "m"]);
    let _ = Map::new();
}

//! `weft-fuzz`: a stable, in-process fuzzer of everything Weft reads from outside: the
//! workflow parser and validator, references, conditions, the wire decoders (the run log's
//! included) and the run state machine driven by forged logs.
//!
//! Inputs are mutations (bytes, and JSON nodes) of a seed corpus (the examples, wire
//! messages of every kind). Each input runs under `catch_unwind`; a panic is a finding, and
//! so is a slow input: over 100 ms per 100 KB (10x that in a debug build). A watchdog ends
//! the process if one input runs past 10 s, leaving it in `<out>/current`. Findings are
//! written to `<out>/findings/`, and the exit code is 1 if there are any.
//!
//! `weft-fuzz --seconds 20` is CI's short campaign; a long one is
//! `cargo run --release -p weft-tests --bin weft-fuzz -- --seconds 3600 --out fuzz-out`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod mutate;
mod seeds;

use mutate::Rng;

/// What is fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Definition,
    Reference,
    Condition,
    Wire,
    Machine,
}

const TARGETS: [Target; 5] = [Target::Definition, Target::Reference, Target::Condition, Target::Wire, Target::Machine];

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Definition => "definition",
            Target::Reference => "reference",
            Target::Condition => "condition",
            Target::Wire => "wire",
            Target::Machine => "machine",
        }
    }
}

struct Args {
    seconds: u64,
    seed: u64,
    out: PathBuf,
    only: Option<Target>,
}

fn args() -> Result<Args, String> {
    let mut args = Args { seconds: 20, seed: 0x5eed, out: PathBuf::from("fuzz-out"), only: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--out" => args.out = PathBuf::from(value()?),
            "--target" => {
                let name = value()?;
                let target = TARGETS
                    .iter()
                    .find(|t| t.name() == name)
                    .ok_or_else(|| format!("--target: `{name}` is none of {:?}", TARGETS.map(Target::name)))?;
                args.only = Some(*target);
            }
            "-h" | "--help" => {
                println!(
                    "weft-fuzz [--seconds N (20)] [--seed N] [--out DIR (fuzz-out)] [--target definition|reference|condition|wire|machine]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (see --help)")),
        }
    }
    Ok(args)
}

/// How long an input of `len` bytes may take.
fn budget(len: usize) -> Duration {
    let per_100kb = if cfg!(debug_assertions) { 1_000 } else { 100 };
    let units = (len as u64).div_ceil(100_000).max(1);
    Duration::from_millis(per_100kb * units)
}

fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("weft-fuzz: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(args.out.join("findings")) {
        eprintln!("weft-fuzz: cannot create {}: {e}", args.out.display());
        std::process::exit(2);
    }
    let corpus = seeds::corpus();
    // Panics are caught and reported as findings; the default hook would print each.
    std::panic::set_hook(Box::new(|_| {}));
    let started_ms = Arc::new(AtomicU64::new(0));
    watchdog(started_ms.clone(), args.out.join("current"));
    let epoch = Instant::now();
    let deadline = epoch + Duration::from_secs(args.seconds);
    let mut rng = Rng::new(args.seed);
    let (mut runs, mut passed, mut findings) = ([0u64; 5], [0u64; 5], 0u32);
    let mut n = 0usize;
    while Instant::now() < deadline {
        let target = args.only.unwrap_or(TARGETS[n % TARGETS.len()]);
        n += 1;
        let input = make_input(target, &corpus, &mut rng);
        let _ = std::fs::write(args.out.join("current"), &input);
        started_ms.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
        let began = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| run(target, &input)));
        let took = began.elapsed();
        started_ms.store(0, Ordering::SeqCst);
        let k = TARGETS.iter().position(|t| *t == target).unwrap_or(0);
        runs[k] += 1;
        let finding = match outcome {
            Err(panic) => Some(format!("panic: {}", panic_message(&panic))),
            Ok(_) if took > budget(input.len()) => {
                Some(format!("slow: {took:?} for {} bytes (budget {:?})", input.len(), budget(input.len())))
            }
            Ok(deep) => {
                passed[k] += u64::from(deep);
                None
            }
        };
        if let Some(what) = finding {
            findings += 1;
            let file = args.out.join("findings").join(format!("{}-{findings}.bin", target.name()));
            let _ = std::fs::write(&file, &input);
            eprintln!("finding ({}): {what}; input in {}", target.name(), file.display());
        }
    }
    let _ = std::fs::remove_file(args.out.join("current"));
    let per: Vec<String> = TARGETS
        .iter()
        .enumerate()
        .map(|(k, t)| format!("{} {} ({} past the parser)", t.name(), runs[k], passed[k]))
        .collect();
    println!(
        "weft-fuzz: {} inputs in {:.1?} ({}), seed {}, {findings} finding(s)",
        runs.iter().sum::<u64>(),
        epoch.elapsed(),
        per.join(", "),
        args.seed
    );
    if findings > 0 {
        std::process::exit(1);
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(not a string)".to_owned())
}

/// Ends the process when one input has run for 10 s: a hang is a finding too.
fn watchdog(started_ms: Arc<AtomicU64>, current: PathBuf) {
    let epoch = Instant::now();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let started = started_ms.load(Ordering::SeqCst);
            if started != 0 && (epoch.elapsed().as_millis() as u64).saturating_sub(started) > 10_000 {
                eprintln!("finding: an input ran past 10 s (a hang); it is in {}", current.display());
                std::process::exit(1);
            }
        }
    });
}

/// An input for `target`: a seed of its kind, mutated.
fn make_input(target: Target, corpus: &seeds::Corpus, rng: &mut Rng) -> Vec<u8> {
    let pick = |list: &[Vec<u8>], rng: &mut Rng| list[rng.below(list.len())].clone();
    match target {
        Target::Definition => mutate::mutate(pick(&corpus.definitions, rng), rng),
        Target::Reference => mutate::mutate(pick(&corpus.references, rng), rng),
        Target::Condition => mutate::mutate(pick(&corpus.conditions, rng), rng),
        Target::Wire => mutate::mutate(pick(&corpus.wire, rng), rng),
        Target::Machine => {
            // A definition (mildly mutated), choices, and forged entries, as one JSON array.
            let def = pick(&corpus.definitions, rng);
            let def = if rng.below(3) == 0 { mutate::mutate(def, rng) } else { def };
            let choices: Vec<u8> = (0..rng.below(200)).map(|_| rng.byte()).collect();
            let forged: Vec<String> = (0..rng.below(20))
                .map(|_| String::from_utf8_lossy(&mutate::mutate(pick(&corpus.wire, rng), rng)).into_owned())
                .collect();
            let input = json!({"definition": String::from_utf8_lossy(&def), "choices": choices, "forged": forged});
            serde_json::to_vec(&input).unwrap_or_default()
        }
    }
}

/// Feeds `input` to `target`; errors are fine, panics and slowness are not. Returns whether
/// the input got past the first gate (parsed; for the machine, a run took inputs), so the
/// summary shows the campaign is not only bouncing off the parser.
fn run(target: Target, input: &[u8]) -> bool {
    let text = String::from_utf8_lossy(input);
    match target {
        Target::Definition => {
            let Ok(def) = weft_lang::definition::WorkflowDef::from_json(&text) else { return false };
            let limits = weft_lang::limits::Limits::default();
            let _ = weft_lang::validate::compile_within(&def, None, &limits);
            weft_lang::validate::compile_within(&def, Some(&seeds::catalogue()), &limits).is_ok()
        }
        Target::Reference => {
            let parsed = weft_lang::reference::Template::parse_str(&text).is_ok();
            if let Ok(value) = serde_json::from_slice::<Value>(input) {
                let _ = weft_lang::reference::Template::parse(&value);
            }
            parsed
        }
        Target::Condition => match serde_json::from_slice::<Value>(input) {
            Ok(value) => weft_lang::condition::Condition::parse(&value).is_ok(),
            Err(_) => false,
        },
        Target::Wire => wire(input),
        Target::Machine => {
            let Ok(value) = serde_json::from_slice::<Value>(input) else { return false };
            let definition = value["definition"].as_str().unwrap_or_default();
            let choices: Vec<u8> = value["choices"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c.as_u64().map(|c| c as u8)).collect())
                .unwrap_or_default();
            let forged: Vec<Vec<u8>> = value["forged"]
                .as_array()
                .map(|a| a.iter().filter_map(|f| f.as_str().map(|s| s.as_bytes().to_vec())).collect())
                .unwrap_or_default();
            weft_coordinator::fuzz::machine(definition, json!({"items": [1, 2, 3], "x": 1}), &choices, &forged) > 0
        }
    }
}

/// Every wire message type Weft decodes from outside.
fn wire(input: &[u8]) -> bool {
    use weft_protocol::wire::*;
    let decoded = weft_coordinator::fuzz::log_entry(input);
    let _ = serde_json::from_slice::<Task>(input);
    let _ = serde_json::from_slice::<TaskResult>(input);
    let _ = serde_json::from_slice::<RunRecord>(input);
    let _ = serde_json::from_slice::<RunSummary>(input);
    let _ = serde_json::from_slice::<Advertisement>(input);
    let _ = serde_json::from_slice::<Event>(input);
    let _ = serde_json::from_slice::<IndexEntry>(input);
    let _ = serde_json::from_slice::<Pool>(input);
    let _ = serde_json::from_slice::<ApiRequest>(input);
    if let Ok(record) = serde_json::from_slice::<RunRecord>(input) {
        let _ = record.to_json_within(4096);
        let _ = weft_client::timeline::gantt(&record, 80);
        let _ = weft_client::timeline::table(&record);
        let _ = weft_client::timeline::summary_text(&record, now_ms());
    }
    decoded
}

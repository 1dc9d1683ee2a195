//! Conformance: every case of the shared corpus, whole and over many chunkings.
//!
//! The corpus lives in `../shared/corpus` beside the repository (override with
//! `TOOLMEND_CORPUS`). Deliberate differences from a peer are recorded, one JSON object per
//! line (`id`, `reason`, `expected`), in `tests/corpus_exceptions.jsonl`: the case is then
//! checked against that expectation instead. Nothing is skipped.
//! `TOOLMEND_CORPUS_FILTER=<substring>` limits the run to matching ids (for debugging).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use toolmend_core::{parse, Event, Options, ParseResult, StreamParser, ToolSet};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("TOOLMEND_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/corpus"))
}

struct Case {
    id: String,
    format: String,
    model: Option<String>,
    tools: Option<Value>,
    output: String,
    expected: Value,
    notes: String,
}

fn load_cases() -> Vec<Case> {
    let dir = corpus_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus not found at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).expect("read corpus").lines() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).expect("corpus line is JSON");
            cases.push(Case {
                id: v["id"].as_str().expect("id").to_string(),
                format: v["format"].as_str().expect("format").to_string(),
                model: v["model"].as_str().map(str::to_string),
                tools: (!v["tools"].is_null()).then(|| v["tools"].clone()),
                output: v["output"].as_str().expect("output").to_string(),
                expected: v["expected"].clone(),
                notes: v["notes"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    cases
}

/// The peer's parser was initialised with thinking enabled, and the output does begin inside
/// the reasoning block: it closes a block it never opened.
fn starts_in_reasoning(case: &Case) -> bool {
    const PAIRS: &[(&str, &str)] = &[
        ("<think>", "</think>"),
        ("[THINK]", "[/THINK]"),
        ("<|channel>", "<channel|>"),
    ];
    case.notes.contains("thinking enabled")
        && PAIRS
            .iter()
            .any(|(open, close)| case.output.contains(close) && !case.output.contains(open))
}

fn options(case: &Case, format: Option<&str>) -> Options {
    Options {
        format: format.map(str::to_string),
        model: case.model.clone(),
        tools: case
            .tools
            .as_ref()
            .map(|t| Arc::new(ToolSet::from_json(t).expect("corpus tools"))),
        repair: true,
        in_reasoning: starts_in_reasoning(case),
        id_seed: Some(42),
        coerce: true,
        validate: true,
    }
}

/// Numbers compare by value (the corpus writes Go float64 numbers as `42.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// Compares a result with an expectation; `Err` says how they differ.
fn check(result: &ParseResult, expected: &Value) -> Result<(), String> {
    let want_calls = expected["tool_calls"].as_array().cloned().unwrap_or_default();
    if want_calls.len() != result.tool_calls.len() {
        return Err(format!(
            "{} calls, expected {}: got {:?}",
            result.tool_calls.len(),
            want_calls.len(),
            result
                .tool_calls
                .iter()
                .map(|c| (&c.name, &c.arguments))
                .collect::<Vec<_>>()
        ));
    }
    for (i, (got, want)) in result.tool_calls.iter().zip(&want_calls).enumerate() {
        if want["name"].as_str() != Some(got.name.as_str()) {
            return Err(format!("call {i}: name {:?}, expected {}", got.name, want["name"]));
        }
        let args: Value = serde_json::from_str(&got.arguments)
            .map_err(|e| format!("call {i}: arguments are not JSON ({e}): {}", got.arguments))?;
        if !args.is_object() {
            return Err(format!("call {i}: arguments are not an object: {}", got.arguments));
        }
        if !same_value(&args, &want["arguments"]) {
            return Err(format!(
                "call {i}: arguments {}, expected {}",
                got.arguments, want["arguments"]
            ));
        }
    }
    if let Some(want) = expected["content"].as_str() {
        let got = result.content.as_deref().unwrap_or("");
        if got.trim() != want.trim() {
            return Err(format!("content {got:?}, expected {want:?}"));
        }
    }
    Ok(())
}

/// Merges adjacent text fragments of the same kind, so event lists from different
/// chunkings can be compared.
fn normalize(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (Some(Event::Content(a)), Event::Content(b)) => a.push_str(&b),
            (Some(Event::Reasoning(a)), Event::Reasoning(b)) => a.push_str(&b),
            (Some(Event::ToolCallArgs { index: i, text: a }), Event::ToolCallArgs { index: j, text: b }) if *i == j => {
                a.push_str(&b)
            }
            (_, e) => out.push(e),
        }
    }
    out
}

/// Splits `text` into chunks at char boundaries: fixed size, or pseudo-random sizes.
fn chunks(text: &str, mode: u64) -> Vec<&str> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let mut out = Vec::new();
    let mut state = mode.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut i = 0;
    while i + 1 < bounds.len() {
        let step = if mode < 8 {
            mode as usize
        } else {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1 + (state % 9) as usize
        };
        let j = (i + step).min(bounds.len() - 1);
        out.push(&text[bounds[i]..bounds[j]]);
        i = j;
    }
    out
}

fn stream(case: &Case, format: Option<&str>, parts: &[&str]) -> (Vec<Event>, ParseResult) {
    let mut p = StreamParser::new(options(case, format)).expect("parser");
    let mut events = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        // Both entry points: `feed` returns new vectors, `feed_into` appends to one buffer.
        if i % 2 == 0 {
            events.extend(p.feed(part).expect("feed"));
        } else {
            p.feed_into(part, &mut events).expect("feed_into");
        }
    }
    events.extend(p.finish().expect("finish"));
    (events, p.result())
}

/// Checks the streaming contract on one event list.
fn check_contract(events: &[Event], result: &ParseResult) -> Result<(), String> {
    let mut next = 0;
    let mut args: BTreeMap<usize, String> = BTreeMap::new();
    let mut open: Option<usize> = None;
    for e in events {
        match e {
            Event::ToolCallStart { index, name, .. } => {
                if *index != next || open.is_some() || name.is_empty() {
                    return Err(format!("bad start {e:?}"));
                }
                next += 1;
                open = Some(*index);
            }
            Event::ToolCallArgs { index, text } => {
                if open != Some(*index) {
                    return Err(format!("args outside their call: {e:?}"));
                }
                args.entry(*index).or_default().push_str(text);
            }
            Event::ToolCallEnd { index } => {
                if open != Some(*index) {
                    return Err(format!("bad end {e:?}"));
                }
                open = None;
            }
            _ => {}
        }
    }
    if open.is_some() || next != result.tool_calls.len() {
        return Err("unclosed call or count mismatch".into());
    }
    for (i, call) in result.tool_calls.iter().enumerate() {
        if args.get(&i).map_or("", String::as_str) != call.arguments {
            return Err(format!("call {i}: fragments do not concatenate to the arguments"));
        }
    }
    Ok(())
}

#[test]
fn corpus_conformance() {
    let cases = load_cases();
    assert!(cases.len() >= 600, "corpus has {} cases", cases.len());
    let mut exceptions: BTreeMap<String, Value> = BTreeMap::new();
    let text = std::fs::read_to_string(repo_root().join("tests/corpus_exceptions.jsonl")).expect("exceptions file");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad exceptions line {line:?}: {e}"));
        let id = v["id"].as_str().expect("exception id").to_string();
        assert!(
            v["reason"].as_str().is_some_and(|r| r.len() > 10),
            "exception {id} needs a reason"
        );
        assert!(
            v["expected"].is_object(),
            "exception {id} needs the expected result toolmend gives"
        );
        assert!(exceptions.insert(id.clone(), v).is_none(), "duplicate exception {id}");
    }
    let filter = std::env::var("TOOLMEND_CORPUS_FILTER").ok();
    let mut per_format: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut used_exceptions = 0;
    for case in &cases {
        if filter
            .as_ref()
            .is_some_and(|f| !case.id.contains(f.as_str()) && &case.format != f)
        {
            continue;
        }
        let entry = per_format.entry(case.format.clone()).or_default();
        entry.1 += 1;
        let expected = match exceptions.get(&case.id) {
            Some(ex) => {
                used_exceptions += 1;
                &ex["expected"]
            }
            None => &case.expected,
        };
        let whole = match parse(&case.output, options(case, Some(&case.format))) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{} [{}]: {e}", case.id, case.format));
                continue;
            }
        };
        let mut problem = check(&whole, expected).err();
        if problem.is_none() {
            let (whole_events, whole_stream) = stream(case, Some(&case.format), &[&case.output]);
            let reference = normalize(whole_events);
            if whole_stream != whole {
                problem = Some("one-chunk stream differs from parse()".into());
            }
            for mode in [1u64, 2, 3, 5, 7, 11, 13, 17, 19, 23] {
                if problem.is_some() {
                    break;
                }
                let parts = chunks(&case.output, mode);
                let (events, result) = stream(case, Some(&case.format), &parts);
                if let Err(e) = check_contract(&events, &result) {
                    problem = Some(format!("chunking {mode}: {e}"));
                } else if result != whole {
                    problem = Some(format!("chunking {mode}: result differs: {:?} vs {:?}", result, whole));
                } else if normalize(events) != reference {
                    problem = Some(format!("chunking {mode}: events differ"));
                }
            }
        }
        match problem {
            None => entry.0 += 1,
            Some(p) => failures.push(format!(
                "{} [{}]: {p}\n    output: {:?}",
                case.id, case.format, case.output
            )),
        }
    }
    println!("corpus conformance, per format (passed/total):");
    for (f, (ok, n)) in &per_format {
        println!("  {f:18} {ok:3}/{n:3}");
    }
    let total: usize = per_format.values().map(|v| v.1).sum();
    println!(
        "  {:18} {:3}/{:3} ({} with a documented exception)",
        "all",
        total - failures.len(),
        total,
        used_exceptions
    );
    if !failures.is_empty() {
        for f in failures.iter().take(400) {
            println!("FAIL {f}");
        }
        panic!("{} corpus cases failed", failures.len());
    }
}

/// Auto-detection: every corpus case whose expected result has calls must give the same
/// calls with `format = auto` as with its format named, from the text alone or with the
/// case's model id as a hint. Cases where the text alone is ambiguous and no model id is
/// given are listed (with the reason) in `AMBIGUOUS_WITHOUT_HINT`.
const AMBIGUOUS_WITHOUT_HINT: &[(&str, &str)] = &[
    (
        "smg/tool_parser_edge_cases/test_multiple_formats_in_text",
        "JSON in the middle of prose is a call only when generic_json is named",
    ),
    (
        "smg/tool_parser_fallback/test_escaped_json_like_content#1",
        "JSON in the middle of prose is a call only when generic_json is named",
    ),
    (
        "smg/tool_parser_json/test_json_array_of_tools",
        "JSON in the middle of prose is a call only when generic_json is named",
    ),
    (
        "smg/tool_parser_json/test_json_extraction_from_text",
        "JSON in the middle of prose is a call only when generic_json is named",
    ),
    (
        "smg/tool_parser_mixed_edge_cases/test_mixed_formats_in_text#1",
        "JSON in the middle of prose is a call only when generic_json is named",
    ),
    (
        "smg/tool_parser_mixed_edge_cases/test_boundary_cases_for_extraction#2",
        "JSON in the middle of prose is a call only when generic_json is named",
    ),
    (
        "smg/tool_parser_mixed_edge_cases/test_mixed_formats_in_text#2",
        "starts with a bare JSON object, so auto reads it as generic_json; only naming mistral_array ignores it",
    ),
    (
        "smg/tool_parser_pythonic/test_pythonic_real_world_llama4",
        "a pythonic list after prose is a call only when pythonic is named (or the model id says Llama-4)",
    ),
];

#[test]
fn auto_detection() {
    let cases = load_cases();
    let mut per_format: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let Ok(explicit) = parse(&case.output, options(case, Some(&case.format))) else {
            continue;
        };
        if explicit.tool_calls.is_empty() {
            continue;
        }
        let auto = parse(&case.output, options(case, None)).expect("auto parse");
        let same = auto.tool_calls.len() == explicit.tool_calls.len()
            && auto
                .tool_calls
                .iter()
                .zip(&explicit.tool_calls)
                .all(|(a, b)| a.name == b.name && a.arguments == b.arguments);
        let entry = per_format.entry(case.format.clone()).or_default();
        entry.1 += 1;
        if let Some((_, reason)) = AMBIGUOUS_WITHOUT_HINT.iter().find(|(id, _)| *id == case.id) {
            assert!(
                !same,
                "{} is listed as ambiguous ({reason}) but was detected: remove it",
                case.id
            );
            continue;
        }
        if same {
            entry.0 += 1;
        } else {
            failures.push(format!(
                "{} [{}] model {:?}: auto detected {:?} with {} calls",
                case.id,
                case.format,
                case.model,
                auto.format,
                auto.tool_calls.len()
            ));
        }
    }
    println!("auto-detection, per format (same calls as the named format / cases with calls):");
    for (f, (ok, n)) in &per_format {
        println!("  {f:18} {ok:3}/{n:3}");
    }
    for f in &failures {
        println!("MISS {f}");
    }
    assert!(failures.is_empty(), "{} cases were not auto-detected", failures.len());
}

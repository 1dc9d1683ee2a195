//! The tool-call tokenizer: `parse` on the whole text and a `StreamParser` fed an arbitrary
//! chunking (and fed the text in one piece) must give the same result and the same
//! (normalised) events; the events keep the streaming contract; every call's arguments are
//! a JSON object; nothing panics.
//!
//! Input: `[format, flags, model]`, a chunking pattern, the text. Format byte `0xff`: the text's
//! first line names the format (`auto` or a registry name; what `fuzz/seed.py` and the kept
//! reproducers use, so they survive registry changes) and the rest is the model output; any
//! other byte `b`: `b % (n + 1)`, 0 is auto, `i` is `FORMATS[i - 1]`. Flags: bit 0 starts in
//! reasoning, bit 1 turns repair off, bit 2 passes a fixed tool set, bit 3 passes
//! `MODEL_TABLE[model % len]` as the model id, bit 4 turns schema coercion off, bit 5 turns
//! validation off.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use toolmend_core::formats::{FORMATS, MODEL_TABLE};
use toolmend_core::{parse, Event, Options, ParseResult, StreamParser, ToolSet};
use toolmend_fuzz::{read_output, Input};

static TOOLS: LazyLock<Arc<ToolSet>> = LazyLock::new(|| {
    let tools = r#"[
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
                       "days": {"type": "integer"}, "hourly": {"type": "boolean"}}}}},
      {"type": "function", "function": {"name": "search", "parameters": {"type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": ["integer", "null"]},
                       "filters": {"type": "object"}, "tags": {"type": "array"}}}}},
      {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}},
      {"type": "function", "function": {"name": "python", "parameters": {"type": "object",
        "properties": {"code": {"type": "string"}}}}},
      {"name": "test", "parameters": {}},
      {"name": "get_current_time"}
    ]"#;
    Arc::new(ToolSet::from_json_str(tools).expect("fixed tool set"))
});

/// The options, and the model output (the text less a leading format-name line).
// `..Options::default()`: options added to the core later keep their defaults here.
#[allow(clippy::needless_update)]
fn options<'a>(input: &Input<'a, 3>) -> Option<(Options, &'a str)> {
    let [fmt, flags, model] = input.header;
    let (format, text) = if fmt == 0xff {
        let (name, rest) = input.text.split_once('\n')?;
        if name != "auto" && !FORMATS.iter().any(|f| f.name == name) {
            return None;
        }
        ((name != "auto").then(|| name.to_string()), rest)
    } else {
        let i = usize::from(fmt) % (FORMATS.len() + 1);
        ((i > 0).then(|| FORMATS[i - 1].name.to_string()), input.text)
    };
    let opts = Options {
        format,
        model: (flags & 8 != 0).then(|| MODEL_TABLE[usize::from(model) % MODEL_TABLE.len()].0.to_string()),
        tools: (flags & 4 != 0).then(|| TOOLS.clone()),
        repair: flags & 2 == 0,
        in_reasoning: flags & 1 != 0,
        id_seed: Some(7),
        coerce: flags & 16 == 0,
        validate: flags & 32 == 0,
        ..Options::default()
    };
    Some((opts, text))
}

fn stream(opts: &Options, parts: &[&str]) -> (Vec<Event>, ParseResult) {
    let mut p = StreamParser::new(opts.clone()).expect("parser");
    let mut events = Vec::new();
    for part in parts {
        events.extend(p.feed(part).expect("feed"));
    }
    events.extend(p.finish().expect("finish"));
    (events, p.result())
}

/// Merges adjacent text fragments of one kind (chunkings may split them differently).
fn normalize(events: &[Event]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in events.iter().cloned() {
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

/// Calls start in index order, one at a time; fragments belong to the open call and
/// concatenate to its final arguments.
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
            Event::Content(_) | Event::Reasoning(_) => {}
        }
    }
    if open.is_some() || next != result.tool_calls.len() {
        return Err(format!(
            "unclosed call or count mismatch: {next} starts, {} calls",
            result.tool_calls.len()
        ));
    }
    for (i, call) in result.tool_calls.iter().enumerate() {
        let streamed = args.get(&i).map_or("", String::as_str);
        if streamed != call.arguments {
            return Err(format!(
                "call {i}: fragments {streamed:?} do not concatenate to the arguments {:?}",
                call.arguments
            ));
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::<3>::decode(data) else {
        return;
    };
    let Some((opts, text)) = options(&input) else {
        return;
    };
    let parts = input.chunks_of(text);
    let ctx = || format!("options: {opts:?}\ntext: {text:?}\nchunks: {parts:?}");

    let whole = parse(text, opts.clone()).expect("parse");
    let (one_events, one) = stream(&opts, &[text]);
    assert_eq!(one, whole, "one-chunk stream differs from parse()\n{}", ctx());
    let (events, chunked) = stream(&opts, &parts);
    assert_eq!(chunked, whole, "chunked stream differs from parse()\n{}", ctx());
    if let Err(e) = check_contract(&one_events, &one).and_then(|()| check_contract(&events, &chunked)) {
        panic!("streaming contract: {e}\n{}", ctx());
    }
    assert_eq!(
        normalize(&events),
        normalize(&one_events),
        "chunked events differ from one-chunk events\n{}",
        ctx()
    );
    for (i, call) in whole.tool_calls.iter().enumerate() {
        match read_output(&call.arguments) {
            Ok(Value::Object(_)) => {}
            _ => panic!(
                "call {i} ({}): arguments are not a JSON object: {:?}\n{}",
                call.name,
                call.arguments,
                ctx()
            ),
        }
        assert!(!call.name.is_empty(), "call {i} has no name\n{}", ctx());
    }
    for d in &whole.diagnostics {
        assert!(
            d.start <= d.end && d.end <= text.len(),
            "diagnostic span out of range: {d:?}\n{}",
            ctx()
        );
    }
});

//! Streaming schema coercion through every family that writes JSON arguments: the
//! streamed fragments are already coerced, concatenate to the final arguments, and are
//! the same for every chunking.

use std::sync::Arc;

use serde_json::{json, Value};
use toolmend_core::{parse, Event, Options, ParseResult, StreamParser, ToolSet};

fn tools() -> Arc<ToolSet> {
    let t = json!([{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "b": {"type": "boolean"},
            "e": {"type": "string", "enum": ["Celsius", "Fahrenheit"]},
            "l": {"type": "array", "items": {"type": "integer"}},
            "s": {"type": "string"},
            "mode": {"type": "string", "default": "fast"}
        },
        "required": ["mode"],
        "additionalProperties": false
    }}}]);
    Arc::new(ToolSet::from_json(&t).expect("tools"))
}

fn opts(format: &str, coerce: bool) -> Options {
    Options {
        format: Some(format.to_string()),
        tools: Some(tools()),
        id_seed: Some(7),
        coerce,
        ..Options::default()
    }
}

/// Feeds `text` in `chunk`-char pieces; returns the result and the concatenated argument
/// fragments per call.
fn stream(text: &str, format: &str, chunk: usize) -> (ParseResult, Vec<String>) {
    let mut p = StreamParser::new(opts(format, true)).expect("parser");
    let mut events: Vec<Event> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(chunk) {
        events.extend(p.feed(&piece.iter().collect::<String>()).expect("feed"));
    }
    events.extend(p.finish().expect("finish"));
    let mut frags: Vec<String> = Vec::new();
    for e in events {
        match e {
            Event::ToolCallStart { .. } => frags.push(String::new()),
            Event::ToolCallArgs { index, text } => frags[index].push_str(&text),
            _ => {}
        }
    }
    (p.result(), frags)
}

fn check(format: &str, text: &str, want: Value, kinds: &[&str]) {
    let whole = parse(text, opts(format, true)).expect("parse");
    assert_eq!(whole.tool_calls.len(), 1, "{format}: {whole:?}");
    let got: Value = serde_json::from_str(&whole.tool_calls[0].arguments).expect("json");
    assert_eq!(got, want, "{format}");
    for k in kinds {
        assert!(
            whole.diagnostics.iter().any(|d| d.kind == *k),
            "{format}: no {k} in {:?}",
            whole.diagnostics
        );
    }
    for chunk in [1, 2, 3, 5, 11, 1000] {
        let (r, frags) = stream(text, format, chunk);
        assert_eq!(r, whole, "{format} chunk {chunk}");
        // Fragments concatenate to the final arguments: nothing was retracted.
        assert_eq!(
            frags,
            vec![whole.tool_calls[0].arguments.clone()],
            "{format} chunk {chunk}"
        );
    }
    // Coercion off: the arguments are as written.
    let plain = parse(text, opts(format, false)).expect("parse");
    assert_ne!(plain.tool_calls[0].arguments, whole.tool_calls[0].arguments, "{format}");
}

fn want() -> Value {
    json!({"n": 42, "b": true, "e": "Celsius", "l": [7], "s": "02139", "mode": "fast"})
}

const ARGS: &str = r#"{"n": "42", "b": "true", "e": "celsius", "l": "7", "s": "02139", "x": {"y": [1]}}"#;

const KINDS: &[&str] = &[
    "coerced_number",
    "coerced_boolean",
    "enum_case",
    "wrapped_in_array",
    "dropped_property",
    "default_filled",
];

#[test]
fn envelope() {
    check(
        "hermes",
        &format!("<tool_call>\n{{\"name\": \"f\", \"arguments\": {ARGS}}}\n</tool_call>"),
        want(),
        KINDS,
    );
    // The arguments before the name: coerced once the name says which schema applies.
    check(
        "hermes",
        &format!("<tool_call>\n{{\"arguments\": {ARGS}, \"name\": \"f\"}}\n</tool_call>"),
        want(),
        KINDS,
    );
    // JSON-encoded arguments.
    let encoded = serde_json::to_string(ARGS).expect("encode");
    check(
        "hermes",
        &format!("<tool_call>{{\"name\": \"f\", \"arguments\": {encoded}}}</tool_call>"),
        want(),
        KINDS,
    );
}

#[test]
fn named() {
    check("mistral_v13", &format!("[TOOL_CALLS]f[ARGS]{ARGS}"), want(), KINDS);
}

#[test]
fn pythonic() {
    check(
        "pythonic",
        r#"[f(n="42", x={"y": [1, "z"]}, b="true", e="celsius", l=7, s="02139")]"#,
        want(),
        KINDS,
    );
}

#[test]
fn harmony() {
    check(
        "harmony",
        &format!("<|start|>assistant<|channel|>commentary to=functions.f<|constrain|>json<|message|>{ARGS}<|call|>"),
        want(),
        KINDS,
    );
}

#[test]
fn gemma() {
    check(
        "gemma4",
        r#"<|tool_call>call:f{n:<|"|>42<|"|>,b:<|"|>true<|"|>,e:<|"|>celsius<|"|>,l:7,s:<|"|>02139<|"|>}<tool_call|>"#,
        want(),
        &[
            "coerced_number",
            "coerced_boolean",
            "enum_case",
            "wrapped_in_array",
            "default_filled",
        ],
    );
}

#[test]
fn xml_typed_values() {
    let text = "<tool_call>\n<function=f>\n<parameter=n>42</parameter>\n<parameter=x>{\"y\": 1}</parameter>\n<parameter=l>7</parameter>\n<parameter=s>02139</parameter>\n</function>\n</tool_call>";
    let r = parse(text, opts("qwen3_xml", true)).expect("parse");
    let got: Value = serde_json::from_str(&r.tool_calls[0].arguments).expect("json");
    assert_eq!(got, json!({"n": 42, "l": [7], "s": "02139", "mode": "fast"}));
    for k in ["wrapped_in_array", "dropped_property", "default_filled"] {
        assert!(r.diagnostics.iter().any(|d| d.kind == k), "{k}: {:?}", r.diagnostics);
    }
    for chunk in [1, 3, 7] {
        let (s, frags) = stream(text, "qwen3_xml", chunk);
        assert_eq!(s, r);
        assert_eq!(frags, vec![r.tool_calls[0].arguments.clone()]);
    }
}

#[test]
fn xml_json_body() {
    check(
        "deepseek_dsml",
        &format!("<\u{ff5c}DSML\u{ff5c}tool_calls>\n<\u{ff5c}DSML\u{ff5c}invoke name=\"f\">\n{ARGS}\n</\u{ff5c}DSML\u{ff5c}invoke>\n</\u{ff5c}DSML\u{ff5c}tool_calls>"),
        want(),
        KINDS,
    );
}

#[test]
fn no_tools_no_coercion() {
    let text = format!("<tool_call>\n{{\"name\": \"f\", \"arguments\": {ARGS}}}\n</tool_call>");
    let r = parse(
        &text,
        Options {
            format: Some("hermes".into()),
            ..Options::default()
        },
    )
    .expect("parse");
    let got: Value = serde_json::from_str(&r.tool_calls[0].arguments).expect("json");
    let written: Value = serde_json::from_str(ARGS).expect("json");
    assert_eq!(got, written);
}

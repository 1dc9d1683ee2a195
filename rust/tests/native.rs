//! Structured calls (OpenAI `tool_calls` deltas from a backend that parsed the call itself)
//! are mended like calls written as text, share the index sequence with them, and never
//! interleave with them.

use std::sync::Arc;

use serde_json::json;
use toolmend_core::{Event, Options, ParseResult, StreamParser, ToolSet};

fn tools() -> Arc<ToolSet> {
    let t = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"]
        }}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}
    ]);
    Arc::new(ToolSet::from_json(&t).expect("tools"))
}

fn parser(tools: Option<Arc<ToolSet>>, format: Option<&str>) -> StreamParser {
    StreamParser::new(Options {
        format: format.map(str::to_string),
        tools,
        id_seed: Some(3),
        ..Options::default()
    })
    .expect("parser")
}

/// One structured call fed as `fragments`; returns its events and the result.
fn one_call(tools: Option<Arc<ToolSet>>, name: &str, fragments: &[&str]) -> (Vec<Event>, ParseResult) {
    let mut p = parser(tools, None);
    let mut ev = p.call_start(name, Some("call_x")).unwrap();
    for f in fragments {
        ev.extend(p.call_args(f).unwrap());
    }
    ev.extend(p.call_end().unwrap());
    ev.extend(p.finish().unwrap());
    (ev, p.result())
}

fn args_of(events: &[Event], index: usize) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallArgs { index: i, text } if *i == index => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn kinds(r: &ParseResult) -> Vec<&'static str> {
    r.diagnostics.iter().map(|d| d.kind).collect()
}

#[test]
fn a_well_formed_call_passes_unchanged_and_keeps_its_id() {
    let (ev, r) = one_call(Some(tools()), "get_weather", &["{\"city\": \"Pa", "ris\"}"]);
    assert_eq!(
        ev[0],
        Event::ToolCallStart {
            index: 0,
            id: "call_x".into(),
            name: "get_weather".into()
        }
    );
    assert_eq!(ev.last(), Some(&Event::ToolCallEnd { index: 0 }));
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!(args_of(&ev, 0), r.tool_calls[0].arguments);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
}

#[test]
fn broken_arguments_are_repaired_and_coerced() {
    let (ev, r) = one_call(Some(tools()), "get_weather", &["{'city': 'Paris', 'days': '3',}"]);
    assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Paris","days":3}"#);
    assert_eq!(args_of(&ev, 0), r.tool_calls[0].arguments);
    let k = kinds(&r);
    assert!(k.contains(&"single_quotes"), "{k:?}");
    assert!(k.iter().any(|k| k.starts_with("coerced")), "{k:?}");
}

#[test]
fn truncated_arguments_are_closed() {
    let (_, r) = one_call(None, "get_weather", &["{\"city\": \"Par"]);
    assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Par"}"#);
    assert!(kinds(&r).iter().any(|k| k.starts_with("truncated")), "{:?}", kinds(&r));
}

#[test]
fn empty_arguments_become_an_empty_object() {
    for frags in [&[][..], &[""][..], &["  "][..]] {
        let (ev, r) = one_call(Some(tools()), "noop", frags);
        assert_eq!(r.tool_calls[0].arguments, "{}");
        assert_eq!(args_of(&ev, 0), "{}");
    }
}

#[test]
fn arguments_sent_twice_are_kept_once() {
    let (_, r) = one_call(None, "get_weather", &["{\"city\":\"A\"}", "{\"city\":\"A\"}"]);
    assert_eq!(r.tool_calls[0].arguments, r#"{"city":"A"}"#);
    assert!(kinds(&r).contains(&"trailing_text"));
}

#[test]
fn an_undeclared_tool_is_kept_as_content() {
    let (ev, r) = one_call(Some(tools()), "delete_everything", &["{\"x\": 1}"]);
    assert!(r.tool_calls.is_empty());
    assert!(!ev.iter().any(|e| matches!(e, Event::ToolCallStart { .. })));
    assert_eq!(
        r.content.as_deref(),
        Some(r#"{"name":"delete_everything","arguments":{"x": 1}}"#)
    );
    assert!(kinds(&r).contains(&"unknown_tool"));
}

#[test]
fn a_misspelled_name_resolves_to_the_declared_tool() {
    let (_, r) = one_call(Some(tools()), "Get-Weather", &["{\"city\":\"A\"}"]);
    assert_eq!(r.tool_calls[0].name, "get_weather");
}

#[test]
fn every_chunking_of_the_arguments_gives_the_same_call() {
    let args = r#"{'city': "Par\"is", "days": "4", }"#;
    let (_, whole) = one_call(Some(tools()), "get_weather", &[args]);
    for cut in 1..args.len() {
        let (ev, r) = one_call(Some(tools()), "get_weather", &[&args[..cut], &args[cut..]]);
        assert_eq!(r.tool_calls, whole.tool_calls, "cut at {cut}");
        assert_eq!(args_of(&ev, 0), whole.tool_calls[0].arguments);
    }
}

#[test]
fn text_calls_and_structured_calls_share_one_index_sequence() {
    let mut p = parser(None, Some("hermes"));
    let mut ev = p
        .feed("Sure. <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>")
        .unwrap();
    ev.extend(p.call_start("b", None).unwrap());
    ev.extend(p.call_args("{}").unwrap());
    ev.extend(p.call_end().unwrap());
    ev.extend(p.finish().unwrap());
    let starts: Vec<(usize, String)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallStart { index, name, .. } => Some((*index, name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![(0, "a".to_string()), (1, "b".to_string())]);
    let r = p.result();
    assert_eq!(r.content.as_deref(), Some("Sure."));
    assert_ne!(r.tool_calls[1].id, r.tool_calls[0].id);
}

#[test]
fn a_structured_call_waits_for_an_open_text_call() {
    let mut p = parser(None, Some("hermes"));
    let mut ev = p.feed("<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": ").unwrap();
    ev.extend(p.call_start("b", Some("id_b")).unwrap());
    ev.extend(p.call_args("{\"y\": 2}").unwrap());
    ev.extend(p.call_end().unwrap());
    ev.extend(p.feed("1}}</tool_call>").unwrap());
    ev.extend(p.finish().unwrap());
    // Every event of call 0 comes before call 1 starts.
    let first_b = ev
        .iter()
        .position(|e| matches!(e, Event::ToolCallStart { index: 1, .. }))
        .unwrap();
    let last_a = ev
        .iter()
        .rposition(|e| matches!(e, Event::ToolCallEnd { index: 0 }))
        .unwrap();
    assert!(last_a < first_b, "{ev:?}");
    let r = p.result();
    assert_eq!(r.tool_calls[0].arguments, r#"{"x":1}"#);
    assert_eq!(r.tool_calls[1].arguments, r#"{"y":2}"#);
    assert_eq!(r.tool_calls[1].id, "id_b");
}

#[test]
fn text_during_a_structured_call_follows_it() {
    let mut p = parser(None, None);
    let mut ev = p.call_start("a", None).unwrap();
    ev.extend(p.call_args("{\"x\":").unwrap());
    ev.extend(p.feed("done").unwrap());
    ev.extend(p.call_args(" 1}").unwrap());
    ev.extend(p.call_end().unwrap());
    ev.extend(p.finish().unwrap());
    let r = p.result();
    assert_eq!(r.tool_calls[0].arguments, r#"{"x":1}"#);
    assert_eq!(r.content.as_deref(), Some("done"));
    let content_at = ev.iter().position(|e| matches!(e, Event::Content(_))).unwrap();
    let end_at = ev.iter().position(|e| matches!(e, Event::ToolCallEnd { .. })).unwrap();
    assert!(end_at < content_at);
}

#[test]
fn finish_closes_an_open_structured_call() {
    let mut p = parser(None, None);
    p.call_start("a", None).unwrap();
    p.call_args("{\"x\": [1, 2").unwrap();
    let ev = p.finish().unwrap();
    assert!(ev.contains(&Event::ToolCallEnd { index: 0 }));
    assert_eq!(p.result().tool_calls[0].arguments, r#"{"x":[1,2]}"#);
    assert!(p.call_start("b", None).is_err());
}

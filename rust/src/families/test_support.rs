//! Shared test harness for the family modules: parse a text whole and in many chunkings and
//! check that results and (merged) events agree.

use std::sync::Arc;

use crate::event::Event;
use crate::parser::{parse, Options, StreamParser};
use crate::tools::ToolSet;
use crate::ParseResult;

/// Options with a fixed id seed, an optional format name and an optional tools JSON list.
pub fn opts(format: Option<&str>, tools: Option<&str>) -> Options {
    Options {
        format: format.map(str::to_string),
        tools: tools.map(|t| Arc::new(ToolSet::from_json_str(t).expect("tools"))),
        id_seed: Some(1),
        ..Options::default()
    }
}

/// Merges adjacent text fragments of the same kind.
pub fn normalize(events: Vec<Event>) -> Vec<Event> {
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

/// Streams `text` in chunks of `size` characters; returns the merged events and the result.
pub fn stream(text: &str, o: Options, size: usize) -> (Vec<Event>, ParseResult) {
    let mut p = StreamParser::new(o).expect("parser");
    let mut events = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for chunk in chars.chunks(size.max(1)) {
        let s: String = chunk.iter().collect();
        events.extend(p.feed(&s).expect("feed"));
    }
    events.extend(p.finish().expect("finish"));
    (normalize(events), p.result())
}

/// Parses whole and in many chunkings; all must agree. Returns the whole result.
pub fn check(format: Option<&str>, tools: Option<&str>, text: &str) -> ParseResult {
    let whole = parse(text, opts(format, tools)).expect("parse");
    let (ref_events, _) = stream(text, opts(format, tools), usize::MAX);
    for size in [1, 2, 3, 5, 8, 13] {
        let (events, result) = stream(text, opts(format, tools), size);
        assert_eq!(result, whole, "chunk size {size} for {text:?}");
        assert_eq!(events, ref_events, "events, chunk size {size} for {text:?}");
    }
    whole
}

/// The calls of a result as (name, arguments) pairs.
pub fn calls(r: &ParseResult) -> Vec<(String, String)> {
    r.tool_calls
        .iter()
        .map(|c| (c.name.clone(), c.arguments.clone()))
        .collect()
}

/// One expected call.
pub fn one(name: &str, args: &str) -> Vec<(String, String)> {
    vec![(name.to_string(), args.to_string())]
}

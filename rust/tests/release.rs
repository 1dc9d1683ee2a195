//! Text is released as soon as it cannot be the start of call markup: a stream's latency
//! depends on the formats' markers, not on words that merely begin like one.

use std::sync::Arc;

use serde_json::json;
use toolmend_core::{Event, Options, StreamParser, ToolSet};

fn content(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Content(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn parser() -> StreamParser {
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    StreamParser::new(Options {
        tools: Some(Arc::new(ToolSet::from_json(&tools).expect("tools"))),
        ..Options::default()
    })
    .expect("parser")
}

#[test]
fn a_word_ending_like_a_marker_start_is_not_held() {
    let mut p = parser();
    assert_eq!(content(&p.feed("The top of").unwrap()), "The top of");
    assert_eq!(content(&p.feed(" itself").unwrap()), " itself");
}

#[test]
fn a_word_marker_at_a_word_start_still_waits_and_parses() {
    let mut p = parser();
    assert_eq!(content(&p.feed("Calling: f").unwrap()), "Calling:");
    let mut events = p.feed("unctools[{\"name\": \"f\", \"arguments\": {}}]").unwrap();
    events.extend(p.finish().unwrap());
    let r = p.result();
    assert_eq!(r.tool_calls.len(), 1, "{r:?}");
    assert_eq!(r.format, Some("functools"));
}

#[test]
fn a_word_marker_inside_a_word_is_text_whatever_the_chunking() {
    let text = "xfunctools[{\"name\": \"f\", \"arguments\": {}}]";
    for cut in 0..text.len() {
        let mut p = parser();
        p.feed(&text[..cut]).unwrap();
        p.feed(&text[cut..]).unwrap();
        p.finish().unwrap();
        let r = p.result();
        assert!(r.tool_calls.is_empty(), "cut {cut}: {r:?}");
        assert_eq!(r.content.as_deref(), Some(text), "cut {cut}");
    }
}

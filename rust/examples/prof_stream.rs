//! Callgrind harness for the per-delta streaming cost.
//!
//! Default: one 16 KB hermes call streamed in 4-byte deltas, 20 times, without tools.
//! With `PROF_DELTAS=file` (deltas separated by NUL bytes), `PROF_FORMAT=name` and optionally
//! `PROF_TOOLS=tools.json` (an OpenAI `tools` array), that stream is replayed instead, e.g. the
//! bench-anchors W2 workload. `cargo build --profile profiling --example prof_stream &&
//! valgrind --tool=callgrind target/profiling/examples/prof_stream`
use std::sync::Arc;
use toolmend_core::{Options, StreamParser, ToolSet};

fn synthetic() -> Vec<String> {
    let line = "    body = json.loads(event['body'])  # {'k': \\\"v\\\"}\\n";
    let content: String = line.repeat(16 * 1024 / line.len());
    let doc = format!(
        "I'll write it.\n<tool_call>\n{{\"name\": \"write_file\", \"arguments\": {{\"path\": \"a.py\", \"content\": \"{content}\"}}}}\n</tool_call>"
    );
    doc.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii").to_owned())
        .collect()
}

fn main() {
    let (deltas, format) = match std::env::var("PROF_DELTAS") {
        Ok(path) => {
            let text = std::fs::read_to_string(path).expect("deltas file");
            let deltas = text.split('\0').map(str::to_owned).collect();
            (deltas, std::env::var("PROF_FORMAT").expect("PROF_FORMAT"))
        }
        Err(_) => (synthetic(), "hermes".to_owned()),
    };
    let tools = std::env::var("PROF_TOOLS").ok().map(|path| {
        let text = std::fs::read_to_string(path).expect("tools file");
        let set = ToolSet::from_json_str(&text).expect("tools");
        set.compile_validators();
        Arc::new(set)
    });
    let mut events = 0;
    let mut buf = Vec::new();
    for _ in 0..20 {
        let mut p = StreamParser::new(Options {
            format: Some(format.clone()),
            tools: tools.clone(),
            ..Options::default()
        })
        .expect("parser");
        for d in &deltas {
            p.feed_into(d, &mut buf).expect("feed");
            events += buf.len();
            buf.clear();
        }
        events += p.finish().expect("finish").len();
    }
    println!("{} deltas, {events} events", deltas.len() * 20);
}

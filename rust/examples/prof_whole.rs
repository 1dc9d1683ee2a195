//! Callgrind harness: many whole parses of a 16 KB completion (per-byte cost).
//! `cargo build --profile profiling --example prof_whole && valgrind --tool=callgrind target/profiling/examples/prof_whole`
//! With `PROF_TEXTS=file` (completions separated by NUL bytes), `PROF_FORMAT=name` and
//! optionally `PROF_TOOLS=tools.json` (an OpenAI `tools` array), those completions are parsed
//! (10 times) instead, e.g. the bench-anchors W1 workload.
use std::sync::Arc;
use toolmend_core::{parse, Options, ToolSet};

fn replay(path: String) {
    let text = std::fs::read_to_string(path).expect("texts file");
    let format = std::env::var("PROF_FORMAT").expect("PROF_FORMAT");
    let tools = std::env::var("PROF_TOOLS").ok().map(|path| {
        let set = ToolSet::from_json_str(&std::fs::read_to_string(path).expect("tools file")).expect("tools");
        set.compile_validators();
        Arc::new(set)
    });
    let mut calls = 0;
    for _ in 0..10 {
        for doc in text.split('\0') {
            let opts = Options {
                format: Some(format.clone()),
                tools: tools.clone(),
                ..Options::default()
            };
            calls += parse(doc, opts).expect("parse").tool_calls.len();
        }
    }
    println!("{calls} calls");
}

fn main() {
    if let Ok(path) = std::env::var("PROF_TEXTS") {
        return replay(path);
    }
    let line = "    let value = compute(x, y) + offset; // add the \"offset\" here\n";
    let mut body = String::new();
    while body.len() < 16 * 1024 {
        body.push_str(line);
    }
    let content = serde_json::to_string(&body).unwrap();
    let doc = format!("I'll write.\n<tool_call>\n{{\"name\": \"write_file\", \"arguments\": {{\"path\": \"a.rs\", \"content\": {content}}}}}\n</tool_call>");
    let mut n = 0;
    for _ in 0..200 {
        let r = parse(
            &doc,
            Options {
                format: Some("hermes".into()),
                id_seed: Some(1),
                ..Options::default()
            },
        )
        .unwrap();
        n += r.tool_calls[0].arguments.len();
    }
    println!("{n}");
}

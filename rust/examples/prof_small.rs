//! Callgrind harness: many whole parses of a small completion (per-call overhead).
//! `cargo build --profile profiling --example prof_small && valgrind --tool=callgrind target/profiling/examples/prof_small`
use toolmend_core::{parse, Options};

fn main() {
    let doc = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    let mut n = 0;
    for _ in 0..20_000 {
        let r = parse(
            doc,
            Options {
                format: Some("hermes".into()),
                ..Options::default()
            },
        )
        .expect("parse");
        n += r.tool_calls.len();
    }
    println!("{n}");
}

//! Callgrind harness: many whole parses of a 16 KB completion (per-byte cost).
//! `cargo build --profile profiling --example prof_whole && valgrind --tool=callgrind target/profiling/examples/prof_whole`
use toolmend_core::{parse, Options};
fn main() {
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

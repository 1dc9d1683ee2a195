//! Callgrind harness: one 16 KB hermes call streamed in 4-byte deltas, 20 times (per-delta cost).
//! `cargo build --profile profiling --example prof_stream && valgrind --tool=callgrind target/profiling/examples/prof_stream`
use toolmend_core::{Options, StreamParser};

fn main() {
    let line = "    body = json.loads(event['body'])  # {'k': \\\"v\\\"}\\n";
    let content: String = line.repeat(16 * 1024 / line.len());
    let doc = format!(
        "I'll write it.\n<tool_call>\n{{\"name\": \"write_file\", \"arguments\": {{\"path\": \"a.py\", \"content\": \"{content}\"}}}}\n</tool_call>"
    );
    let deltas: Vec<&str> = doc
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    let mut events = 0;
    let mut buf = Vec::new();
    for _ in 0..20 {
        let mut p = StreamParser::new(Options {
            format: Some("hermes".into()),
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

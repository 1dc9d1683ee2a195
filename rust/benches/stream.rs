//! Criterion benchmarks: whole-parse throughput, and streaming cost per delta as the
//! arguments grow (1, 4, 16, 64 KB). Flat time per delta across sizes shows O(n) total work.
//!
//! Run: `cargo bench -p toolmend-core --bench stream`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use toolmend_core::{parse, Options, StreamParser};

/// A hermes completion with one `write_file` call whose `content` is `kb` KB of code-like
/// text (quotes, backslashes, newlines, unicode), then a small second call.
fn document(kb: usize) -> String {
    let line = "    let s = \"tab\\there \\\"quoted\\\" — ünïcode\"; // path C:\\\\tmp\\n\n";
    let mut body = String::new();
    while body.len() < kb * 1024 {
        body.push_str(line);
    }
    let content = serde_json::to_string(&body).expect("json string");
    format!(
        "I'll write the file now.\n<tool_call>\n{{\"name\": \"write_file\", \"arguments\": {{\"path\": \"src/main.rs\", \"content\": {content}}}}}\n</tool_call>\n<tool_call>\n{{\"name\": \"run\", \"arguments\": {{\"cmd\": \"cargo test\"}}}}\n</tool_call>"
    )
}

/// Splits text into ~4-byte deltas at char boundaries (like BPE tokens).
fn deltas(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    for (idx, _) in text.char_indices() {
        if idx - start >= 4 {
            out.push(&text[start..idx]);
            start = idx;
        }
        i = idx;
    }
    let _ = i;
    out.push(&text[start..]);
    out
}

fn opts(format: &str) -> Options {
    Options {
        format: Some(format.to_string()),
        id_seed: Some(1),
        ..Options::default()
    }
}

fn bench_whole(c: &mut Criterion) {
    let mut g = c.benchmark_group("whole_parse");
    for kb in [1usize, 16] {
        let doc = document(kb);
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(BenchmarkId::new("hermes", kb), &doc, |b, doc| {
            b.iter(|| parse(black_box(doc), opts("hermes")).expect("parse"));
        });
        g.bench_with_input(BenchmarkId::new("auto", kb), &doc, |b, doc| {
            b.iter(|| parse(black_box(doc), opts("auto")).expect("parse"));
        });
    }
    g.finish();
}

fn bench_stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_per_delta");
    for kb in [1usize, 4, 16, 64] {
        let doc = document(kb);
        let parts = deltas(&doc);
        // Time per delta = reported time / elements.
        g.throughput(Throughput::Elements(parts.len() as u64));
        g.bench_with_input(BenchmarkId::new("hermes", kb), &parts, |b, parts| {
            b.iter(|| {
                let mut p = StreamParser::new(opts("hermes")).expect("parser");
                let mut n = 0;
                for d in parts {
                    n += p.feed(black_box(d)).expect("feed").len();
                }
                n += p.finish().expect("finish").len();
                black_box(n)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_whole, bench_stream);
criterion_main!(benches);

//! Callgrind harness for the per-delta streaming cost.
//!
//! Default: one 16 KB hermes call streamed in 4-byte deltas, 20 times, without tools.
//! With `PROF_DELTAS=file` (deltas separated by NUL bytes), `PROF_FORMAT=name` and optionally
//! `PROF_TOOLS=tools.json` (an OpenAI `tools` array), that stream is replayed instead, e.g. the
//! bench-anchors W2 workload. `cargo build --profile profiling --example prof_stream &&
//! valgrind --tool=callgrind target/profiling/examples/prof_stream`
//! `PROF_TIMES=1` prints the slowest deltas; `PROF_LIMIT=n` replays only the first n deltas;
//! `PROF_FOCUS=i` feeds delta i through `feed_focused`, to profile that delta alone with
//! callgrind's `--toggle-collect=*feed_focused*`. `PROF_ALLOCS=1` prints the heap allocations
//! made by each delta of the first replay, and by the first two constructions of the parser.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use toolmend_core::{Options, StreamParser, ToolSet};

/// The system allocator, counting allocations and reallocations (for `PROF_ALLOCS`).
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    // PROF_LIMIT=n: replay only the first n deltas (e.g. to profile a call's start).
    let mut deltas = deltas;
    if let Some(n) = std::env::var("PROF_LIMIT").ok().and_then(|n| n.parse().ok()) {
        deltas.truncate(n);
    }
    let tools = std::env::var("PROF_TOOLS").ok().map(|path| {
        let text = std::fs::read_to_string(path).expect("tools file");
        let set = ToolSet::from_json_str(&text).expect("tools");
        set.compile_validators();
        Arc::new(set)
    });
    let timed = std::env::var("PROF_TIMES").is_ok();
    // PROF_FOCUS=i: delta i is fed through `feed_focused`, for `--toggle-collect=*feed_focused*`.
    let focus: Option<usize> = std::env::var("PROF_FOCUS").ok().and_then(|n| n.parse().ok());
    let mut times = vec![Vec::new(); deltas.len()];
    let mut events = 0;
    let mut buf = Vec::new();
    let allocs = std::env::var("PROF_ALLOCS").is_ok();
    for round in 0..20 {
        let before = ALLOCS.load(Ordering::Relaxed);
        let mut p = StreamParser::new(Options {
            format: Some(format.clone()),
            tools: tools.clone(),
            ..Options::default()
        })
        .expect("parser");
        if allocs && round < 2 {
            // The first construction also makes the process's lazily built tables.
            let n = ALLOCS.load(Ordering::Relaxed) - before;
            println!("construction {}: {n} allocations", round + 1);
        }
        for (i, d) in deltas.iter().enumerate() {
            let before = ALLOCS.load(Ordering::Relaxed);
            let t0 = std::time::Instant::now();
            if focus == Some(i) {
                feed_focused(&mut p, d, &mut buf);
            } else {
                p.feed_into(d, &mut buf).expect("feed");
            }
            if timed {
                times[i].push(t0.elapsed().as_nanos());
            }
            let n = ALLOCS.load(Ordering::Relaxed) - before;
            if allocs && round == 0 && n > 0 {
                println!("delta {i:5}: {n} allocations {d:?}");
            }
            events += buf.len();
            buf.clear();
        }
        events += p.finish().expect("finish").len();
    }
    println!("{} deltas, {events} events", deltas.len() * 20);
    if timed {
        // PROF_TIMES=1: the slowest deltas by median time over the 20 replays.
        let mut med: Vec<(u128, usize)> = times
            .iter_mut()
            .enumerate()
            .map(|(i, t)| {
                t.sort_unstable();
                (t[t.len() / 2], i)
            })
            .collect();
        let total: u128 = med.iter().map(|m| m.0).sum();
        med.sort_unstable_by(|a, b| b.cmp(a));
        println!("median total {total} ns, p50 delta {} ns", med[med.len() / 2].0);
        for (ns, i) in med.iter().take(12) {
            println!("{i:6} {ns:8} ns {:?}", deltas[*i]);
        }
    }
}

#[inline(never)]
fn feed_focused(p: &mut StreamParser, delta: &str, buf: &mut Vec<toolmend_core::Event>) {
    p.feed_into(delta, buf).expect("feed");
}

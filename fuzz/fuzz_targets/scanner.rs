//! The incremental `json::Scanner` + `JsonWriter` over an arbitrary chunking must give what
//! the one-shot `json::rewrite` gives (output, repairs, bytes consumed); any output is JSON;
//! and a text serde_json reads is read to the same value.
//!
//! Input: `[flags]` (bit 0: Python dialect, bit 1: strict), a chunking pattern, the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use toolmend_core::event::Repair;
use toolmend_core::json::{rewrite, Dialect, JsonWriter, Progress, Scanner};
use toolmend_fuzz::{read_output, Input};

fn incremental(parts: &[&str], dialect: Dialect, lenient: bool) -> Option<(String, Vec<Repair>, usize)> {
    let mut sc = Scanner::new(dialect, lenient, 0);
    let mut w = JsonWriter::new();
    let mut out = String::new();
    let mut pending = String::new();
    let mut consumed = 0;
    for part in parts {
        pending.push_str(part);
        let p = sc.feed(&pending, &mut w);
        out.push_str(&w.take());
        match p {
            Progress::Partial { consumed: n } => {
                assert!(n <= pending.len(), "consumed past the input");
                pending.drain(..n);
                consumed += n;
            }
            Progress::Done { consumed: n } => {
                assert!(n <= pending.len(), "consumed past the input");
                assert_eq!(sc.offset(), consumed + n, "offset() disagrees with consumed");
                return Some((out, std::mem::take(&mut sc.repairs), consumed + n));
            }
            Progress::Error { .. } => return None,
        }
    }
    assert_eq!(sc.offset(), consumed, "offset() disagrees with consumed");
    if !sc.finish(&mut w) {
        return None;
    }
    out.push_str(&w.take());
    Some((out, std::mem::take(&mut sc.repairs), consumed))
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::<1>::decode(data) else {
        return;
    };
    let flags = input.header[0];
    let dialect = if flags & 1 == 1 { Dialect::Python } else { Dialect::Json };
    let lenient = flags & 2 == 0;
    let text = input.text;

    let whole = rewrite(text, dialect, lenient);
    let parts = input.chunks();
    let streamed = incremental(&parts, dialect, lenient);
    assert_eq!(
        streamed, whole,
        "chunked scan differs from rewrite ({dialect:?}, lenient {lenient})\ntext: {text:?}\nchunks: {parts:?}"
    );

    if let Some((json, repairs, consumed)) = &whole {
        assert!(*consumed <= text.len());
        let got: Value = read_output(json).unwrap_or_else(|e| {
            panic!("output is not JSON ({e}): {json:?}\n({dialect:?}, lenient {lenient}) text: {text:?}")
        });
        if dialect == Dialect::Json {
            if let Ok(want) = serde_json::from_str::<Value>(text) {
                assert_eq!(got, want, "valid JSON changed value\ntext: {text:?}\noutput: {json}");
                assert!(
                    repairs.is_empty(),
                    "valid JSON was repaired: {repairs:?}\ntext: {text:?}"
                );
            }
        }
    } else if dialect == Dialect::Json {
        assert!(
            serde_json::from_str::<Value>(text).is_err(),
            "valid JSON rejected (lenient {lenient})\ntext: {text:?}"
        );
    }
});

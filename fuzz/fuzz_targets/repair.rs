//! `repair_json` on arbitrary text, checked against serde_json as the reference:
//! it never panics; whatever it returns is strict JSON; and a text that already is JSON
//! keeps its value (the one deliberate exception: a string holding encoded JSON is decoded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use toolmend_core::repair_json;
use toolmend_fuzz::read_output;

/// The value `repair_json` must give for an input that is already valid JSON.
fn expected(input: Value) -> Value {
    if let Value::String(s) = &input {
        let t = s.trim_start();
        // A JSON value encoded into a string is decoded (the `encoded_json` repair).
        if t.starts_with('{') || t.starts_with('[') {
            if let Ok(r) = repair_json(s) {
                if let Ok(v) = read_output(&r.json) {
                    return v;
                }
            }
        }
    }
    input
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = repair_json(text);
    let reference = serde_json::from_str::<Value>(text).ok();
    match (result, reference) {
        (Ok(r), reference) => {
            let got: Value = read_output(&r.json)
                .unwrap_or_else(|e| panic!("repair output is not JSON ({e}): {:?}\ninput: {text:?}", r.json));
            for d in &r.diagnostics {
                assert!(
                    d.start <= d.end && d.end <= text.len(),
                    "diagnostic span out of range: {d:?}\ninput: {text:?}"
                );
            }
            if let Some(want) = reference {
                let want = expected(want);
                assert_eq!(
                    got, want,
                    "valid JSON changed value\ninput: {text:?}\noutput: {}",
                    r.json
                );
            }
        }
        (Err(e), Some(v)) => panic!("valid JSON {v} rejected: {e}\ninput: {text:?}"),
        (Err(_), None) => {}
    }
});

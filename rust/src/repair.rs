//! `repair_json`: mend a whole piece of model-written JSON into strict RFC 8259 JSON.
//!
//! The lenient [`Scanner`] does the token-level mending (quotes, commas, literals, comments,
//! escapes, truncation). This module adds what needs the whole text: finding the value in
//! prose or a code fence, decoding a value that was JSON-encoded into a string, and joining
//! two objects that were meant as one.

use crate::event::Repair;
use crate::json::{Dialect, JsonWriter, Progress, Scanner, Token, TokenSink};

/// A repaired value: strict, compact JSON text, and what was mended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairResult {
    pub json: String,
    pub diagnostics: Vec<Repair>,
}

/// Why nothing could be repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairError(pub String);

impl std::fmt::Display for RepairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RepairError {}

/// Collects the top-level keys of an object while writing it.
struct KeyedWriter {
    w: JsonWriter,
    depth: usize,
    keys: Vec<String>,
}

impl TokenSink for KeyedWriter {
    fn token(&mut self, tok: Token<'_>, at: usize) {
        match tok {
            Token::BeginObject | Token::BeginArray => self.depth += 1,
            Token::EndObject | Token::EndArray => self.depth = self.depth.saturating_sub(1),
            Token::Key(k) if self.depth == 1 => self.keys.push(k.to_string()),
            _ => {}
        }
        self.w.token(tok, at);
    }
}

/// Scans one value starting at `text[start..]`; returns (json, top-level keys, end offset).
fn scan_value(text: &str, start: usize, diags: &mut Vec<Repair>) -> Option<(String, Vec<String>, usize)> {
    let mut sc = Scanner::new(Dialect::Json, true, start);
    let mut sink = KeyedWriter {
        w: JsonWriter::new(),
        depth: 0,
        keys: Vec::new(),
    };
    let end = match sc.feed(&text[start..], &mut sink) {
        Progress::Done { consumed } => start + consumed,
        Progress::Partial { .. } => {
            if !sc.finish(&mut sink) {
                diags.append(&mut sc.repairs);
                return None;
            }
            text.len()
        }
        Progress::Error { .. } => {
            diags.append(&mut sc.repairs);
            return None;
        }
    };
    diags.append(&mut sc.repairs);
    Some((sink.w.out, sink.keys, end))
}

/// Start of the first code fence body (after "```lang\n"), if the text has a fence.
fn fence_body(text: &str) -> Option<(usize, usize)> {
    let open = text.find("```")?;
    // A fence inside a JSON value (after its first `{`, `[` or `"`) is string text.
    if text.find(['{', '[', '"']).is_some_and(|v| v < open) {
        return None;
    }
    let after = open + 3;
    let body_start = match text[after..].find('\n') {
        Some(nl)
            if text[after..after + nl]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ') =>
        {
            after + nl + 1
        }
        _ => after,
    };
    let body_end = text[body_start..].find("```").map_or(text.len(), |e| body_start + e);
    Some((body_start, body_end))
}

/// Mends `text` into strict JSON. See the module docs.
pub fn repair_json(text: &str) -> Result<RepairResult, RepairError> {
    let mut diags = Vec::new();
    // Inside a fence, the fence body is the value.
    let (lo, hi) = match fence_body(text) {
        Some((lo, hi)) if text[lo..hi].trim_start().starts_with(['{', '[', '"']) => {
            diags.push(Repair {
                kind: "code_fence",
                start: 0,
                end: text.len(),
                message: "took the value out of a code fence".into(),
            });
            (lo, hi)
        }
        _ => (0, text.len()),
    };
    let region = &text[..hi];
    let trimmed_start = lo + (region[lo..].len() - region[lo..].trim_start().len());
    if trimmed_start >= hi {
        return Err(RepairError("no JSON value in the text".into()));
    }
    // Find where the value starts: the text itself, or the first `{`/`[` after prose.
    let first = region.as_bytes()[trimmed_start];
    let start = if matches!(first, b'{' | b'[' | b'"' | b'\'') || first.is_ascii_digit() || first == b'-' {
        trimmed_start
    } else if let Some(k) = region[trimmed_start..].find(['{', '[']) {
        diags.push(Repair {
            kind: "prose_around",
            start: trimmed_start,
            end: trimmed_start + k,
            message: "skipped text before the JSON value".into(),
        });
        trimmed_start + k
    } else {
        trimmed_start
    };
    let (mut json, keys, end) =
        scan_value(region, start, &mut diags).ok_or_else(|| RepairError("no JSON value in the text".into()))?;
    // A JSON value encoded into a string: decode it.
    if json.starts_with('"') {
        if let Ok(serde_json::Value::String(inner)) = serde_json::from_str::<serde_json::Value>(&json) {
            let t = inner.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                if let Ok(r) = repair_json(&inner) {
                    diags.push(Repair {
                        kind: "encoded_json",
                        start,
                        end,
                        message: "decoded a JSON value that was encoded as a string".into(),
                    });
                    // The inner repairs count bytes of the decoded text: placed from the
                    // string's first character on, and kept within the string's span.
                    diags.extend(r.diagnostics.into_iter().map(|mut d| {
                        d.start = (start + 1 + d.start).min(end);
                        d.end = (start + 1 + d.end).clamp(d.start, end);
                        d
                    }));
                    return Ok(RepairResult {
                        json: r.json,
                        diagnostics: diags,
                    });
                }
            }
        }
    }
    // What follows the value: nothing, prose, or a second object meant as the same one.
    let rest_start = end + (region[end..].len() - region[end..].trim_start().len());
    if rest_start < region.len() {
        let rest = &region[rest_start..];
        let second = rest.trim_start_matches([',', ' ', '\n', '\t', '\r']);
        let second_at = region.len() - second.len();
        let mut merged = false;
        if json.starts_with('{') && second.starts_with('{') {
            let mut more = Vec::new();
            if let Some((json2, keys2, _)) = scan_value(region, second_at, &mut more) {
                // Join only when unambiguous: both objects, no shared key.
                if json2.len() > 2 && keys2.iter().all(|k| !keys.contains(k)) {
                    if json.len() <= 2 {
                        json = json2;
                    } else {
                        json.pop();
                        json.push(',');
                        json.push_str(&json2[1..]);
                    }
                    diags.append(&mut more);
                    diags.push(Repair {
                        kind: "joined_objects",
                        start,
                        end: region.len(),
                        message: "joined two objects that were meant as one".into(),
                    });
                    merged = true;
                }
            }
        }
        if !merged {
            diags.push(Repair {
                kind: "prose_around",
                start: rest_start,
                end: region.len(),
                message: "dropped text after the JSON value".into(),
            });
        }
    }
    diags.sort_by(|a, b| (a.start, a.end, a.kind).cmp(&(b.start, b.end, b.kind)));
    Ok(RepairResult {
        json,
        diagnostics: diags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(s: &str) -> String {
        repair_json(s).expect("repairable").json
    }

    #[test]
    fn mends_whole_texts() {
        assert_eq!(fixed("{\"a\": 1,}"), r#"{"a":1}"#);
        assert_eq!(fixed("Sure! ```json\n{'a': True}\n``` done"), r#"{"a":true}"#);
        assert_eq!(fixed("Here you go: {\"a\": [1, 2"), r#"{"a":[1,2]}"#);
        assert_eq!(fixed(r#""{\"a\": 1}""#), r#"{"a":1}"#);
        assert_eq!(fixed(r#"{"a": 1} {"b": 2}"#), r#"{"a":1,"b":2}"#);
        assert_eq!(fixed(r#"{"a": 1} {"a": 2}"#), r#"{"a":1}"#);
        assert_eq!(fixed(r#"{"a": 1} trailing words"#), r#"{"a":1}"#);
        assert_eq!(fixed(r#"{"a": "x", "b"#), r#"{"a":"x"}"#);
        assert_eq!(fixed(r#"{"a": tr"#), r#"{"a":true}"#);
        assert!(repair_json("   ").is_err());
        // Found by fuzzing: joining onto an empty object, a fence inside a string value.
        assert_eq!(fixed(r#"{} {"a":1}"#), r#"{"a":1}"#);
        assert_eq!(fixed(r#"{"code": "```[1]```"}"#), r#"{"code":"```[1]```"}"#);
        assert_eq!(fixed(r#"{"a": 1e999}"#), r#"{"a":null}"#);
    }

    /// The repairs inside a JSON value encoded as a string are placed within that string in
    /// the input (they counted bytes of the decoded text, which can be longer: a fuzz find).
    #[test]
    fn encoded_json_repairs_stay_within_the_string() {
        for text in [
            "\"{\\u\\u\u{0}",
            "  \"{'a': 1,}\" tail",
            "\"[1, 2,\"",
            "\"{\\u00e9\\u00e9: 1\"",
        ] {
            let r = repair_json(text).expect("repairable");
            let s = text.find('"').expect("quote");
            assert!(r.diagnostics.iter().any(|d| d.kind == "encoded_json"), "{text:?}");
            for d in &r.diagnostics {
                assert!(d.start <= d.end && d.end <= text.len(), "{text:?}: {d:?}");
                if d.kind != "encoded_json" && d.kind != "prose_around" {
                    assert!(d.start > s, "{text:?}: {d:?}");
                }
            }
        }
    }

    #[test]
    fn valid_json_is_unchanged_in_meaning() {
        for s in [r#"{"a":[1,{"b":null}],"c":"\u00e9\n"}"#, "[]", "3.5", r#""s""#, "true"] {
            let a: serde_json::Value = serde_json::from_str(s).unwrap();
            let b: serde_json::Value = serde_json::from_str(&fixed(s)).unwrap();
            assert_eq!(a, b, "{s}");
            assert!(repair_json(s).unwrap().diagnostics.is_empty(), "{s}");
        }
    }
}

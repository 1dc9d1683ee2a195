//! Helpers shared by the fuzz targets.

use arbitrary::{Arbitrary, Unstructured};
use serde::Deserialize;
use serde_json::Value;

/// Reads a JSON text the core produced, as serde_json does but without its 128-level nesting
/// limit (the core's scanner accepts 256 levels; both are within RFC 8259).
pub fn read_output(text: &str) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let v = Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// A fuzz input: a few header bytes, a chunking pattern, then the text (the rest).
///
/// Layout (what `fuzz/seed.py` writes): `header` bytes, then the pattern as arbitrary's
/// `Vec<u8>` (each element is a `0x01` byte followed by the size byte; `0x00` ends it), then
/// the text: the rest, cut at its first invalid UTF-8 byte.
pub struct Input<'a, const N: usize> {
    pub header: [u8; N],
    pub pattern: Vec<u8>,
    pub text: &'a str,
}

impl<'a, const N: usize> Input<'a, N> {
    pub fn decode(data: &'a [u8]) -> Option<Self> {
        let mut u = Unstructured::new(data);
        let header = <[u8; N]>::arbitrary(&mut u).ok()?;
        let pattern = Vec::<u8>::arbitrary(&mut u).ok()?;
        let text = <&str>::arbitrary_take_rest(u).ok()?;
        Some(Input { header, pattern, text })
    }

    /// The text cut into chunks at char boundaries: sizes `1 + b % 16` chars, cycling
    /// through the pattern; one char at a time when the pattern is empty.
    pub fn chunks(&self) -> Vec<&'a str> {
        self.chunks_of(self.text)
    }

    /// `text` (the input's text or a suffix of it) cut by the pattern, as [`Input::chunks`].
    pub fn chunks_of(&self, text: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut sizes = self.pattern.iter().map(|b| 1 + usize::from(b % 16)).cycle();
        let mut chars = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len()));
        let mut start = chars.next().unwrap_or(0);
        'outer: while start < text.len() {
            let n = sizes.next().unwrap_or(1);
            let mut end = start;
            for _ in 0..n {
                match chars.next() {
                    Some(e) => end = e,
                    None => {
                        out.push(&text[start..]);
                        break 'outer;
                    }
                }
            }
            out.push(&text[start..end]);
            start = end;
        }
        debug_assert_eq!(out.concat(), text);
        out
    }
}

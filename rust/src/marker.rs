//! Finding markers in streamed text, holding back only what could still grow into one.

/// Outcome of looking for markers in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Find {
    /// Marker `index` (into the set) matches at byte `at`.
    Found { at: usize, index: usize },
    /// No marker before `at`; `input[at..]` may be the start of a marker: wait for more input.
    Partial { at: usize },
    /// No marker anywhere in the input.
    None,
}

/// A set of literal markers, searched together.
#[derive(Debug, Clone)]
pub struct MarkerSet {
    markers: Vec<String>,
    first: [bool; 256],
    /// Per marker: it starts with a word character (`functools[`), so it only counts where
    /// a word starts (see [`MarkerSet::find_after`]).
    word: Vec<bool>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl MarkerSet {
    pub fn new<S: AsRef<str>>(markers: &[S]) -> Self {
        let mut first = [false; 256];
        let markers: Vec<String> = markers.iter().map(|m| m.as_ref().to_string()).collect();
        for m in &markers {
            if let Some(&b) = m.as_bytes().first() {
                first[b as usize] = true;
            }
        }
        let word = markers
            .iter()
            .map(|m| m.as_bytes().first().is_some_and(|&b| is_word_byte(b)))
            .collect();
        MarkerSet { markers, first, word }
    }

    /// The marker text at `index`.
    pub fn get(&self, index: usize) -> &str {
        &self.markers[index]
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// Finds the first marker in `input[from..]`. At a position where one marker matches and
    /// a longer one could still match, waits (unless `eof`). With `eof`, never `Partial`.
    pub fn find(&self, input: &str, from: usize, eof: bool) -> Find {
        self.find_after(input, from, eof, None)
    }

    /// [`MarkerSet::find`], where a marker that starts with a word character only counts at
    /// the start of a word: `before` is the byte preceding `input` (`None`: the start of the
    /// output). So `of` does not wait for a possible `functools[`, and the answer depends only
    /// on the text, never on how it was chunked.
    pub fn find_after(&self, input: &str, from: usize, eof: bool, before: Option<u8>) -> Find {
        let bytes = input.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            if !self.first[bytes[i] as usize] {
                i += 1;
                continue;
            }
            let rest = &bytes[i..];
            let prev = if i > 0 { Some(bytes[i - 1]) } else { before };
            let mid_word = prev.is_some_and(is_word_byte);
            let mut best: Option<usize> = None;
            let mut could_grow = false;
            for (k, m) in self.markers.iter().enumerate() {
                if mid_word && self.word[k] {
                    continue;
                }
                let mb = m.as_bytes();
                if rest.len() >= mb.len() {
                    if rest.starts_with(mb) && best.is_none_or(|b| self.markers[b].len() < mb.len()) {
                        best = Some(k);
                    }
                } else if mb.starts_with(rest) {
                    could_grow = true;
                }
            }
            if could_grow && !eof {
                return Find::Partial { at: i };
            }
            if let Some(index) = best {
                return Find::Found { at: i, index };
            }
            i += 1;
        }
        Find::None
    }
}

/// If `input[at..]` starts with `marker` returns `Some(true)`; if it is a proper prefix of
/// it (and not `eof`) returns `None` (wait); otherwise `Some(false)`.
pub fn starts_with_marker(input: &str, at: usize, marker: &str, eof: bool) -> Option<bool> {
    let rest = &input.as_bytes()[at.min(input.len())..];
    let m = marker.as_bytes();
    if rest.len() >= m.len() {
        Some(rest.starts_with(m))
    } else if m.starts_with(rest) && !eof {
        None
    } else {
        Some(false)
    }
}

/// Index of the first non-whitespace byte at or after `from`.
pub fn skip_ws(input: &str, from: usize) -> usize {
    let b = input.as_bytes();
    let mut i = from;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_markers_only_start_words() {
        let set = MarkerSet::new(&["functools", "<tool_call>"]);
        // Mid-word, a word marker neither matches nor holds text back.
        assert_eq!(set.find_after("of", 0, false, None), Find::None);
        assert_eq!(set.find_after("xfunctools[", 0, false, None), Find::None);
        assert_eq!(set.find_after("f", 0, false, Some(b'o')), Find::None);
        // At the start of the output or of a word it does.
        assert_eq!(set.find_after("f", 0, false, None), Find::Partial { at: 0 });
        assert_eq!(set.find_after("a f", 0, false, None), Find::Partial { at: 2 });
        assert_eq!(
            set.find_after("functools[", 0, false, Some(b'\n')),
            Find::Found { at: 0, index: 0 }
        );
        // Other markers are found anywhere.
        assert_eq!(
            set.find_after("x<tool_call>", 0, false, Some(b'a')),
            Find::Found { at: 1, index: 1 }
        );
    }

    #[test]
    fn finds_and_holds_back() {
        let set = MarkerSet::new(&["<tool_call>", "<|tool_call>", "<|tool_call|>"]);
        assert_eq!(set.find("ab<tool_call>x", 0, false), Find::Found { at: 2, index: 0 });
        assert_eq!(set.find("ab<tool_c", 0, false), Find::Partial { at: 2 });
        assert_eq!(set.find("ab<tool_c", 0, true), Find::None);
        assert_eq!(set.find("x<|tool_call|>", 0, false), Find::Found { at: 1, index: 2 });
        assert_eq!(set.find("x<|tool_call>", 0, false), Find::Found { at: 1, index: 1 });
        assert_eq!(set.find("x<|tool_call", 0, false), Find::Partial { at: 1 });
        assert_eq!(set.find("a < b", 0, false), Find::None);
    }

    #[test]
    fn prefix_markers_wait_for_the_longer() {
        let set = MarkerSet::new(&["<tool_call>", "<tool_call>x"]);
        assert_eq!(set.find("<tool_call>", 0, false), Find::Partial { at: 0 });
        assert_eq!(set.find("<tool_call>", 0, true), Find::Found { at: 0, index: 0 });
        assert_eq!(set.find("<tool_call>y", 0, false), Find::Found { at: 0, index: 0 });
    }

    #[test]
    fn starts_with() {
        assert_eq!(starts_with_marker("</tool_call>", 0, "</tool_call>", false), Some(true));
        assert_eq!(starts_with_marker("</tool", 0, "</tool_call>", false), None);
        assert_eq!(starts_with_marker("</tool", 0, "</tool_call>", true), Some(false));
        assert_eq!(starts_with_marker("abc", 0, "</tool_call>", false), Some(false));
    }
}

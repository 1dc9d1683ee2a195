//! Format families: one small state machine per family, configured by per-format data.
//!
//! Every family reads prose (content and reasoning) with the shared [`Prose`] scanner,
//! which stops at the family's call markers; the family then reads the call syntax.

pub mod envelope;
pub mod gemma;
pub mod harmony;
pub mod named;
pub mod pythonic;
#[cfg(test)]
mod test_support;
pub mod xml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::emit::{Channel, Emitter};
use crate::marker::{Find, MarkerSet};

/// Scanner depth within which a call's arguments object may be read whole
/// ([`crate::emit::Emitter::args_object`]): the values in it may nest down to this depth, well
/// within the scanner's own limit; deeper ones are left to the token-by-token reading.
pub(crate) const ARGS_WHOLE_MAX_DEPTH: usize = crate::json::MAX_DEPTH / 2;

/// A family's streaming state machine.
pub trait Family: Send + Sync {
    /// Consumes a prefix of `input` (which starts at absolute offset `out.base`), reporting
    /// what it recognised through `out`, and returns how many bytes it consumed. Bytes left
    /// unconsumed are offered again, followed by more input. Only a short tail that could
    /// still grow into a marker may be left. With `eof`, all input must be consumed and
    /// any open call closed.
    fn feed(&mut self, input: &str, eof: bool, out: &mut Emitter) -> usize;
}

/// Prose markers of a format: where calls start, reasoning blocks, tokens to drop.
#[derive(Debug, Clone, Default)]
pub struct ProseSpec {
    /// Markers that open a call region. Their index is reported in [`ProseStep::Trigger`].
    pub triggers: Vec<&'static str>,
    /// Reasoning blocks as (open, close) markers.
    pub reasoning: Vec<(&'static str, &'static str)>,
    /// Special tokens that are dropped from prose (end-of-turn tokens, text wrappers).
    pub strip: Vec<&'static str>,
    /// A `{` or `[` as the first non-space character of the output opens a call region.
    pub bare_json_at_start: bool,
    /// Any `{` or `[` in content may open a call region (generic JSON embedded in prose).
    pub bare_json_anywhere: bool,
    /// The marker set, built on first use and shared by every parser of this spec.
    pub compiled: CompiledMarkers,
}

/// A lazily built marker set. Cloning a spec (to change its markers) starts it empty.
#[derive(Debug, Default)]
pub struct CompiledMarkers(OnceLock<Arc<MarkerSet>>);

impl Clone for CompiledMarkers {
    fn clone(&self) -> Self {
        CompiledMarkers::default()
    }
}

/// Marker sets are built once per distinct marker list and shared by every parser.
fn compiled(markers: Vec<&'static str>) -> Arc<MarkerSet> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<&'static str>, Arc<MarkerSet>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(markers)
        .or_insert_with_key(|m| Arc::new(MarkerSet::new(m)))
        .clone()
}

/// What [`Prose::scan`] stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProseStep {
    /// Trigger `index` starts at `at` and is `len` bytes long; prose before it was emitted.
    Trigger { at: usize, len: usize, index: usize },
    /// A bare `{`/`[` at the start of the output, at `at` (not consumed).
    BareJson { at: usize },
    /// Everything before `consumed` was handled; the rest needs more input.
    Wait { consumed: usize },
}

/// Streams content and reasoning text and stops at call markers.
#[derive(Debug, Clone)]
pub struct Prose {
    set: Arc<MarkerSet>,
    n_triggers: usize,
    n_reasoning: usize,
    /// Index of the open reasoning block, if inside one.
    open_reasoning: Option<usize>,
    bare_json_at_start: bool,
    bare_json_anywhere: bool,
    /// Non-space content has been seen (so bare JSON is no longer "at the start").
    seen_content: bool,
    /// Per reasoning block: its close marker is also a dropped token.
    close_is_strip: Vec<bool>,
}

impl Prose {
    /// `in_reasoning`: the output starts inside the first reasoning block (thinking models
    /// whose template opens it in the prompt).
    pub fn new(spec: &ProseSpec, in_reasoning: bool) -> Self {
        let set = spec
            .compiled
            .0
            .get_or_init(|| {
                let mut markers: Vec<&'static str> = spec.triggers.clone();
                markers.extend(spec.reasoning.iter().map(|r| r.0));
                markers.extend(spec.reasoning.iter().map(|r| r.1));
                markers.extend(spec.strip.iter().copied());
                compiled(markers)
            })
            .clone();
        Prose {
            set,
            n_triggers: spec.triggers.len(),
            n_reasoning: spec.reasoning.len(),
            open_reasoning: (in_reasoning && !spec.reasoning.is_empty()).then_some(0),
            bare_json_at_start: spec.bare_json_at_start,
            bare_json_anywhere: spec.bare_json_anywhere,
            seen_content: false,
            close_is_strip: spec.reasoning.iter().map(|r| spec.strip.contains(&r.1)).collect(),
        }
    }

    /// True while inside a reasoning block.
    pub fn in_reasoning(&self) -> bool {
        self.open_reasoning.is_some()
    }

    fn channel(&self) -> Channel {
        if self.open_reasoning.is_some() {
            Channel::Reasoning
        } else {
            Channel::Content
        }
    }

    fn emit(&mut self, out: &mut Emitter, s: &str) {
        if s.is_empty() {
            return;
        }
        // Whitespace as `marker::skip_ws` sees it (ASCII), so "bare JSON at the start" is
        // decided the same way whatever the chunking (`str::trim` also skips e.g. `\x0b`).
        if self.open_reasoning.is_none() && !s.bytes().all(|b| b.is_ascii_whitespace()) {
            self.seen_content = true;
        }
        out.text(self.channel(), s);
    }

    /// Marks that content was seen elsewhere (e.g. a rejected call emitted as text).
    pub fn note_content(&mut self) {
        self.seen_content = true;
    }

    /// Scans `input[from..]`, emitting prose, until a call marker or the end of the input.
    pub fn scan(&mut self, input: &str, from: usize, eof: bool, out: &mut Emitter) -> ProseStep {
        let mut pos = from;
        loop {
            if self.bare_json_at_start && !self.seen_content && self.open_reasoning.is_none() {
                let ws_end = crate::marker::skip_ws(input, pos);
                if ws_end < input.len() {
                    let b = input.as_bytes()[ws_end];
                    // A marker starting with the bracket (`[TOOL_CALLS]`) is not bare JSON.
                    let marker_here = || match self.set.find_after(input, ws_end, eof, out.before) {
                        Find::Found { at, .. } | Find::Partial { at } => at == ws_end,
                        Find::None => false,
                    };
                    if (b == b'{' || b == b'[') && !marker_here() {
                        self.emit(out, &input[pos..ws_end]);
                        return ProseStep::BareJson { at: ws_end };
                    }
                }
            }
            let found = self.set.find_after(input, pos, eof, out.before);
            if self.bare_json_anywhere && self.open_reasoning.is_none() {
                let limit = match found {
                    Find::Found { at, .. } | Find::Partial { at } => at,
                    Find::None => input.len(),
                };
                if let Some(k) = input.as_bytes()[pos..limit]
                    .iter()
                    .position(|&b| b == b'{' || b == b'[')
                {
                    let at = pos + k;
                    self.emit(out, &input[pos..at]);
                    return ProseStep::BareJson { at };
                }
            }
            match found {
                Find::None => {
                    self.emit(out, &input[pos..]);
                    return ProseStep::Wait { consumed: input.len() };
                }
                Find::Partial { at } => {
                    self.emit(out, &input[pos..at]);
                    return ProseStep::Wait { consumed: at };
                }
                Find::Found { at, index } => {
                    let len = self.set.get(index).len();
                    let nt = self.n_triggers;
                    let nr = self.n_reasoning;
                    if let Some(open) = self.open_reasoning {
                        // Inside reasoning only its own close marker (and strip tokens) count.
                        // Compared as text: two blocks may share a close marker.
                        if self.set.get(index) == self.set.get(nt + nr + open) {
                            self.emit(out, &input[pos..at]);
                            self.open_reasoning = None;
                        } else if index >= nt + 2 * nr {
                            self.emit(out, &input[pos..at]);
                        } else {
                            self.emit(out, &input[pos..at + len]);
                        }
                        pos = at + len;
                        continue;
                    }
                    self.emit(out, &input[pos..at]);
                    if index < nt {
                        return ProseStep::Trigger { at, len, index };
                    }
                    if index < nt + nr {
                        self.open_reasoning = Some(index - nt);
                    } else if index < nt + 2 * nr {
                        // A close marker with no open block: plain text, unless it is also a
                        // dropped token (inkling's `<|end_message|>` ends every frame).
                        if !self.close_is_strip[index - nt - nr] {
                            self.emit(out, &input[at..at + len]);
                        }
                    }
                    // Otherwise a dropped token (end-of-turn, text wrapper): skip it.
                    pos = at + len;
                }
            }
        }
    }
}

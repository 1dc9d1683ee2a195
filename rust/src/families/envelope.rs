//! JSON-envelope family: calls written as JSON objects that carry the name and the
//! arguments (`{"name": ..., "arguments": {...}}`), alone, in an array, one per line or
//! separated by `;`, after an opening marker and before an optional closing one.
//!
//! Covers hermes, longcat, llama3_json, generic_json, mistral_array, functools, granite,
//! granite_20b_fc, internlm, json_list_in_tag, minimax_m1, xlam, cohere, apertus, gigachat3.

use crate::args::ArgsWriter;
use crate::emit::{Emitter, IdStyle};
use crate::families::{Family, Prose, ProseStep};
use crate::json::{Dialect, JsonWriter, Progress, Scanner, Token, TokenSink};
use crate::marker::starts_with_marker;

/// Data describing one envelope format.
#[derive(Debug, Clone)]
pub struct EnvelopeSpec {
    /// The format's prose trigger `i` opens a region closed by `closes[i]` (if any).
    pub closes: Vec<Option<&'static str>>,
    /// The object's only key is the tool name and its value the arguments (apertus).
    pub name_as_key: bool,
    pub id_style: IdStyle,
}

/// Keys that hold the tool name.
const NAME_KEYS: &[&str] = &["name", "tool_name", "function_name"];
/// Keys that hold the arguments.
const ARGS_KEYS: &[&str] = &["arguments", "parameters", "args", "input", "tool_input"];
/// Keys that hold a model-written call id.
const ID_KEYS: &[&str] = &["id", "tool_call_id", "call_id"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Role {
    #[default]
    Other,
    Name,
    Args,
    Id,
    /// `"function": {...}` (OpenAI-shaped) or `"function": "name"`.
    Function,
}

#[derive(Debug, Default)]
enum Args {
    #[default]
    NotSeen,
    /// Arguments object being written; `depth` is the sink depth of its object.
    Object {
        depth: usize,
    },
    /// Arguments given as a JSON-encoded string, decoded through a nested scanner.
    Encoded,
    Done,
    /// Not an object: the element is not a usable call.
    Invalid,
}

/// Per-element (one envelope object) state.
#[derive(Debug, Default)]
struct Element {
    /// Sink depth of the envelope object (keys live at `depth + 1`).
    depth: usize,
    role: Role,
    /// Depth at which the role-bearing keys live.
    key_depth: usize,
    name: Option<String>,
    collecting: Option<Role>,
    text: String,
    id: Option<String>,
    args: Args,
    /// Arguments written so far (held until the call can start).
    writer: ArgsWriter,
    nested: Option<(Scanner, String)>,
    /// Offset of the encoded arguments' string in the output (nested diagnostics are
    /// clamped to the string's raw span).
    nested_start: usize,
    started: bool,
    rejected: bool,
    /// Compact text of the whole element (kept until the call starts, for the fallback).
    shadow: JsonWriter,
    start_offset: usize,
}

#[derive(Debug, Default)]
struct SinkState {
    depth: usize,
    /// Depth at which envelope objects live (0: the value itself, 1: inside an array).
    elem_depth: Option<usize>,
    elem: Option<Element>,
    name_as_key: bool,
    lenient: bool,
    /// A call from this region was emitted.
    committed: bool,
    /// The region turned out not to be a call: stop scanning, its raw text is content.
    stop: bool,
    /// The scanner is closing a truncated value at the end of the output.
    at_eof: bool,
    offset: usize,
    /// Offset of the token that set `stop` (the scanner may read on a little, depending on
    /// the chunking: its later repairs are not reported).
    stop_at: usize,
    /// The scanner was stopped just after the `{` of a started call's arguments, so that
    /// the envelope can try to read them whole ([`SinkState::args_object_rest`]).
    args_pause: bool,
}

impl SinkState {
    /// Reads the rest of the open call's arguments object (`text` starts just after its
    /// `{`, at absolute offset `at`) in one piece, as the tokens of that text would have been
    /// written (see [`Emitter::args_object_rest`]); returns the bytes read, or `None` when
    /// the object must be read token by token.
    /// Kept out of line: once per call, and [`Envelope`]'s per-delta path stays small.
    #[inline(never)]
    fn args_object_rest(&mut self, text: &str, at: usize, max_depth: usize, out: &mut Emitter) -> Option<usize> {
        let el = self.elem.as_mut()?;
        // What the writer holds (the object's `{`) goes first, as the next token would send it.
        out.args(&el.writer.out);
        el.writer.out.clear();
        if el.writer.has_diags() {
            out.diags(el.writer.take_diags());
        }
        let n = out.args_object_rest(text, max_depth)?;
        el.args = Args::Done;
        // The writer saw only the `{`: nothing of it is left open to close later.
        el.writer = ArgsWriter::default();
        self.depth -= 1;
        self.offset = at + n - 1;
        Some(n)
    }

    /// True while the arguments of a started call are inside a string value that is written
    /// through as it arrives (what [`Envelope`]'s plain-text fast path needs).
    fn streams_args_string(&self) -> bool {
        !self.stop
            && !self.at_eof
            && self.elem.as_ref().is_some_and(|el| {
                el.started
                    && matches!(el.args, Args::Object { depth } if self.depth >= depth)
                    && el.writer.streams_string()
            })
    }
}

struct EnvSink<'a> {
    st: &'a mut SinkState,
    out: &'a mut Emitter,
}

impl EnvSink<'_> {
    fn try_start(&mut self) {
        let st = &mut *self.st;
        let Some(el) = st.elem.as_mut() else { return };
        if el.started || el.rejected {
            return;
        }
        let Some(name) = el.name.clone() else { return };
        let ready = match el.args {
            Args::Object { .. } | Args::Done => true,
            Args::Encoded => el.writer.out.starts_with('{'),
            _ => false,
        };
        if !ready {
            return;
        }
        // Where the decision is placed: the token that made it possible, or, for encoded
        // arguments (decided by the text inside a string, which comes in parts split as the
        // deltas were), where that string starts.
        let at = match el.args {
            Args::Encoded => el.nested_start,
            _ => st.offset,
        };
        if name.trim().is_empty() {
            self.out.diag(
                "missing_name",
                el.start_offset,
                at,
                "a call with an empty name was kept as content",
            );
            reject_at(st, at);
            return;
        }
        match self.out.accept_name(&name, el.start_offset, at) {
            Some(declared) => {
                let el = st.elem.as_mut().expect("element");
                let id = el.id.clone();
                self.out.start_call(&declared, id.as_deref());
                el.started = true;
                st.committed = true;
                el.writer.set_schema(self.out.args_schema(&declared));
                let held = el.writer.take();
                self.out.args(&held);
                self.out.diags(el.writer.take_diags());
            }
            None => reject_at(st, at),
        }
    }

    fn finish_element(&mut self) {
        let st = &mut *self.st;
        let Some(mut el) = st.elem.take() else { return };
        if el.rejected {
            emit_rejected(st, &mut el, self.out);
            return;
        }
        if el.name.is_none() {
            // Not a call at all (no name): the region is prose.
            self.out.diag(
                "not_a_call",
                el.start_offset,
                st.offset,
                "JSON without a tool name was kept as content",
            );
            st.elem = Some(el);
            reject(st);
            drop_rejected(st, self.out);
            return;
        }
        if matches!(el.args, Args::NotSeen) {
            el.writer.token(Token::BeginObject, st.offset);
            el.writer.token(Token::EndObject, st.offset);
            el.args = Args::Done;
        }
        if matches!(el.args, Args::Invalid) {
            self.out.diag(
                "invalid_arguments",
                el.start_offset,
                st.offset,
                "arguments are not a JSON object; kept as content",
            );
            if el.started {
                // JSON-encoded arguments that failed after their call started: nothing is
                // retracted, so the call ends with what it has, closed into a JSON object.
                el.writer.close_all();
                self.out.args(&el.writer.take());
                self.out.diags(el.writer.take_diags());
                self.out.end_call();
            }
            st.elem = Some(el);
            reject(st);
            drop_rejected(st, self.out);
            return;
        }
        if !el.started {
            st.elem = Some(el);
            self.try_start();
            let Some(el) = self.st.elem.take() else { return };
            if !el.started {
                return;
            }
        }
        self.out.end_call();
    }
}

/// Rejects the current element. A region with no call yet becomes content verbatim;
/// a later element is kept as content in its compact JSON form, once it has ended (so that
/// the text does not depend on where in the element the rejection came, which depends on how
/// the output was chunked).
fn reject(st: &mut SinkState) {
    let at = st.offset;
    reject_at(st, at);
}

/// [`reject`], placing the rejection at `at` (what is mended after it is not reported).
fn reject_at(st: &mut SinkState, at: usize) {
    let Some(el) = st.elem.as_mut() else { return };
    el.rejected = true;
    if !st.committed {
        if !st.stop {
            st.stop_at = at;
        }
        st.stop = true;
    }
}

/// A rejected element of a region that has a call already is content: its compact text,
/// closed (so that the content is at least balanced text where the element was cut short).
fn emit_rejected(st: &SinkState, el: &mut Element, out: &mut Emitter) {
    if st.committed {
        let mut text = el.shadow.take();
        text.push_str(&el.shadow.closers());
        out.text(crate::emit::Channel::Content, &text);
    }
}

/// Ends the current element, rejected (see [`emit_rejected`]).
fn drop_rejected(st: &mut SinkState, out: &mut Emitter) {
    if let Some(mut el) = st.elem.take() {
        emit_rejected(st, &mut el, out);
    }
}

fn role_of(key: &str) -> Role {
    if NAME_KEYS.contains(&key) {
        Role::Name
    } else if ARGS_KEYS.contains(&key) {
        Role::Args
    } else if ID_KEYS.contains(&key) {
        Role::Id
    } else if key == "function" {
        Role::Function
    } else {
        Role::Other
    }
}

impl TokenSink for EnvSink<'_> {
    fn wants_stop(&self) -> bool {
        self.st.stop || self.st.args_pause
    }

    fn takes_escaped(&self) -> bool {
        self.st.streams_args_string()
    }

    fn escaped(&mut self, text: &str, at: usize) {
        // Only sent while `streams_args_string` holds: the text is arguments text as it stands.
        self.st.offset = at;
        self.out.args(text);
    }

    fn token(&mut self, tok: Token<'_>, at: usize) {
        self.st.offset = at;
        let depth_before = self.st.depth;
        match tok {
            Token::BeginObject | Token::BeginArray => self.st.depth += 1,
            Token::EndObject | Token::EndArray => self.st.depth = self.st.depth.saturating_sub(1),
            _ => {}
        }
        if self.st.stop {
            return;
        }
        // Which depth holds envelope objects: the value itself, or the items of an array.
        let elem_depth = match self.st.elem_depth {
            Some(d) => d,
            None => {
                let d = usize::from(tok == Token::BeginArray);
                self.st.elem_depth = Some(d);
                if d == 1 {
                    return;
                }
                d
            }
        };
        if self.st.elem.is_none() {
            if depth_before == elem_depth && tok == Token::BeginObject {
                let mut el = Element {
                    writer: ArgsWriter::deferred(),
                    depth: elem_depth,
                    key_depth: elem_depth + 1,
                    start_offset: self.st.offset,
                    ..Element::default()
                };
                // Room for the usual envelope up to its arguments, which the shadow then
                // records (it would otherwise grow three or four times).
                el.shadow.out.reserve(128);
                el.shadow.token(Token::BeginObject, at);
                self.st.elem = Some(el);
            } else if depth_before == elem_depth
                && !matches!(
                    tok,
                    Token::EndArray | Token::EndObject | Token::StringPart(_) | Token::EndString
                )
            {
                let at = self.st.offset;
                self.out.diag(
                    "not_a_call",
                    at,
                    at,
                    "a non-object element in a tool-call list was ignored",
                );
            }
            return;
        }
        let st = &mut *self.st;
        let el = st.elem.as_mut().expect("element");
        // The shadow is the element's text if it is rejected: before its call starts, or, for
        // JSON-encoded arguments (only they can still fail once the call has started), to
        // the end, so that the text does not depend on where the call happened to start.
        if !el.started || matches!(el.args, Args::Encoded | Args::Invalid) {
            el.shadow.token(tok.clone(), at);
        }
        match el.args {
            Args::Object { depth } if depth_before >= depth => {
                if depth_before == depth && matches!(tok, Token::EndObject | Token::EndArray) {
                    el.args = Args::Done;
                }
                el.writer.token(tok, at);
                if el.started {
                    self.out.args(&el.writer.out);
                    el.writer.out.clear();
                    if el.writer.has_diags() {
                        self.out.diags(el.writer.take_diags());
                    }
                }
                return;
            }
            Args::Encoded => {
                match tok {
                    Token::StringPart(part) => {
                        if let Some((sc, pending)) = el.nested.as_mut() {
                            pending.push_str(part);
                            match sc.feed(pending, &mut el.writer) {
                                Progress::Partial { consumed } => {
                                    pending.drain(..consumed);
                                }
                                Progress::Done { .. } | Progress::Error { .. } => pending.clear(),
                            }
                        }
                    }
                    Token::EndString => {
                        if let Some((mut sc, pending)) = el.nested.take() {
                            if !pending.is_empty() {
                                let _ = sc.feed(&pending, &mut el.writer);
                            }
                            let ok = sc.is_done() || sc.finish(&mut el.writer);
                            // The nested scanner counts decoded bytes: keep its spans within
                            // the string's raw span.
                            let (lo, hi) = (el.nested_start, st.offset.max(el.nested_start));
                            self.out.diags(sc.repairs.drain(..).map(|mut r| {
                                r.start = r.start.clamp(lo, hi);
                                r.end = r.end.clamp(r.start, hi);
                                r
                            }));
                            if ok && (el.started || el.writer.out.starts_with('{')) {
                                el.args = Args::Done;
                                let at = st.offset;
                                self.out.diag(
                                    "encoded_arguments",
                                    el.start_offset,
                                    at,
                                    "arguments were a JSON-encoded string; decoded",
                                );
                            } else {
                                el.args = Args::Invalid;
                            }
                        }
                    }
                    _ => {}
                }
                if el.started {
                    let s = el.writer.take();
                    self.out.args(&s);
                    self.out.diags(el.writer.take_diags());
                } else {
                    self.try_start();
                }
                return;
            }
            _ => {}
        }
        if let Some(role) = el.collecting {
            match tok {
                Token::StringPart(s) => el.text.push_str(s),
                Token::EndString => {
                    let text = std::mem::take(&mut el.text);
                    el.collecting = None;
                    if role == Role::Id {
                        el.id = Some(text);
                    } else if st.at_eof {
                        // The output ended inside the name: never guess a truncated name.
                        self.out.diag(
                            "truncated_name",
                            el.start_offset,
                            at,
                            "the output ended inside a tool name; kept as content",
                        );
                        reject(st);
                    } else if role == Role::Name || el.name.is_none() {
                        el.name = Some(text);
                        self.try_start();
                    }
                }
                _ => {}
            }
            return;
        }
        if depth_before != el.key_depth {
            return;
        }
        match tok {
            Token::Key(k) => {
                el.role = if st.name_as_key {
                    if el.name.is_none() {
                        el.name = Some(k.to_string());
                        Role::Args
                    } else {
                        Role::Other
                    }
                } else {
                    // A repeated "name" key overrides (last wins) until the call starts.
                    match role_of(k) {
                        Role::Name if el.started => Role::Other,
                        r => r,
                    }
                };
            }
            Token::EndObject | Token::EndArray => {
                if el.key_depth == el.depth + 1 {
                    self.finish_element();
                } else {
                    // Leaving a nested "function" object.
                    el.key_depth -= 1;
                }
            }
            _ => {
                let role = std::mem::replace(&mut el.role, Role::Other);
                match (role, &tok) {
                    (Role::Name | Role::Id | Role::Function, Token::BeginString) => el.collecting = Some(role),
                    (Role::Function, Token::BeginObject) => el.key_depth += 1,
                    (Role::Args, Token::BeginObject) if matches!(el.args, Args::NotSeen) => {
                        el.args = Args::Object {
                            depth: depth_before + 1,
                        };
                        el.writer.token(Token::BeginObject, at);
                        self.try_start();
                        // A started call's arguments may have arrived whole: the envelope
                        // tries to read them in one piece.
                        let st = &mut *self.st;
                        if !st.stop && !st.at_eof && st.elem.as_ref().is_some_and(|el| el.started) {
                            st.args_pause = true;
                        }
                    }
                    (Role::Args, Token::BeginString) if matches!(el.args, Args::NotSeen) => {
                        el.args = Args::Encoded;
                        el.nested = Some((Scanner::new(Dialect::Json, st.lenient, st.offset), String::new()));
                        el.nested_start = st.offset;
                    }
                    (Role::Args, Token::Null) if matches!(el.args, Args::NotSeen) => {
                        el.writer.token(Token::BeginObject, at);
                        el.writer.token(Token::EndObject, at);
                        el.args = Args::Done;
                        self.try_start();
                    }
                    (Role::Args, _) if matches!(el.args, Args::NotSeen) => el.args = Args::Invalid,
                    _ => {}
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prose,
    /// Inside a region, between values; `first` until a value was read.
    Between {
        first: bool,
    },
    Value,
}

/// The JSON-envelope state machine.
pub struct Envelope {
    spec: &'static EnvelopeSpec,
    prose: Prose,
    state: State,
    /// Close marker of the open region.
    close: Option<&'static str>,
    /// Raw text of the open region while no call from it was emitted.
    raw: String,
    /// Whitespace/separators read after a value, not yet known to be markup or prose.
    gap: String,
    scanner: Option<Box<Scanner>>,
    sink: SinkState,
    lenient: bool,
}

impl Envelope {
    pub fn new(spec: &'static EnvelopeSpec, prose: Prose, lenient: bool) -> Self {
        Envelope {
            spec,
            prose,
            state: State::Prose,
            close: None,
            raw: String::new(),
            gap: String::new(),
            scanner: None,
            sink: SinkState::default(),
            lenient,
        }
    }

    fn open_region(&mut self, close: Option<&'static str>, marker: &str) {
        self.close = close;
        self.raw.clear();
        self.raw.push_str(marker);
        self.sink = SinkState {
            name_as_key: self.spec.name_as_key,
            lenient: self.lenient,
            ..SinkState::default()
        };
        self.state = State::Between { first: true };
    }

    /// Whitespace and separators between values: markup if another value or the close
    /// marker follows, prose otherwise.
    fn skip(&mut self, s: &str) {
        self.region_text(s);
        self.gap.push_str(s);
    }

    /// The region ended without a close marker: the gap after its last value is prose.
    fn flush_gap(&mut self, out: &mut Emitter) {
        let gap = std::mem::take(&mut self.gap);
        if self.sink.committed {
            out.text(crate::emit::Channel::Content, &gap);
        }
    }

    /// Region text consumed: kept (for the fallback) until a call from the region starts.
    fn region_text(&mut self, s: &str) {
        if self.sink.committed {
            self.raw.clear();
        } else {
            self.raw.push_str(s);
        }
    }

    /// Ends the region; a region that produced no call is content, verbatim.
    fn end_region(&mut self, out: &mut Emitter) {
        if !self.sink.committed && !self.raw.is_empty() {
            let raw = std::mem::take(&mut self.raw);
            out.text(crate::emit::Channel::Content, &raw);
            self.prose.note_content();
        }
        self.raw.clear();
        self.gap.clear();
        self.scanner = None;
        self.state = State::Prose;
    }
}

impl Family for Envelope {
    fn feed(&mut self, input: &str, eof: bool, out: &mut Emitter) -> usize {
        out.set_id_style(self.spec.id_style);
        let mut pos = 0;
        loop {
            match self.state {
                State::Prose => match self.prose.scan(input, pos, eof, out) {
                    ProseStep::Trigger { at, len, index } => {
                        let close = self.spec.closes.get(index).copied().flatten();
                        self.open_region(close, &input[at..at + len]);
                        pos = at + len;
                    }
                    ProseStep::BareJson { at } => {
                        self.open_region(None, "");
                        pos = at;
                    }
                    ProseStep::Wait { consumed } => return consumed,
                },
                State::Between { first } => {
                    let bytes = input.as_bytes();
                    let mut i = pos;
                    // Skip whitespace, separators and code fences.
                    loop {
                        while i < bytes.len()
                            && (bytes[i].is_ascii_whitespace() || (!first && matches!(bytes[i], b';' | b',')))
                        {
                            i += 1;
                        }
                        if self.close == Some("```") {
                            break;
                        }
                        match starts_with_marker(input, i, "```", eof) {
                            None => {
                                let s = &input[pos..i];
                                self.skip(s);
                                return i;
                            }
                            Some(true) => {
                                // ``` optionally followed by a language tag up to the newline.
                                let mut j = i + 3;
                                while j < bytes.len() && bytes[j].is_ascii_alphanumeric() {
                                    j += 1;
                                }
                                if j == bytes.len() && !eof {
                                    let s = &input[pos..i];
                                    self.skip(s);
                                    return i;
                                }
                                i = j;
                            }
                            Some(false) => break,
                        }
                    }
                    let skipped = &input[pos..i];
                    self.skip(skipped);
                    pos = i;
                    if i >= bytes.len() {
                        if eof {
                            self.flush_gap(out);
                            self.end_region(out);
                            continue;
                        }
                        return pos;
                    }
                    if let Some(close) = self.close {
                        match starts_with_marker(input, i, close, eof) {
                            None => return pos,
                            Some(true) => {
                                self.gap.clear();
                                self.region_text(close);
                                pos = i + close.len();
                                self.end_region(out);
                                continue;
                            }
                            Some(false) => {}
                        }
                    }
                    let b = bytes[i];
                    if b == b'{' || b == b'[' {
                        self.gap.clear();
                        self.scanner = Some(Box::new(Scanner::new(Dialect::Json, self.lenient, out.base + i)));
                        self.sink.depth = 0;
                        self.sink.elem_depth = None;
                        self.state = State::Value;
                        continue;
                    }
                    // Anything else ends the region; the whitespace before it was prose.
                    self.flush_gap(out);
                    self.end_region(out);
                }
                State::Value => {
                    let Some(mut scanner) = self.scanner.take() else {
                        self.state = State::Between { first: false };
                        continue;
                    };
                    self.sink.offset = out.base + pos;
                    // Fast path: inside an argument string that streams through, text that the
                    // scanner would decode and the writers re-escape to itself (plain text and
                    // complete simple escapes) is the arguments text as it stands. That holds
                    // for the end of a simple escape cut by the last delta too (the scanner
                    // held its backslash, which nothing has written yet). What follows such
                    // text (a quote, another escape) goes to the scanner.
                    let rest = &input[pos..];
                    if !eof && !rest.is_empty() && self.sink.streams_args_string() {
                        let bytes = rest.as_bytes();
                        let escape_end = scanner.in_plain_escape() && crate::json::is_verbatim_escape(bytes[0]);
                        if escape_end || scanner.in_plain_string() {
                            let skip = usize::from(escape_end);
                            let n = skip + crate::json::verbatim_prefix_len(&bytes[skip..]);
                            if n > 0 {
                                if escape_end {
                                    scanner.take_plain_escape_end();
                                    out.args("\\");
                                }
                                scanner.take_plain(n - skip);
                                let text = &rest[..n];
                                out.args(text);
                                self.region_text(text);
                                pos += n;
                                if &input[pos..] == "\\" {
                                    // An escape cut at the end of the delta: the scanner holds
                                    // its backslash until the next byte says what it is.
                                    scanner.take_plain_escape_start();
                                    self.region_text("\\");
                                    pos += 1;
                                }
                                self.scanner = Some(scanner);
                                if pos == input.len() {
                                    return pos;
                                }
                                continue;
                            }
                        }
                    }
                    let progress = {
                        let mut sink = EnvSink {
                            st: &mut self.sink,
                            out,
                        };
                        scanner.feed(&input[pos..], &mut sink)
                    };
                    if !scanner.repairs.is_empty() {
                        let stop_at = self.sink.stop.then_some(self.sink.stop_at);
                        out.diags(
                            scanner
                                .repairs
                                .drain(..)
                                .filter(|r| stop_at.is_none_or(|s| r.start <= s)),
                        );
                    }
                    if std::mem::take(&mut self.sink.args_pause) {
                        if let Progress::Done { consumed } = progress {
                            // Stopped just after the `{` of a started call's arguments: when
                            // the object is here whole and plain, it is written in one piece
                            // and the scanner skips it; otherwise the scanner reads on.
                            let s = &input[pos..pos + consumed];
                            self.region_text(s);
                            pos += consumed;
                            let depth = scanner.depth();
                            if depth < crate::families::ARGS_WHOLE_MAX_DEPTH {
                                let max = crate::families::ARGS_WHOLE_MAX_DEPTH - depth;
                                if let Some(n) = self.sink.args_object_rest(&input[pos..], out.base + pos, max, out) {
                                    scanner.skip_container_rest(n);
                                    let s = &input[pos..pos + n];
                                    self.region_text(s);
                                    pos += n;
                                }
                            }
                            self.scanner = Some(scanner);
                            continue;
                        }
                        // The input ended at the `{`: the arguments are read as they come.
                    }
                    if self.sink.stop {
                        // Not a call after all: what was read is prose.
                        let consumed = match progress {
                            Progress::Done { consumed }
                            | Progress::Partial { consumed }
                            | Progress::Error { consumed } => consumed,
                        };
                        let s = &input[pos..pos + consumed];
                        self.region_text(s);
                        pos += consumed;
                        // A stop asked for inside a string (whose text reaches the sink in
                        // parts, split as the deltas were) takes effect where the string ends,
                        // as it does when the whole string comes in one part: the rest of the
                        // string (and a quote that needs the next input to say whether it
                        // closes it) is read with the next input.
                        if !eof && scanner.in_string() && matches!(progress, Progress::Partial { .. }) {
                            self.scanner = Some(scanner);
                            return pos;
                        }
                        self.sink.elem = None;
                        self.end_region(out);
                        continue;
                    }
                    match progress {
                        Progress::Done { consumed } => {
                            let s = &input[pos..pos + consumed];
                            self.region_text(s);
                            pos += consumed;
                            self.scanner = None;
                            self.state = State::Between { first: false };
                        }
                        Progress::Partial { consumed } => {
                            let s = &input[pos..pos + consumed];
                            self.region_text(s);
                            pos += consumed;
                            if !eof {
                                self.scanner = Some(scanner);
                                return pos;
                            }
                            // End of output inside the value: close it (truncation repair).
                            let rest = &input[pos..];
                            self.region_text(rest);
                            pos = input.len();
                            self.sink.at_eof = true;
                            let ok = {
                                let mut sink = EnvSink {
                                    st: &mut self.sink,
                                    out,
                                };
                                scanner.finish(&mut sink)
                            };
                            out.diags(scanner.repairs.drain(..));
                            if !ok {
                                self.abandon(out.base + pos, out);
                            }
                            self.end_region(out);
                        }
                        Progress::Error { consumed } => {
                            let s = &input[pos..pos + consumed];
                            self.region_text(s);
                            pos += consumed;
                            self.abandon(out.base + pos, out);
                            // The rest of the region is prose.
                            self.end_region(out);
                        }
                    }
                }
            }
        }
    }
}

impl Envelope {
    /// The value could not be read to its end (at absolute offset `end`): close an open
    /// call's arguments, drop the rest.
    fn abandon(&mut self, end: usize, out: &mut Emitter) {
        if let Some(mut el) = self.sink.elem.take() {
            if el.started {
                el.writer.close_all();
                let tail = el.writer.take();
                out.diags(el.writer.take_diags());
                out.args(&tail);
                out.diag(
                    "truncated_arguments",
                    el.start_offset,
                    end.max(el.start_offset),
                    "invalid JSON cut a call's arguments short",
                );
                out.end_call();
            } else if el.rejected {
                emit_rejected(&self.sink, &mut el, out);
            }
        }
        self.scanner = None;
    }
}

#[cfg(test)]
mod tests {
    use crate::families::test_support::{self, opts, stream};
    use crate::parser::parse;
    use crate::ParseResult;

    /// Whole and chunked parses agree, and every diagnostic span lies within the text.
    fn check(format: Option<&str>, text: &str) -> ParseResult {
        let whole = test_support::check(format, None, text);
        for d in &whole.diagnostics {
            assert!(d.start <= d.end && d.end <= text.len(), "{d:?} in {text:?}");
        }
        whole
    }

    /// Arguments read whole are complete: a call abandoned after them (the envelope breaks
    /// off) closes nothing more (a fuzz find of the fast path).
    #[test]
    fn arguments_read_whole_are_not_closed_again() {
        let r = check(Some("generic_json"), r#"{name"1""arguments"{"":{}}{"#);
        assert_eq!(test_support::calls(&r), test_support::one("1", r#"{"":{}}"#));
    }

    /// An element rejected after a call of its region (here: JSON-encoded arguments under an
    /// empty name, decided inside the string) is content once it has ended, whole and the
    /// same however the output was chunked (a fuzz find, pre-existing).
    #[test]
    fn rejected_elements_are_content_once_they_end() {
        for (text, content) in [
            (
                r#"[{"name":"a","arguments":{}},{"name":"","arguments":"{}"}]"#,
                r#"{"name":"","arguments":"{}"}"#,
            ),
            (
                r#"[{"name":"a","arguments":{}},{"name":"","arguments":"{}"#,
                r#"{"name":"","arguments":"{}"}"#,
            ),
            (
                r#"[{"name":"a","arguments":{}},{"name":"","arguments":"{"#,
                r#"{"name":"","arguments":"{"}"#,
            ),
        ] {
            let r = check(Some("generic_json"), text);
            assert_eq!(test_support::calls(&r), test_support::one("a", "{}"), "{text}");
            assert_eq!(r.content.as_deref(), Some(content), "{text}");
        }
        // An undeclared tool's element keeps its arguments in the content.
        let tools = r#"[{"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}}]"#;
        let text = r#"[{"name":"a","arguments":{}},{"name":"zzz","arguments":{"x":[1,2]}}]"#;
        let r = test_support::check(Some("generic_json"), Some(tools), text);
        assert_eq!(r.content.as_deref(), Some(r#"{"name":"zzz","arguments":{"x":[1,2]}}"#));
    }

    #[test]
    fn encoded_argument_spans_stay_within_the_string() {
        let r = check(None, r#"{"name":"t","arguments":abc}"#);
        assert!(r.tool_calls.is_empty());
        check(None, r#"{"name":"t","arguments":"{\"a\":1,}"}"#);
        check(None, r#"{"name":"t","arguments":"{\"a\": [1, 2,,]} trailing"}"#);
    }

    /// JSON-encoded arguments that fail after their call has started: the element is kept as
    /// content whole (balanced), however the output was chunked (a fuzz find).
    #[test]
    fn encoded_arguments_rejected_after_start_are_content_whatever_the_chunking() {
        let text = "<tool_call>\n{\"name\": \"process\", \"arguments\"\" {:mxl\": \"<![CDATA\": \"x\0<y>\"}}\n</n\"";
        let r = test_support::check(Some("hermes"), None, text);
        // The call had started: it stays, with arguments closed into a JSON object.
        for call in &r.tool_calls {
            let args: serde_json::Value = serde_json::from_str(&call.arguments).expect("JSON arguments");
            assert!(args.is_object(), "{}", call.arguments);
        }
        let content = r.content.expect("content");
        assert!(content.contains("CDATA") && content.contains("<y>"), "{content}");
        assert!(
            r.diagnostics.iter().any(|d| d.kind == "invalid_arguments"),
            "{:?}",
            r.diagnostics
        );
    }

    /// Arguments that arrive whole are written in one piece where they are plain JSON that
    /// coercion would leave alone; whatever the path, the result is the token-by-token one
    /// (one-character deltas never hold a whole object), with tools and without.
    #[test]
    fn arguments_read_whole_come_out_as_read_token_by_token() {
        let tools = r#"[{"type": "function", "function": {"name": "w", "parameters": {"type": "object",
            "properties": {"n": {"type": "integer"}, "s": {"type": "string"}, "u": {"enum": ["c", "f"]},
                           "l": {"type": "array", "items": {"type": "number"}}},
            "required": ["n"], "additionalProperties": false}}},
            {"type": "function", "function": {"name": "free", "parameters": {"type": "object",
            "properties": {"x": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}}}]"#;
        let args = [
            r#"{"n": 1, "s": "a \"b\" \\ \n \u00e9 \ud83c\udf38 \/", "u": "f", "l": [1, 2.5, -3e2]}"#,
            r#"{ "n" : 0 }"#,
            r#"{"n": "7"}"#,
            r#"{"n": 1, "u": "F"}"#,
            r#"{"n": 1, "extra": true}"#,
            r#"{"s": "no n"}"#,
            r#"{"n": 1, "s": 'single'}"#,
            r#"{"n": 1, "l": [1, 2,]}"#,
            r#"{"n": 1, "s": "\ud83c lone"}"#,
            r#"{"x": "5", "deep": [[[{"k": null}]]]}"#,
            r#"{"n": 1, "s": "cut"#,
        ];
        for a in args {
            for name in ["w", "free"] {
                let hermes = format!("Text.\n<tool_call>\n{{\"name\": \"{name}\", \"arguments\": {a}}}\n</tool_call>");
                let mistral = format!("[TOOL_CALLS] [{{\"name\": \"{name}\", \"arguments\": {a}}}, {{\"name\": \"w\", \"arguments\": {{\"n\": 2}}}}]");
                let late_name = format!("<tool_call>{{\"arguments\": {a}, \"name\": \"{name}\"}}</tool_call>");
                for (format, text) in [("hermes", &hermes), ("mistral_array", &mistral), ("hermes", &late_name)] {
                    test_support::check(Some(format), Some(tools), text);
                    test_support::check(Some(format), None, text);
                }
            }
        }
    }

    /// Argument strings stream through the verbatim fast path (text fed while the scanner is
    /// inside a string that streams through): escapes (kept, changed or split over deltas),
    /// control characters, non-ASCII,
    /// values the schema holds (enum), decodes (a string where an object is wanted) or drops
    /// must come out as the whole parse has them.
    #[test]
    fn plain_string_text_streams_like_the_whole_parse() {
        let tools = r#"[{"type": "function", "function": {"name": "w", "parameters": {"type": "object",
            "properties": {"path": {"type": "string"}, "mode": {"enum": ["a", "b"]},
                           "meta": {"type": "object"}, "body": {"type": "string"}},
            "additionalProperties": false}}}]"#;
        let body = "line one, naïve ü 👍 text\\n\\t\\\"quoted\\\" back\\\\slash \\u00e9 a\\/b \\b\\f\\r tail";
        let texts = [
            format!(
                r#"<tool_call>{{"name": "w", "arguments": {{"path": "src/a long path/x.py", "body": "{body}"}}}}</tool_call>"#
            ),
            format!(
                r#"<tool_call>{{"name": "w", "arguments": {{"mode": "a", "meta": "{{\"k\": \"v v v\"}}", "body": "{body}"}}}}</tool_call>"#
            ),
            format!(
                r#"<tool_call>{{"name": "w", "arguments": {{"extra": "dropped text here", "body": "raw	tab {body}"}}}}</tool_call>"#
            ),
            format!(r#"<tool_call>{{"name": "w", "arguments": {{"body": "cut short {body}"#),
        ];
        for text in &texts {
            let r = test_support::check(Some("hermes"), Some(tools), text);
            assert_eq!(r.tool_calls.len(), 1, "{text}");
            let args: serde_json::Value = serde_json::from_str(&r.tool_calls[0].arguments).expect("JSON");
            assert!(
                args["body"].as_str().is_some_and(|b| b.contains("naïve ü 👍")),
                "{args}"
            );
            // Without tools (no coercion) as well.
            test_support::check(Some("hermes"), None, text);
        }
    }

    #[test]
    fn truncated_arguments_span_is_chunk_independent() {
        let text = "```json\n{\"name\": \"x\", \"arguments\": {\"s\": <|tool_call>call:g{";
        check(None, text);
        let text = "<tool_call>{\"name\": \"x\", \"arguments\": {\"s\": ]]]";
        check(Some("hermes"), text);
    }

    #[test]
    fn bare_json_at_start_uses_one_whitespace_definition() {
        // `\x0b` is not whitespace for "bare JSON at the start": the text stays content.
        for text in ["\u{b}{", "\u{b}{\"name\": \"f\", \"arguments\": {}}", " \u{b} {}"] {
            let r = check(None, text);
            assert!(r.tool_calls.is_empty(), "{text:?}");
        }
        // ASCII whitespace (form feed included) before the JSON is fine.
        let r = check(None, "\u{c}\n {\"name\": \"f\", \"arguments\": {}}");
        assert_eq!(r.tool_calls.len(), 1);
    }

    /// A call rejected by a token inside a string (here: JSON-encoded arguments whose text
    /// starts with `{`, under an empty name) ends where that string ends, however the string
    /// was split: the text after it is read the same way whole and streamed (a fuzz find).
    #[test]
    fn a_rejection_inside_a_string_ends_with_the_string() {
        let tools = Some(r#"[{"name": "get_weather"}]"#);
        for text in [
            r#"{name"""arguments""{{"#,
            r#"{name"""arguments""{{ {x"#,
            r#"{"name": "", "arguments": "{{ \"a\": 1}"} {"name": "get_weather", "arguments": {}}"#,
            r#"{"name": " ", "arguments": "{ a } ] {"} tail {"#,
            r#"["":{name"""arguments""{"{"#,
            r#"["":{name"""arguments""{"{"} {"#,
            r#"{name"""arguments"" {"#,
            r#"{name"""arguments""{\{"#,
            r#"{name"""arguments""{\u00{ {"#,
            r#"{"name": "nope", "arguments": " \u0001 {\"a\": 1}"} {"#,
        ] {
            for format in [Some("generic_json"), None] {
                let whole = parse(text, opts(format, tools)).expect("parse");
                for size in [1, 2, 3, 5, 8, 13, 19, 20, 21] {
                    assert_eq!(
                        stream(text, opts(format, tools), size).1,
                        whole,
                        "chunk size {size}: {text}"
                    );
                }
            }
        }
    }

    #[test]
    fn repairs_after_a_rejected_value_are_chunk_independent() {
        let tools = Some(r#"[{"name": "f"}]"#);
        let text = "{name\"\"\"args\"\"{\u{0}";
        let whole = parse(text, opts(None, tools)).expect("parse");
        for size in [1, 2, 3, 5] {
            assert_eq!(stream(text, opts(None, tools), size).1, whole, "chunk size {size}");
        }
    }
}

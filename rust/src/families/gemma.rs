//! Gemma custom-notation family: `call:NAME{key:value,…}` between a start and a close marker,
//! with unquoted keys and strings wrapped in a delimiter token that has no escapes.
//!
//! * gemma4: `<|tool_call>call:get_weather{location:<|"|>Paris<|"|>,days:3}<tool_call|>`
//! * functiongemma: `<start_function_call>call:get_weather{city:<escape>Paris<escape>}<end_function_call>`
//!
//! Values: a delimited string (raw text, streamed), a JSON `"string"` (escapes decoded), a
//! `'single-quoted'` string (raw), numbers, `true`/`false`/`null`, nested `{}` and `[]` with
//! the same notation, and bare text. Bare text of a top-level argument is streamed as a string
//! when the schema says string (or, without a schema, when it cannot start a literal); it ends
//! at `,key:` or at the call's end. Other bare words are held and read as a literal, else a
//! string. Repairs (as Gemma's own parser does): a missing closing delimiter before the object
//! close, a stray delimiter after a single-quoted value, a missing `}` at the call's end.
//!
//! The call body ends at the first close marker, wherever it is (as the model's special
//! token cannot sit inside a value).

use crate::args::ArgsWriter;
use crate::emit::{Channel, Emitter};
use crate::families::{Family, Prose, ProseSpec, ProseStep};
use crate::json::{normalize_number, Dialect, Progress, Scanner, Token, TokenSink};
use crate::marker::{starts_with_marker, Find, MarkerSet};
use crate::tools::{value_kind, ValueKind};

/// Data describing one custom-notation format.
#[derive(Debug, Clone)]
pub struct GemmaSpec {
    /// The string delimiter token (`<|"|>`, `<escape>`).
    pub delim: &'static str,
    /// The marker that closes a call.
    pub close: &'static str,
}

/// Longest call head (`call:NAME`) or key read before the text is judged not to be a call.
const MAX_NAME: usize = 256;

fn can_start_literal(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b't' | b'f' | b'n' | b'T' | b'F' | b'N')
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Object,
    Array,
}

/// Text held back inside a streamed string until what follows decides its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    None,
    /// `}`/`]` (and spaces): structural if the call ends right after them.
    Closers,
    /// `,` then maybe `key:` (a raw string's end); `ident`: key bytes seen, `after`: spaces after them.
    Comma {
        ident: bool,
        after: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In an object: expect a key, `,` or the closer.
    Key,
    /// Reading a key up to `:`.
    KeyText,
    /// Expect a value (leading spaces are kept in `pending`).
    Value,
    /// Inside a delimited string.
    DelimStr,
    /// Inside a JSON `"string"` (read by a sub-scanner).
    JsonStr,
    /// Inside a `'single-quoted'` string; `escaped` after a backslash.
    SingleStr { escaped: bool },
    /// After a single-quoted string: a stray delimiter is dropped.
    AfterSingle,
    /// A streamed bare string (top-level argument).
    RawStr,
    /// A held bare word.
    Bare,
    /// After a value: expect `,` or a closer.
    After,
    /// The arguments object is complete.
    Done,
}

/// Reads the arguments object (after its `{`) and writes compact JSON.
#[derive(Debug)]
struct Body {
    delim: &'static str,
    lenient: bool,
    /// The declared tool name (schema lookups).
    name: String,
    w: ArgsWriter,
    stack: Vec<Frame>,
    mode: Mode,
    hold: Hold,
    /// Held text: leading spaces of a value, a bare word, or a held string tail.
    pending: String,
    key: String,
    /// Absolute offset where the current key's text starts.
    key_at: usize,
    /// Schema kind of the current top-level value.
    kind: ValueKind,
    sub: Option<Box<Scanner>>,
}

impl Body {
    fn new(
        delim: &'static str,
        lenient: bool,
        name: String,
        at: usize,
        schema: Option<crate::schema_ref::SchemaRef>,
    ) -> Self {
        let mut w = ArgsWriter::new(schema);
        w.token(Token::BeginObject, at);
        Body {
            delim,
            lenient,
            name,
            w,
            stack: vec![Frame::Object],
            mode: Mode::Key,
            hold: Hold::None,
            pending: String::new(),
            key: String::new(),
            key_at: at,
            kind: ValueKind::Unknown,
            sub: None,
        }
    }

    fn in_object(&self) -> bool {
        self.stack.last() == Some(&Frame::Object)
    }

    fn text(&mut self, s: &str, at: usize) {
        if !s.is_empty() {
            self.w.token(Token::StringPart(s), at);
        }
    }

    fn flush_pending(&mut self, at: usize) {
        let p = std::mem::take(&mut self.pending);
        self.text(&p, at);
        self.hold = Hold::None;
    }

    fn open(&mut self, frame: Frame, at: usize) {
        self.w.token(
            if frame == Frame::Object {
                Token::BeginObject
            } else {
                Token::BeginArray
            },
            at,
        );
        self.stack.push(frame);
        self.mode = if frame == Frame::Object { Mode::Key } else { Mode::Value };
    }

    /// Closes the innermost container (whatever closer was written).
    fn close_frame(&mut self, at: usize) {
        if let Some(frame) = self.stack.pop() {
            self.w.token(
                if frame == Frame::Object {
                    Token::EndObject
                } else {
                    Token::EndArray
                },
                at,
            );
        }
        self.mode = if self.stack.is_empty() { Mode::Done } else { Mode::After };
    }

    /// A key is complete: writes it and notes the schema kind of its value.
    fn start_member(&mut self, out: &Emitter, at: usize) {
        let raw = std::mem::take(&mut self.key);
        let mut key = raw.trim();
        if let Some(k) = key.strip_prefix(self.delim).and_then(|k| k.strip_suffix(self.delim)) {
            key = k;
        } else if key.len() >= 2
            && (key.starts_with('"') && key.ends_with('"') || key.starts_with('\'') && key.ends_with('\''))
        {
            key = &key[1..key.len() - 1];
        }
        self.kind = if self.stack.len() == 1 {
            value_kind(out.tool(&self.name).and_then(|t| t.property(key)))
        } else {
            ValueKind::Unknown
        };
        self.w.token(Token::Key(key), at);
        self.pending.clear();
        self.mode = Mode::Value;
    }

    /// Is `ident` the next key after a raw string? With a schema, only a declared property.
    fn key_known(&self, out: &Emitter, ident: &str) -> bool {
        match out
            .tool(&self.name)
            .and_then(|t| t.parameters.get("properties"))
            .and_then(|p| p.as_object())
        {
            Some(props) if !props.is_empty() => props.contains_key(ident),
            _ => true,
        }
    }

    /// A held bare word is complete: a literal, a number, else a string.
    fn emit_bare(&mut self, at: usize) {
        let word = std::mem::take(&mut self.pending);
        let t = word.trim();
        match t {
            "true" | "True" => self.w.token(Token::Bool(true), at),
            "false" | "False" => self.w.token(Token::Bool(false), at),
            "null" | "None" => self.w.token(Token::Null, at),
            _ => match normalize_number(t) {
                Some(n) => self.w.token(Token::Number(&n), at),
                None => {
                    self.w.token(Token::BeginString, at);
                    self.w.token(Token::StringPart(t), at);
                    self.w.token(Token::EndString, at);
                }
            },
        }
        self.mode = Mode::After;
    }

    /// Reads `s` (which starts at absolute offset `at`). Returns the bytes consumed; only a
    /// tail that may grow into the delimiter is left, and nothing when `fin`.
    fn feed(&mut self, s: &str, at: usize, fin: bool, out: &mut Emitter) -> usize {
        let b = s.as_bytes();
        let d = self.delim;
        let d0 = d.as_bytes()[0];
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let here = at + i;
            match self.mode {
                // What follows the arguments is read by the family.
                Mode::Done => break,
                Mode::Key => {
                    if c.is_ascii_whitespace() || c == b',' {
                        i += 1;
                    } else if c == b'}' || c == b']' {
                        self.close_frame(here);
                        i += 1;
                    } else {
                        self.key.clear();
                        self.key_at = here;
                        self.mode = Mode::KeyText;
                    }
                }
                Mode::KeyText => {
                    // At most MAX_NAME + 1 bytes in all: the cap's decision depends on the
                    // bytes only, never on the chunking.
                    let start = i;
                    let stop = (i + (MAX_NAME + 1).saturating_sub(self.key.len())).min(b.len());
                    while i < stop && !matches!(b[i], b':' | b'}' | b',' | b']' | b'{' | b'[') {
                        i += 1;
                    }
                    // Never split a character (the cap may fall inside one).
                    while i < b.len() && !s.is_char_boundary(i) {
                        i += 1;
                    }
                    self.key.push_str(&s[start..i]);
                    if self.key.len() > MAX_NAME {
                        out.diag(
                            "invalid_arguments",
                            self.key_at,
                            at + i,
                            "an argument key is too long; the rest of the call was dropped",
                        );
                        self.key.clear();
                        self.end_frames(at + i);
                        continue;
                    }
                    if i >= b.len() {
                        break;
                    }
                    match b[i] {
                        b':' => {
                            i += 1;
                            self.start_member(out, at + i);
                        }
                        b'{' | b'[' => {
                            out.diag("missing_colon", at + i, at + i, "inserted a missing ':' after a key");
                            self.start_member(out, at + i);
                        }
                        _ => {
                            if !self.key.trim().is_empty() {
                                out.diag("missing_value", at + i, at + i, "a key without a value was dropped");
                            }
                            self.key.clear();
                            self.mode = Mode::Key;
                        }
                    }
                }
                Mode::Value => {
                    if c.is_ascii_whitespace() {
                        self.pending.push(c as char);
                        i += 1;
                        continue;
                    }
                    if c == d0 {
                        match starts_with_marker(s, i, d, fin) {
                            None => break,
                            Some(true) => {
                                self.pending.clear();
                                self.w.token(Token::BeginString, here);
                                self.mode = Mode::DelimStr;
                                self.hold = Hold::None;
                                i += d.len();
                                continue;
                            }
                            Some(false) => {}
                        }
                    }
                    match c {
                        b'"' => {
                            self.pending.clear();
                            self.sub = Some(Box::new(Scanner::new(Dialect::Json, self.lenient, here)));
                            self.mode = Mode::JsonStr;
                        }
                        b'\'' => {
                            self.pending.clear();
                            self.w.token(Token::BeginString, here);
                            self.mode = Mode::SingleStr { escaped: false };
                            i += 1;
                        }
                        b'{' | b'[' => {
                            self.pending.clear();
                            self.open(if c == b'{' { Frame::Object } else { Frame::Array }, here);
                            i += 1;
                        }
                        b'}' | b']' => {
                            self.pending.clear();
                            if self.in_object() {
                                out.diag("missing_value", here, here, "a key had no value; used null");
                                self.w.token(Token::Null, here);
                            }
                            self.close_frame(here);
                            i += 1;
                        }
                        b',' => {
                            self.pending.clear();
                            if self.in_object() {
                                out.diag("missing_value", here, here, "a key had no value; used null");
                                self.w.token(Token::Null, here);
                                self.mode = Mode::After;
                            } else {
                                i += 1;
                            }
                        }
                        _ => {
                            let raw = self.stack.len() == 1
                                && (self.kind == ValueKind::String
                                    || (self.kind == ValueKind::Unknown && !can_start_literal(c)));
                            if raw {
                                // The spaces after the colon belong to a raw string.
                                self.w.token(Token::BeginString, here);
                                self.flush_pending(here);
                                self.mode = Mode::RawStr;
                            } else {
                                self.pending.clear();
                                self.mode = Mode::Bare;
                            }
                        }
                    }
                }
                Mode::DelimStr => {
                    if self.hold == Hold::Closers {
                        if (matches!(c, b'}' | b']') || c.is_ascii_whitespace()) && self.pending.len() < MAX_NAME {
                            self.pending.push(c as char);
                            i += 1;
                            continue;
                        }
                        if c != d0 {
                            self.flush_pending(here);
                        }
                    }
                    let start = i;
                    while i < b.len() && b[i] != d0 && b[i] != b'}' && b[i] != b']' {
                        i += 1;
                    }
                    self.text(&s[start..i], at + start);
                    if i >= b.len() {
                        break;
                    }
                    if b[i] == d0 {
                        match starts_with_marker(s, i, d, fin) {
                            None => break,
                            Some(true) => {
                                self.flush_pending(at + i);
                                self.w.token(Token::EndString, at + i);
                                self.mode = Mode::After;
                                i += d.len();
                            }
                            Some(false) => {
                                self.flush_pending(at + i);
                                self.text(&s[i..i + 1], at + i);
                                i += 1;
                            }
                        }
                    } else {
                        self.hold = Hold::Closers;
                        self.pending.push(b[i] as char);
                        i += 1;
                    }
                }
                Mode::JsonStr => {
                    let Some(mut sc) = self.sub.take() else {
                        self.mode = Mode::After;
                        continue;
                    };
                    let progress = sc.feed(&s[i..], &mut self.w);
                    out.diags(sc.repairs.drain(..));
                    match progress {
                        Progress::Done { consumed } | Progress::Error { consumed } => {
                            i += consumed;
                            if !sc.is_done() {
                                // A strict scanner stops at invalid string text: close the
                                // string to stay valid JSON.
                                self.close_sub(*sc, at + i, out);
                            }
                            self.mode = Mode::After;
                        }
                        Progress::Partial { consumed } => {
                            i += consumed;
                            self.sub = Some(sc);
                            if i < b.len() {
                                break;
                            }
                        }
                    }
                }
                Mode::SingleStr { mut escaped } => {
                    let start = i;
                    while i < b.len() {
                        let ch = b[i];
                        if ch == b'\'' && !escaped {
                            break;
                        }
                        escaped = ch == b'\\' && !escaped;
                        i += 1;
                    }
                    self.text(&s[start..i], at + start);
                    if i >= b.len() {
                        self.mode = Mode::SingleStr { escaped };
                        break;
                    }
                    self.w.token(Token::EndString, at + i);
                    self.mode = Mode::AfterSingle;
                    i += 1;
                }
                Mode::AfterSingle => {
                    if c == d0 {
                        match starts_with_marker(s, i, d, fin) {
                            None => break,
                            Some(true) => {
                                out.diag(
                                    "stray_delimiter",
                                    here,
                                    here + d.len(),
                                    "dropped a string delimiter after a single-quoted value",
                                );
                                i += d.len();
                            }
                            Some(false) => {}
                        }
                    }
                    self.mode = Mode::After;
                }
                Mode::RawStr => match self.hold {
                    Hold::Closers => {
                        if (matches!(c, b'}' | b']') || c.is_ascii_whitespace()) && self.pending.len() < MAX_NAME {
                            self.pending.push(c as char);
                            i += 1;
                        } else {
                            self.flush_pending(here);
                        }
                    }
                    Hold::Comma { ident, after } => {
                        if c.is_ascii_whitespace() && self.pending.len() < MAX_NAME {
                            self.pending.push(c as char);
                            self.hold = Hold::Comma { ident, after: ident };
                            i += 1;
                        } else if is_key_byte(c) && !after && self.pending.len() < MAX_NAME {
                            self.pending.push(c as char);
                            self.hold = Hold::Comma {
                                ident: true,
                                after: false,
                            };
                            i += 1;
                        } else if c == b':' && ident && self.key_known(out, self.pending[1..].trim()) {
                            // `,key:` ends the raw string.
                            self.key = self.pending[1..].trim().to_string();
                            self.pending.clear();
                            self.hold = Hold::None;
                            self.w.token(Token::EndString, here);
                            i += 1;
                            self.start_member(out, at + i);
                        } else {
                            self.flush_pending(here);
                        }
                    }
                    Hold::None => {
                        let start = i;
                        while i < b.len() && !matches!(b[i], b',' | b'}' | b']') {
                            i += 1;
                        }
                        self.text(&s[start..i], at + start);
                        if i < b.len() {
                            self.pending.push(b[i] as char);
                            self.hold = if b[i] == b',' {
                                Hold::Comma {
                                    ident: false,
                                    after: false,
                                }
                            } else {
                                Hold::Closers
                            };
                            i += 1;
                        }
                    }
                },
                Mode::Bare => {
                    let start = i;
                    while i < b.len() && !matches!(b[i], b',' | b'}' | b']') {
                        i += 1;
                    }
                    self.pending.push_str(&s[start..i]);
                    if i < b.len() {
                        self.emit_bare(at + i);
                    }
                }
                Mode::After => {
                    if c.is_ascii_whitespace() {
                        i += 1;
                    } else if c == b',' {
                        self.mode = if self.in_object() { Mode::Key } else { Mode::Value };
                        self.pending.clear();
                        i += 1;
                    } else if c == b'}' || c == b']' {
                        self.close_frame(here);
                        i += 1;
                    } else {
                        out.diag("missing_comma", here, here, "inserted a missing ','");
                        self.mode = if self.in_object() { Mode::Key } else { Mode::Value };
                        self.pending.clear();
                    }
                }
            }
        }
        i
    }

    /// Ends a JSON string's sub-scanner cut short; when it does not close the string itself
    /// (repair off), the string is closed here so the arguments stay a JSON object.
    fn close_sub(&mut self, mut sc: Scanner, at: usize, out: &mut Emitter) {
        let closed = sc.finish(&mut self.w);
        out.diags(sc.repairs.drain(..));
        if !closed {
            out.diag("unclosed_string", at, at, "closed an unterminated string");
            self.w.token(Token::EndString, at);
        }
    }

    /// Closes every open container.
    fn end_frames(&mut self, at: usize) {
        while !self.stack.is_empty() {
            self.close_frame(at);
        }
        self.mode = Mode::Done;
    }

    /// The call's body ended (close marker or end of output): reads `tail` and closes what
    /// is open.
    fn end(&mut self, tail: &str, at: usize, out: &mut Emitter) {
        self.feed(tail, at, true, out);
        let at = at + tail.len();
        let closers_structural = |body: &mut Body| {
            let held = std::mem::take(&mut body.pending);
            for ch in held.chars() {
                if matches!(ch, '}' | ']') && !body.stack.is_empty() {
                    body.close_frame(at);
                }
            }
            body.hold = Hold::None;
        };
        match self.mode {
            Mode::Done | Mode::After | Mode::Key => {}
            Mode::KeyText => {
                if !self.key.trim().is_empty() {
                    out.diag("truncated", at, at, "a key without a value was dropped");
                }
                self.key.clear();
            }
            Mode::Value => {
                if self.in_object() {
                    out.diag("truncated", at, at, "a key had no value; used null");
                    self.w.token(Token::Null, at);
                }
            }
            Mode::DelimStr | Mode::RawStr => {
                if self.mode == Mode::DelimStr {
                    out.diag(
                        "unclosed_string",
                        at,
                        at,
                        "closed a string whose closing delimiter is missing",
                    );
                }
                if self.hold == Hold::Closers {
                    self.w.token(Token::EndString, at);
                    self.mode = Mode::After;
                    closers_structural(self);
                } else {
                    self.flush_pending(at);
                    self.w.token(Token::EndString, at);
                }
            }
            Mode::JsonStr => {
                if let Some(sc) = self.sub.take() {
                    self.close_sub(*sc, at, out);
                }
            }
            Mode::SingleStr { .. } => {
                out.diag("unclosed_string", at, at, "closed an unterminated string");
                self.w.token(Token::EndString, at);
            }
            Mode::AfterSingle => {}
            Mode::Bare => self.emit_bare(at),
        }
        if self.stack.len() > 1 || (self.stack.len() == 1 && self.mode != Mode::Done) {
            out.diag("missing_close", at, at, "closed the arguments' open containers");
        }
        self.end_frames(at);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prose,
    /// After the start marker: `call:NAME` up to `{`.
    Head,
    /// Inside the arguments.
    Body,
    /// The arguments closed: the close marker may follow.
    AfterBody,
    /// A rejected call: its text is content up to the close marker.
    Passthrough,
}

/// The custom-notation state machine.
pub struct Gemma {
    spec: &'static GemmaSpec,
    prose: Prose,
    close: MarkerSet,
    lenient: bool,
    state: State,
    /// Raw text since the start marker while the head is read.
    head: String,
    head_start: usize,
    marker_len: usize,
    body: Option<Body>,
}

impl Gemma {
    /// `in_reasoning` is ignored: these models write their reasoning opener themselves.
    pub fn new(spec: &'static GemmaSpec, prose: &ProseSpec, _in_reasoning: bool, lenient: bool) -> Self {
        Gemma {
            spec,
            prose: Prose::new(prose, false),
            close: MarkerSet::new(&[spec.close]),
            lenient,
            state: State::Prose,
            head: String::new(),
            head_start: 0,
            marker_len: 0,
            body: None,
        }
    }

    /// The head is not a call: its text is content.
    fn head_is_content(&mut self, out: &mut Emitter) {
        let head = std::mem::take(&mut self.head);
        out.text(Channel::Content, &head);
        self.prose.note_content();
        self.state = State::Prose;
    }

    /// The call name in the head, if it is one.
    fn head_name(&self) -> Option<String> {
        let h = self.head.get(self.marker_len..)?.trim();
        let name = h.strip_prefix("call:").unwrap_or(h).trim();
        (!name.is_empty() && !name.contains(char::is_whitespace)).then(|| name.to_string())
    }

    fn send_args(&mut self, out: &mut Emitter) {
        if let Some(body) = self.body.as_mut() {
            let s = body.w.take();
            out.args(&s);
            out.diags(body.w.take_diags());
        }
    }

    fn end_body(&mut self, tail: &str, at: usize, out: &mut Emitter) {
        if let Some(mut body) = self.body.take() {
            body.end(tail, at, out);
            let s = body.w.take();
            out.args(&s);
            out.diags(body.w.take_diags());
            out.end_call();
        }
    }
}

impl Family for Gemma {
    fn feed(&mut self, input: &str, eof: bool, out: &mut Emitter) -> usize {
        let bytes = input.as_bytes();
        let mut pos = 0;
        loop {
            match self.state {
                State::Prose => match self.prose.scan(input, pos, eof, out) {
                    ProseStep::Wait { consumed } => return consumed,
                    ProseStep::BareJson { at } => {
                        out.text(Channel::Content, &input[at..at + 1]);
                        self.prose.note_content();
                        pos = at + 1;
                    }
                    ProseStep::Trigger { at, len, .. } => {
                        self.head.clear();
                        self.head.push_str(&input[at..at + len]);
                        self.head_start = out.base + at;
                        self.marker_len = len;
                        self.state = State::Head;
                        pos = at + len;
                    }
                },
                State::Head => {
                    let (limit, close_at) = match self.close.find(input, pos, eof) {
                        Find::Found { at, .. } => (at, Some(at)),
                        Find::Partial { at } => (at, None),
                        Find::None => (input.len(), None),
                    };
                    // Read at most one byte past the cap in all, so where the head turns
                    // into content depends on the bytes only, never on the chunking.
                    let room = (MAX_NAME + self.marker_len + 1).saturating_sub(self.head.len());
                    let mut stop = (pos + room).min(input.len());
                    while stop < input.len() && !input.is_char_boundary(stop) {
                        stop += 1;
                    }
                    let limit = limit.min(stop);
                    let brace = input[pos..limit].find('{').map(|k| pos + k);
                    let end = brace.unwrap_or(limit);
                    self.head.push_str(&input[pos..end]);
                    if self.head.len() > MAX_NAME + self.marker_len {
                        self.head_is_content(out);
                        pos = end;
                        continue;
                    }
                    if let Some(j) = brace {
                        let Some(name) = self.head_name() else {
                            self.head_is_content(out);
                            pos = j;
                            continue;
                        };
                        match out.accept_name(&name, self.head_start, out.base + j) {
                            Some(declared) => {
                                out.start_call(&declared, None);
                                self.head.clear();
                                self.body = Some(Body::new(
                                    self.spec.delim,
                                    self.lenient,
                                    declared.clone(),
                                    out.base + j,
                                    out.args_schema(&declared),
                                ));
                                self.send_args(out);
                                self.state = State::Body;
                            }
                            None => {
                                self.head.push('{');
                                self.head_is_content(out);
                                self.state = State::Passthrough;
                            }
                        }
                        pos = j + 1;
                        continue;
                    }
                    if let Some(at) = close_at {
                        // `call:NAME` and the close marker: a call without arguments.
                        let close = self.spec.close;
                        match self.head_name() {
                            Some(name) => match out.accept_name(&name, self.head_start, out.base + at) {
                                Some(declared) => {
                                    out.start_call(&declared, None);
                                    out.args("{}");
                                    out.end_call();
                                    self.head.clear();
                                    self.state = State::Prose;
                                }
                                None => {
                                    self.head.push_str(close);
                                    self.head_is_content(out);
                                }
                            },
                            None => {
                                self.head.push_str(close);
                                self.head_is_content(out);
                            }
                        }
                        pos = at + close.len();
                        continue;
                    }
                    if eof {
                        // No `{`: not a certain call.
                        self.head.push_str(&input[end..]);
                        self.head_is_content(out);
                        pos = input.len();
                        continue;
                    }
                    return end;
                }
                State::Body => {
                    let found = self.close.find(input, pos, eof);
                    let limit = match found {
                        Find::Found { at, .. } | Find::Partial { at } => at,
                        Find::None => input.len(),
                    };
                    let Some(body) = self.body.as_mut() else {
                        self.state = State::AfterBody;
                        continue;
                    };
                    let consumed = body.feed(&input[pos..limit], out.base + pos, false, out);
                    let done = body.mode == Mode::Done;
                    self.send_args(out);
                    if done {
                        self.end_body("", out.base + pos + consumed, out);
                        self.state = State::AfterBody;
                        pos += consumed;
                        continue;
                    }
                    match found {
                        Find::Found { at, .. } => {
                            let tail = &input[pos + consumed..at];
                            self.end_body(tail, out.base + pos + consumed, out);
                            self.state = State::Prose;
                            pos = at + self.spec.close.len();
                        }
                        _ if eof => {
                            let tail = &input[pos + consumed..];
                            self.end_body(tail, out.base + pos + consumed, out);
                            out.diag(
                                "truncated",
                                out.base + input.len(),
                                out.base + input.len(),
                                "the output ended inside a call; closed it",
                            );
                            self.state = State::Prose;
                            pos = input.len();
                        }
                        _ => return pos + consumed,
                    }
                }
                State::AfterBody => {
                    // Spaces between the arguments and the close marker are markup.
                    let mut i = pos;
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    if i >= bytes.len() && !eof {
                        return i;
                    }
                    pos = match starts_with_marker(input, i, self.spec.close, eof) {
                        None => return i,
                        Some(true) => i + self.spec.close.len(),
                        Some(false) => i,
                    };
                    self.state = State::Prose;
                }
                State::Passthrough => {
                    let (end, next) = match self.close.find(input, pos, eof) {
                        Find::Found { at, .. } => (at + self.spec.close.len(), State::Prose),
                        Find::Partial { at } => (at, State::Passthrough),
                        Find::None => (input.len(), if eof { State::Prose } else { State::Passthrough }),
                    };
                    out.text(Channel::Content, &input[pos..end]);
                    pos = end;
                    self.state = next;
                    if next == State::Passthrough {
                        return pos;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::families::test_support::{calls, check, one, opts, stream};

    use crate::parser::{parse, Options};

    #[test]
    fn formats_md_examples() {
        let r = check(
            Some("gemma4"),
            None,
            r#"<|tool_call>call:get_weather{location:<|"|>Paris<|"|>,days:3}<tool_call|>"#,
        );
        assert_eq!(calls(&r), one("get_weather", r#"{"location":"Paris","days":3}"#));
        assert_eq!(r.content, None);
        let r = check(
            Some("functiongemma"),
            None,
            "<start_function_call>call:get_weather{city:<escape>Paris<escape>}<end_function_call>",
        );
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"Paris"}"#));
    }

    #[test]
    fn values_and_nesting() {
        let r = check(
            Some("gemma4"),
            None,
            r#"<|tool_call>call:f{a:{b:[1,-2.5,true,null,<|"|>x "y" \n<|"|>]},c:"j\"s\u00e9",d:'r\aw',e:False,f:plain text}<tool_call|>"#,
        );
        assert_eq!(
            calls(&r),
            one(
                "f",
                r#"{"a":{"b":[1,-2.5,true,null,"x \"y\" \\n"]},"c":"j\"sé","d":"r\\aw","e":false,"f":"plain text"}"#
            )
        );
    }

    #[test]
    fn repairs() {
        let tools = r#"[{"type":"function","function":{"name":"write","parameters":{"type":"object","properties":{"content":{"type":"string"},"mode":{"type":"string"},"n":{"type":"integer"}}}}}]"#;
        // Raw string with a comma, a brace and a colon inside, ended by the next declared key.
        let r = check(
            Some("gemma4"),
            Some(tools),
            "<|tool_call>call:write{content:a, b} c: d,mode:<|\"|>fast<|\"|>,n: 7}<tool_call|>",
        );
        assert_eq!(
            calls(&r),
            one("write", r#"{"content":"a, b} c: d","mode":"fast","n":7}"#)
        );
        // A missing closing delimiter before the object close; no close marker at all.
        let r = check(Some("gemma4"), Some(tools), "<|tool_call>call:write{mode:<|\"|>ls}");
        assert_eq!(calls(&r), one("write", r#"{"mode":"ls"}"#));
        // Schema says string: digits stay a string.
        let r = check(
            Some("gemma4"),
            Some(tools),
            "<|tool_call>call:write{content:02139}<tool_call|>",
        );
        assert_eq!(calls(&r), one("write", r#"{"content":"02139"}"#));
        // No arguments, no braces.
        let r = check(
            Some("functiongemma"),
            None,
            "<start_function_call>call:ping<end_function_call>after",
        );
        assert_eq!(calls(&r), one("ping", "{}"));
        assert_eq!(r.content.as_deref(), Some("after"));
    }

    #[test]
    fn unknown_tool_and_non_calls_are_content() {
        let tools = r#"[{"type":"function","function":{"name":"get_weather","parameters":{}}}]"#;
        let text = "Hi <|tool_call>call:nope{a:<|\"|>x<|\"|>}<tool_call|> bye";
        let r = check(Some("gemma4"), Some(tools), text);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(text));
        let r = check(
            Some("functiongemma"),
            None,
            "a <start_function_call>not a call at all<end_function_call> b",
        );
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            r.content.as_deref(),
            Some("a <start_function_call>not a call at all<end_function_call> b")
        );
    }

    #[test]
    fn thinking_and_noise_tokens() {
        let r = check(Some("gemma4"), None, "<|channel>thought\nhmm <|tool_call>call:x{}<tool_call|><channel|>A<|tool_call>call:y{}<tool_call|><tool_call|><|tool_response>B");
        assert_eq!(calls(&r), one("y", "{}"));
        assert_eq!(r.content.as_deref(), Some("AB"));
        // Dropped tokens are dropped in reasoning too.
        assert_eq!(r.reasoning.as_deref(), Some("hmm <|tool_call>call:x{}"));
    }

    #[test]
    fn auto_mode_tells_the_markers_apart() {
        let r = check(None, None, r#"<|tool_call>call:f{a:1}<tool_call|>"#);
        assert_eq!(r.format, Some("gemma4"));
        assert_eq!(calls(&r), one("f", r#"{"a":1}"#));
        let r = check(
            None,
            None,
            "<start_function_call>call:f{a:<escape>b<escape>}<end_function_call>",
        );
        assert_eq!(r.format, Some("functiongemma"));
        assert_eq!(calls(&r), one("f", r#"{"a":"b"}"#));
        let r = check(
            None,
            None,
            "<|channel>thought\nx<channel|><|tool_call>call:f{}<tool_call|>",
        );
        assert_eq!(r.format, Some("gemma4"));
        assert_eq!(r.reasoning.as_deref(), Some("x"));
        let r = check(None, None, r#"<tool_call>{"name": "f", "arguments": {}}</tool_call>"#);
        assert_eq!(r.format, Some("hermes"));
    }

    #[test]
    fn hostile_input_is_consumed() {
        for text in [
            "<|tool_call>call:f{a:<|\"|>",
            "<|tool_call>call:f{{{{[[[",
            "<|tool_call>call:f{a:'x",
            "<|tool_call>call:f{a:\"x\\",
            "<|tool_call>call:f{a:b,c:<|\"|>}}}]]<|\"",
            "<|tool_call>call:",
            "<|tool_call>call:f{:::,,,}}}<tool_call|>x",
        ] {
            check(Some("gemma4"), None, text);
        }
    }

    #[test]
    fn long_key_cap_is_chunk_independent() {
        for n in [300, 257, 1000] {
            let text = format!("<|tool_call>call:f{{{}", "k".repeat(n));
            let r = check(Some("gemma4"), None, &text);
            assert_eq!(calls(&r), one("f", "{}"), "{n}");
            assert!(
                r.diagnostics.iter().all(|d| d.start <= d.end && d.end <= text.len()),
                "{n}"
            );
        }
        // A multi-byte character across the cap.
        let text = format!("<|tool_call>call:f{{{}é: 1}}<tool_call|>", "k".repeat(256));
        check(Some("gemma4"), None, &text);
    }

    #[test]
    fn strict_mode_closes_a_cut_json_string() {
        for text in [
            r#"<|tool_call>call:f{"a": "b"#,
            r#"<|tool_call>call:f{"a": "b\q", "c": 1}<tool_call|>tail"#,
        ] {
            let strict = || Options {
                repair: false,
                ..opts(Some("gemma4"), None)
            };
            let whole = parse(text, strict()).expect("parse");
            assert_eq!(whole.tool_calls.len(), 1, "{text}");
            let v: serde_json::Value = serde_json::from_str(&whole.tool_calls[0].arguments).expect("valid JSON");
            assert!(v.is_object(), "{text}");
            assert_eq!(v["a"], "b", "{text}");
            for size in [1, 2, 3, 5] {
                assert_eq!(stream(text, strict(), size).1, whole, "chunk size {size} for {text:?}");
            }
        }
    }

    #[test]
    fn long_head_cap_is_chunk_independent() {
        // A head longer than the cap is content; an end-of-turn token after the cap is
        // dropped (prose) whatever the chunking.
        for n in [250, 256, 270, 400] {
            let text = format!("<start_function_call>{}<|eot_id|>tail {{x}}", "h".repeat(n));
            check(Some("functiongemma"), None, &text);
            let text = format!("<|tool_call>call:{}é<|eot_id|>", "h".repeat(n));
            check(Some("gemma4"), None, &text);
        }
    }
}

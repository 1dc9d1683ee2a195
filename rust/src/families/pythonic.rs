//! Python-call family: calls written as Python function calls with keyword arguments,
//! `[get_weather(city="Paris", days=3), get_time()]`.
//!
//! * pythonic: a bare list anywhere in the prose (`[` then `name(`), or wrapped in
//!   `<|python_start|>…<|python_end|>` (Llama 4).
//! * olmo3: `<function_calls>` … `</function_calls>`, one call per line, no list.
//! * lfm2: `<|tool_call_start|>[…]<|tool_call_end|>`; the region may instead hold a JSON call
//!   object or list (`{"name": …, "arguments": {…}}`).
//!
//! The call name is read up to `(`; the call starts as soon as the name is complete. Each
//! keyword argument `k=value` is written as `"k":` and its value, a Python literal (strings in
//! every quote style, numbers, `True`/`False`/`None`, JSON `true`/`false`/`null`, lists,
//! tuples, dicts, nested), is read by the shared [`Scanner`] in [`Dialect::Python`] and
//! streamed as compact JSON. Positional arguments take the schema's property names in order
//! (or `arg0`, `arg1`, …).

use crate::args::ArgsWriter;
use crate::emit::{Channel, Emitter};
use crate::families::{Family, Prose, ProseSpec, ProseStep};
use crate::formats::After;
use crate::json::{escape_into, Dialect, JsonWriter, Progress, Scanner, Token, TokenSink};
use crate::marker::starts_with_marker;

/// Data describing one Python-call format.
#[derive(Debug, Clone)]
pub struct PythonicSpec {
    /// The format's prose trigger `i` opens a region closed by `closes[i]` (if any).
    pub closes: Vec<Option<&'static str>>,
    /// A `[` followed by `name(` anywhere in the prose opens a call list (pythonic).
    pub bare_list: bool,
    /// A region may hold a JSON call object or list instead (lfm2).
    pub json_in_region: bool,
}

/// Longest call name or argument key read before the text is judged not to be a call.
const MAX_NAME: usize = 256;
/// Longest region preamble (marker and whitespace) held before the first call.
const MAX_RAW: usize = 4096;
/// Longest run of spaces after a `[` still read as the start of a call list.
const MAX_SPACES: usize = 64;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') || b >= 0x80
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn is_value_start(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'[' | b'{' | b'(' | b'-' | b'+' | b'.') || b.is_ascii_digit()
}

/// Where the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prose,
    /// A marker opened a region: expect `[`, a JSON call, a call name or the close marker.
    Open,
    /// Expect a call name (separators, `]` and the close marker also allowed).
    BeforeCall,
    /// Reading a call name.
    Name,
    /// The name was read; whitespace before `(`.
    AfterName,
    /// After `(` or `,` inside a call.
    BeforeArg,
    /// Reading an identifier: a keyword, or a bare positional value.
    Key,
    /// An identifier was read; expect `=`.
    AfterKey,
    /// The scanner reads a value.
    Value,
    /// After a value: expect `,` or `)`.
    AfterValue,
    /// After a call's `)`.
    AfterCall,
    /// After the list's `]`: the region's close marker may follow.
    AfterList,
    /// A JSON call object or list (lfm2's JSON variant).
    Json,
}

/// The open region.
#[derive(Debug, Default)]
struct Region {
    close: Option<&'static str>,
    /// A `[` opened the list.
    list: bool,
    /// A call from this region was emitted.
    committed: bool,
    /// The region is content (its first call was rejected).
    passthrough: bool,
    /// Raw region text while no call was emitted.
    raw: String,
    /// Absolute offset of the region's start.
    start: usize,
}

/// The call being read.
#[derive(Debug, Default)]
struct Call {
    /// `start_call` was emitted.
    open: bool,
    /// The name was rejected: the call's text is content.
    rejected: bool,
    /// The declared name (for positional argument names).
    name: String,
    /// Arguments written so far.
    args: usize,
    positional: usize,
    /// Keys written so far (for defaults of missing required properties).
    keys: Vec<String>,
    /// The next value belongs to a property the schema forbids: it is read and dropped.
    drop_next: bool,
}

/// A value's compact JSON, with what is open (to close it if the value breaks off).
#[derive(Debug, Default)]
struct Val {
    w: ArgsWriter,
    closers: Vec<u8>,
    in_string: bool,
    after_key: bool,
    any: bool,
    /// The value is dropped (a property `additionalProperties: false` forbids).
    drop: bool,
}

impl TokenSink for Val {
    fn token(&mut self, tok: Token<'_>, at: usize) {
        self.any = true;
        match tok {
            Token::BeginObject => self.closers.push(b'}'),
            Token::BeginArray => self.closers.push(b']'),
            Token::EndObject | Token::EndArray => {
                self.closers.pop();
            }
            Token::BeginString => self.in_string = true,
            Token::EndString => self.in_string = false,
            _ => {}
        }
        self.after_key = matches!(tok, Token::Key(_));
        self.w.token(tok, at);
    }
}

impl Val {
    /// The output so far plus whatever closes it into a complete value.
    fn close_text(&mut self, out: &mut Emitter, open: bool) -> String {
        // The writer closes an open string and containers (and writes a held value).
        self.w.close_all();
        let mut s = self.w.take();
        if !self.any {
            s.push_str("null");
        }
        if open {
            out.diags(self.w.take_diags());
        }
        let drop = self.drop;
        *self = Val::default();
        if drop {
            return String::new();
        }
        s
    }
}

/// The Python-call state machine.
pub struct Pythonic {
    spec: &'static PythonicSpec,
    prose: Prose,
    /// Prose trigger index of the bare `[` (when `bare_list`).
    bracket_trigger: usize,
    lenient: bool,
    state: State,
    region: Region,
    call: Call,
    /// Name or key being read.
    word: String,
    /// Absolute offset where `word` starts.
    word_start: usize,
    scanner: Option<Box<Scanner>>,
    val: Val,
    json: JsonCalls,
}

enum Flow {
    /// Go on at this position.
    Go(usize),
    /// Return this many consumed bytes.
    Stop(usize),
}

impl Pythonic {
    /// `in_reasoning` is ignored: these models write their reasoning opener themselves.
    pub fn new(spec: &'static PythonicSpec, prose: &ProseSpec, _in_reasoning: bool, lenient: bool) -> Self {
        let mut p: ProseSpec = prose.clone();
        p.bare_json_at_start = false;
        p.bare_json_anywhere = false;
        let bracket_trigger = p.triggers.len();
        if spec.bare_list {
            p.triggers.push("[");
        }
        Pythonic {
            spec,
            prose: Prose::new(&p, false),
            bracket_trigger,
            lenient,
            state: State::Prose,
            region: Region::default(),
            call: Call::default(),
            word: String::new(),
            word_start: 0,
            scanner: None,
            val: Val::default(),
            json: JsonCalls::default(),
        }
    }

    /// Region text that was consumed: content when the region or call is content, kept
    /// while nothing was emitted from the region, dropped otherwise (it is call syntax).
    fn take(&mut self, s: &str, out: &mut Emitter) {
        if s.is_empty() {
            return;
        }
        if self.region.passthrough || self.call.rejected {
            out.text(Channel::Content, s);
            self.prose.note_content();
        } else if !self.region.committed {
            self.region.raw.push_str(s);
        }
    }

    fn open_region(&mut self, close: Option<&'static str>, start: usize) {
        self.region = Region {
            close,
            start,
            ..Region::default()
        };
        self.call = Call::default();
    }

    /// Ends the region normally (close marker, list end, end of output).
    fn close_region(&mut self, out: &mut Emitter) {
        self.end_call(out);
        if !self.region.committed && !self.region.passthrough && !self.region.raw.trim().is_empty() {
            let at = self.region.start;
            out.diag("empty_region", at, at, "a tool-call region without calls was dropped");
        }
        self.region = Region::default();
        self.state = State::Prose;
    }

    /// Ends the region because what follows is not call syntax: text not yet emitted from it
    /// becomes content, and reading resumes as prose at the current position.
    fn abandon_region(&mut self, out: &mut Emitter) {
        self.end_call(out);
        if !self.region.committed && !self.region.passthrough {
            let raw = std::mem::take(&mut self.region.raw);
            if !raw.is_empty() {
                out.text(Channel::Content, &raw);
                self.prose.note_content();
            }
        }
        self.region = Region::default();
        self.state = State::Prose;
    }

    /// The call name is complete: start the call (or reject it).
    fn begin_call(&mut self, end: usize, out: &mut Emitter) {
        let name = std::mem::take(&mut self.word);
        self.call = Call::default();
        if self.region.passthrough {
            self.call.rejected = true;
            return;
        }
        match out.accept_name(&name, self.word_start, end) {
            Some(declared) => {
                out.start_call(&declared, None);
                out.args("{");
                self.call.open = true;
                self.call.name = declared;
                self.region.committed = true;
                self.region.raw.clear();
            }
            None => {
                if self.region.committed {
                    self.call.rejected = true;
                    out.text(Channel::Content, &name);
                    self.prose.note_content();
                } else {
                    // The region's first call is unknown: the whole region is content.
                    self.region.passthrough = true;
                    let raw = std::mem::take(&mut self.region.raw);
                    out.text(Channel::Content, &raw);
                    self.prose.note_content();
                }
            }
        }
    }

    /// Closes the open call (if any).
    fn end_call(&mut self, out: &mut Emitter) {
        if self.state == State::Value || self.scanner.is_some() {
            self.abort_value(out);
        }
        if self.call.open {
            if let Some(root) = out.args_schema(&self.call.name) {
                // No span: where the call ends depends on how the output was read.
                for (key, default, diag) in crate::args::missing_defaults(&root, &self.call.keys) {
                    self.write_key(&key, out);
                    out.args(&default.to_string());
                    out.diag("default_filled", 0, 0, diag);
                }
            }
            out.args("}");
            out.end_call();
        }
        self.call = Call::default();
    }

    /// Writes `"key":` for the next argument.
    fn write_key(&mut self, key: &str, out: &mut Emitter) {
        if self.call.open
            && out
                .args_schema(&self.call.name)
                .is_some_and(|root| crate::args::forbids(&root, key))
        {
            self.call.drop_next = true;
            self.call.keys.push(key.to_string());
            return;
        }
        if self.call.open {
            let mut s = String::with_capacity(key.len() + 4);
            if self.call.args > 0 {
                s.push(',');
            }
            s.push('"');
            escape_into(&mut s, key);
            s.push_str("\":");
            out.args(&s);
        }
        self.call.args += 1;
        self.call.keys.push(key.to_string());
    }

    /// The key of the next positional argument: the schema's property names in order.
    fn positional_key(&mut self, at: usize, out: &mut Emitter) -> String {
        let i = self.call.positional;
        self.call.positional += 1;
        let from_schema = out
            .tool(&self.call.name)
            .and_then(|t| t.parameters.get("properties"))
            .and_then(|p| p.as_object())
            .and_then(|m| m.keys().nth(i).cloned());
        if self.call.open {
            out.diag(
                "positional_argument",
                at,
                at,
                format!(
                    "a positional argument was given the key {:?}",
                    from_schema.as_deref().unwrap_or("arg")
                ),
            );
        }
        from_schema.unwrap_or_else(|| format!("arg{i}"))
    }

    fn start_value(&mut self, at: usize, out: &mut Emitter) {
        self.scanner = Some(Box::new(Scanner::new(Dialect::Python, self.lenient, at)));
        self.val = Val::default();
        if self.call.open {
            if let Some(key) = self.call.keys.last() {
                self.val.w = ArgsWriter::for_property(out.args_schema(&self.call.name), key);
                if std::mem::take(&mut self.call.drop_next) {
                    self.val.drop = true;
                    out.diag(
                        "dropped_property",
                        at,
                        at,
                        format!("/{key}: not allowed (additionalProperties is false); dropped"),
                    );
                }
            }
        }
        self.state = State::Value;
    }

    /// Sends the value's new output to the call.
    fn flush_value(&mut self, out: &mut Emitter) {
        let s = self.val.w.take();
        if self.call.open && !self.val.drop {
            out.args(&s);
            out.diags(self.val.w.take_diags());
        }
    }

    /// Ends the value being read, closing what is open (truncated or broken value).
    fn abort_value(&mut self, out: &mut Emitter) {
        if let Some(mut sc) = self.scanner.take() {
            let ok = sc.finish(&mut self.val);
            if self.call.open {
                out.diags(sc.repairs.drain(..));
            }
            if !ok {
                let at = sc.offset();
                out.diag("truncated", at, at, "an argument value broke off; closed it");
            }
            let s = self.val.close_text(out, self.call.open);
            if self.call.open {
                out.args(&s);
            }
        }
        self.val = Val::default();
    }

    fn step(&mut self, input: &str, pos: usize, eof: bool, out: &mut Emitter) -> Flow {
        let bytes = input.as_bytes();
        match self.state {
            State::Prose => match self.prose.scan(input, pos, eof, out) {
                ProseStep::Wait { consumed } => Flow::Stop(consumed),
                ProseStep::BareJson { at } => {
                    // Not enabled for this family; the byte is text.
                    out.text(Channel::Content, &input[at..at + 1]);
                    self.prose.note_content();
                    Flow::Go(at + 1)
                }
                ProseStep::Trigger { at, len, index } => {
                    if self.spec.bare_list && index == self.bracket_trigger {
                        // A list opener followed by a long run of spaces is no call (bounds the wait).
                        let spaces = input.as_bytes()[at + 1..]
                            .iter()
                            .take(MAX_SPACES + 1)
                            .take_while(|b| b.is_ascii_whitespace())
                            .count();
                        let verdict = if spaces > MAX_SPACES {
                            Some(false)
                        } else {
                            After::PythonList.accepts(&input[at..], eof)
                        };
                        match verdict {
                            None => Flow::Stop(at),
                            Some(true) => {
                                self.open_region(None, out.base + at);
                                self.region.list = true;
                                self.take("[", out);
                                self.state = State::BeforeCall;
                                Flow::Go(at + 1)
                            }
                            Some(false) => {
                                out.text(Channel::Content, "[");
                                self.prose.note_content();
                                Flow::Go(at + 1)
                            }
                        }
                    } else {
                        let close = self.spec.closes.get(index).copied().flatten();
                        self.open_region(close, out.base + at);
                        self.take(&input[at..at + len], out);
                        self.state = State::Open;
                        Flow::Go(at + len)
                    }
                }
            },
            State::Open | State::BeforeCall => {
                let mut i = pos;
                while i < bytes.len()
                    && (bytes[i].is_ascii_whitespace()
                        || (self.state == State::BeforeCall && matches!(bytes[i], b',' | b';')))
                {
                    i += 1;
                }
                self.take(&input[pos..i], out);
                if !self.region.committed && self.region.raw.len() > MAX_RAW {
                    self.abandon_region(out);
                    return Flow::Go(i);
                }
                if i >= bytes.len() {
                    if eof {
                        self.close_region(out);
                        return Flow::Go(i);
                    }
                    return Flow::Stop(i);
                }
                if let Some(close) = self.region.close {
                    match starts_with_marker(input, i, close, eof) {
                        None => return Flow::Stop(i),
                        Some(true) => {
                            self.take(close, out);
                            self.close_region(out);
                            return Flow::Go(i + close.len());
                        }
                        Some(false) => {}
                    }
                }
                let b = bytes[i];
                if self.state == State::Open && self.spec.json_in_region && (b == b'[' || b == b'{') {
                    // `[` then `{`: the JSON variant. Look past whitespace.
                    let mut j = i + 1;
                    if b == b'[' {
                        while j < bytes.len() && bytes[j].is_ascii_whitespace() && j - i <= MAX_SPACES {
                            j += 1;
                        }
                        if j >= bytes.len() && !eof {
                            return Flow::Stop(i);
                        }
                    }
                    if b == b'{' || bytes.get(j) == Some(&b'{') {
                        // The marker is markup; elements that are not calls become content.
                        self.region.committed = true;
                        self.region.raw.clear();
                        self.json = JsonCalls::default();
                        self.scanner = Some(Box::new(Scanner::new(Dialect::Json, self.lenient, out.base + i)));
                        self.state = State::Json;
                        return Flow::Go(i);
                    }
                }
                if b == b'[' && self.state == State::Open {
                    self.region.list = true;
                    self.take("[", out);
                    self.state = State::BeforeCall;
                    return Flow::Go(i + 1);
                }
                if b == b']' && self.region.list {
                    self.take("]", out);
                    self.state = State::AfterList;
                    return Flow::Go(i + 1);
                }
                if is_ident_start(b) {
                    self.word.clear();
                    self.word_start = out.base + i;
                    self.state = State::Name;
                    return Flow::Go(i);
                }
                self.abandon_region(out);
                Flow::Go(i)
            }
            State::Name => {
                let mut i = pos;
                while i < bytes.len() && is_name_byte(bytes[i]) {
                    i += 1;
                }
                self.word.push_str(&input[pos..i]);
                self.take(&input[pos..i], out);
                if self.word.len() > MAX_NAME {
                    self.word.clear();
                    self.abandon_region(out);
                    return Flow::Go(i);
                }
                if i >= bytes.len() {
                    if eof {
                        self.word.clear();
                        self.abandon_region(out);
                        return Flow::Go(i);
                    }
                    return Flow::Stop(i);
                }
                self.state = State::AfterName;
                Flow::Go(i)
            }
            State::AfterName => {
                let mut i = pos;
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                    i += 1;
                }
                self.take(&input[pos..i], out);
                if i >= bytes.len() {
                    if eof {
                        self.word.clear();
                        self.abandon_region(out);
                        return Flow::Go(i);
                    }
                    return Flow::Stop(i);
                }
                if bytes[i] != b'(' {
                    // `name` without a call: not call syntax.
                    if self.region.committed {
                        let w = std::mem::take(&mut self.word);
                        out.text(Channel::Content, &w);
                        self.prose.note_content();
                    }
                    self.word.clear();
                    self.abandon_region(out);
                    return Flow::Go(i);
                }
                self.begin_call(out.base + i, out);
                self.take("(", out);
                self.state = State::BeforeArg;
                Flow::Go(i + 1)
            }
            State::BeforeArg => {
                let mut i = pos;
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                self.take(&input[pos..i], out);
                if i >= bytes.len() {
                    if eof {
                        out.diag("truncated", out.base + i, out.base + i, "a call broke off; closed it");
                        self.end_call(out);
                        self.state = State::AfterCall;
                        return Flow::Go(i);
                    }
                    return Flow::Stop(i);
                }
                let b = bytes[i];
                if b == b')' {
                    self.take(")", out);
                    self.end_call(out);
                    self.state = State::AfterCall;
                    return Flow::Go(i + 1);
                }
                if is_ident_start(b) {
                    self.word.clear();
                    self.word_start = out.base + i;
                    self.state = State::Key;
                    return Flow::Go(i);
                }
                if is_value_start(b) {
                    let key = self.positional_key(out.base + i, out);
                    self.write_key(&key, out);
                    self.start_value(out.base + i, out);
                    return Flow::Go(i);
                }
                out.diag(
                    "unclosed_call",
                    out.base + i,
                    out.base + i,
                    "a call's ')' is missing; closed it",
                );
                self.end_call(out);
                self.state = State::AfterCall;
                Flow::Go(i)
            }
            State::Key => {
                let mut i = pos;
                while i < bytes.len() && is_key_byte(bytes[i]) {
                    i += 1;
                }
                self.word.push_str(&input[pos..i]);
                self.take(&input[pos..i], out);
                if self.word.len() > MAX_NAME {
                    // Not a keyword: read it as a positional value.
                    return self.positional_word(i, out);
                }
                if i >= bytes.len() && !eof {
                    return Flow::Stop(i);
                }
                self.state = State::AfterKey;
                Flow::Go(i)
            }
            State::AfterKey => {
                // Spaces after the identifier are kept with it (a positional value reads them).
                let mut i = pos;
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') && self.word.len() <= 2 * MAX_NAME {
                    i += 1;
                }
                self.word.push_str(&input[pos..i]);
                self.take(&input[pos..i], out);
                if i >= bytes.len() && !eof {
                    return Flow::Stop(i);
                }
                if i < bytes.len() && (bytes[i] == b'=' || bytes[i] == b':') && bytes.get(i + 1) != Some(&b'=') {
                    if i + 1 >= bytes.len() && !eof {
                        // `==` and `:=` are not keywords: wait for the next byte.
                        return Flow::Stop(i);
                    }
                    self.take(&input[i..i + 1], out);
                    let word = std::mem::take(&mut self.word);
                    self.write_key(word.trim_end(), out);
                    self.start_value(out.base + i + 1, out);
                    return Flow::Go(i + 1);
                }
                // A bare positional value (`True`, a name).
                self.positional_word(i, out)
            }
            State::Value => {
                let Some(mut sc) = self.scanner.take() else {
                    self.state = State::AfterValue;
                    return Flow::Go(pos);
                };
                let progress = sc.feed(&input[pos..], &mut self.val);
                if self.call.open {
                    out.diags(sc.repairs.drain(..));
                } else {
                    sc.repairs.clear();
                }
                self.flush_value(out);
                match progress {
                    Progress::Done { consumed } => {
                        self.take(&input[pos..pos + consumed], out);
                        self.val = Val::default();
                        self.state = State::AfterValue;
                        Flow::Go(pos + consumed)
                    }
                    Progress::Partial { consumed } => {
                        self.take(&input[pos..pos + consumed], out);
                        if !eof {
                            self.scanner = Some(sc);
                            return Flow::Stop(pos + consumed);
                        }
                        // End of output inside the value: what the scanner held back is dropped.
                        self.take(&input[pos + consumed..], out);
                        self.scanner = Some(sc);
                        self.abort_value(out);
                        self.state = State::AfterValue;
                        Flow::Go(input.len())
                    }
                    Progress::Error { consumed } => {
                        self.take(&input[pos..pos + consumed], out);
                        let at = out.base + pos + consumed;
                        let s = self.val.close_text(out, self.call.open);
                        if self.call.open {
                            out.args(&s);
                            out.diag(
                                "invalid_value",
                                at,
                                at,
                                "an argument value could not be read; closed it",
                            );
                        }
                        self.state = State::AfterValue;
                        Flow::Go(pos + consumed)
                    }
                }
            }
            State::AfterValue => {
                let mut i = pos;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                self.take(&input[pos..i], out);
                if i >= bytes.len() {
                    if eof {
                        out.diag("truncated", out.base + i, out.base + i, "a call broke off; closed it");
                        self.end_call(out);
                        self.state = State::AfterCall;
                        return Flow::Go(i);
                    }
                    return Flow::Stop(i);
                }
                match bytes[i] {
                    b',' => {
                        self.take(",", out);
                        self.state = State::BeforeArg;
                        Flow::Go(i + 1)
                    }
                    b')' => {
                        self.take(")", out);
                        self.end_call(out);
                        self.state = State::AfterCall;
                        Flow::Go(i + 1)
                    }
                    _ => {
                        out.diag(
                            "missing_comma",
                            out.base + i,
                            out.base + i,
                            "inserted a missing ',' between arguments",
                        );
                        self.state = State::BeforeArg;
                        Flow::Go(i)
                    }
                }
            }
            State::AfterCall => {
                let mut i = pos;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                self.take(&input[pos..i], out);
                if i >= bytes.len() {
                    if eof {
                        self.close_region(out);
                        return Flow::Go(i);
                    }
                    return Flow::Stop(i);
                }
                if let Some(close) = self.region.close {
                    match starts_with_marker(input, i, close, eof) {
                        None => return Flow::Stop(i),
                        Some(true) => {
                            self.take(close, out);
                            self.close_region(out);
                            return Flow::Go(i + close.len());
                        }
                        Some(false) => {}
                    }
                }
                let b = bytes[i];
                if b == b',' || b == b';' {
                    self.take(&input[i..i + 1], out);
                    self.state = State::BeforeCall;
                    return Flow::Go(i + 1);
                }
                if b == b']' && self.region.list {
                    self.take("]", out);
                    self.state = State::AfterList;
                    return Flow::Go(i + 1);
                }
                if is_ident_start(b) && (self.region.list || self.region.close.is_some()) {
                    // Calls separated by newlines (olmo3), or a missing comma.
                    self.state = State::BeforeCall;
                    return Flow::Go(i);
                }
                if self.region.list {
                    out.diag(
                        "unclosed_list",
                        out.base + i,
                        out.base + i,
                        "a call list's ']' is missing",
                    );
                }
                self.close_region(out);
                Flow::Go(i)
            }
            State::AfterList => {
                let Some(close) = self.region.close else {
                    self.close_region(out);
                    return Flow::Go(pos);
                };
                let mut i = pos;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                // Spaces between the list and its close marker are markup.
                self.take(&input[pos..i], out);
                if i >= bytes.len() && !eof {
                    return Flow::Stop(i);
                }
                match starts_with_marker(input, i, close, eof) {
                    None => Flow::Stop(i),
                    Some(true) => {
                        self.take(close, out);
                        self.close_region(out);
                        Flow::Go(i + close.len())
                    }
                    Some(false) => {
                        // No close marker: what follows is prose again.
                        self.close_region(out);
                        Flow::Go(i)
                    }
                }
            }
            State::Json => {
                let Some(mut sc) = self.scanner.take() else {
                    self.state = State::AfterList;
                    return Flow::Go(pos);
                };
                let progress = {
                    let mut sink = JsonSink {
                        st: &mut self.json,
                        out,
                    };
                    sc.feed(&input[pos..], &mut sink)
                };
                out.diags(sc.repairs.drain(..));
                match progress {
                    Progress::Done { consumed } => {
                        self.json.abandon(out);
                        self.state = State::AfterList;
                        Flow::Go(pos + consumed)
                    }
                    Progress::Partial { consumed } => {
                        if !eof {
                            self.scanner = Some(sc);
                            return Flow::Stop(pos + consumed);
                        }
                        {
                            let mut sink = JsonSink {
                                st: &mut self.json,
                                out,
                            };
                            sc.finish(&mut sink);
                        }
                        out.diags(sc.repairs.drain(..));
                        self.json.abandon(out);
                        self.state = State::AfterList;
                        Flow::Go(input.len())
                    }
                    Progress::Error { consumed } => {
                        self.json.abandon(out);
                        self.close_region(out);
                        Flow::Go(pos + consumed)
                    }
                }
            }
        }
    }

    /// The identifier in `word` (and the text from `from`) is a positional value.
    fn positional_word(&mut self, from: usize, out: &mut Emitter) -> Flow {
        let word = std::mem::take(&mut self.word);
        let key = self.positional_key(self.word_start, out);
        self.write_key(&key, out);
        self.start_value(self.word_start, out);
        if let Some(sc) = self.scanner.as_mut() {
            // An identifier never completes a value by itself: the scanner keeps it all.
            let _ = sc.feed(&word, &mut self.val);
        }
        self.flush_value(out);
        Flow::Go(from)
    }
}

impl Family for Pythonic {
    fn feed(&mut self, input: &str, eof: bool, out: &mut Emitter) -> usize {
        let mut pos = 0;
        loop {
            match self.step(input, pos, eof, out) {
                Flow::Go(p) => pos = p,
                Flow::Stop(n) => return n,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The JSON variant: `{"name": …, "arguments": {…}}` or a list of them.

const NAME_KEYS: &[&str] = &["name", "function", "tool_name"];
const ARGS_KEYS: &[&str] = &["arguments", "parameters", "args"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Role {
    #[default]
    Other,
    Name,
    Args,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum Args {
    #[default]
    NotSeen,
    /// The arguments object is being written; its tokens arrive at `depth` and deeper.
    Object {
        depth: usize,
    },
    /// Arguments given as a JSON-encoded string.
    Encoded,
    Done,
    Invalid,
}

#[derive(Debug, Default)]
struct Elem {
    role: Role,
    name: Option<String>,
    /// Collecting the name string (or the encoded arguments).
    collecting: Option<Role>,
    text: String,
    args: Args,
    /// Arguments (held until the call starts).
    writer: ArgsWriter,
    closers: Vec<u8>,
    /// The element's compact JSON until the call starts (content if it is no call).
    shadow: JsonWriter,
    started: bool,
    rejected: bool,
    start: usize,
}

#[derive(Debug, Default)]
struct JsonCalls {
    depth: usize,
    elem_depth: Option<usize>,
    el: Option<Elem>,
    offset: usize,
}

impl JsonCalls {
    /// The value ended (or broke off): closes a started call, keeps an unfinished element
    /// as content.
    fn abandon(&mut self, out: &mut Emitter) {
        if let Some(mut el) = self.el.take() {
            if el.started {
                el.writer.close_all();
                let tail = el.writer.take();
                out.args(&tail);
                out.diags(el.writer.take_diags());
                out.end_call();
            } else {
                let text = el.shadow.take();
                out.text(Channel::Content, &text);
            }
        }
        *self = JsonCalls::default();
    }
}

struct JsonSink<'a> {
    st: &'a mut JsonCalls,
    out: &'a mut Emitter,
}

impl JsonSink<'_> {
    fn try_start(&mut self) {
        let at = self.st.offset;
        let Some(el) = self.st.el.as_mut() else { return };
        if el.started || el.rejected {
            return;
        }
        let Some(name) = el.name.clone() else { return };
        if !matches!(el.args, Args::Object { .. } | Args::Done) {
            return;
        }
        match self.out.accept_name(&name, el.start, at) {
            Some(declared) if !name.trim().is_empty() => {
                self.out.start_call(&declared, None);
                el.started = true;
                el.writer.set_schema(self.out.args_schema(&declared));
                let held = el.writer.take();
                self.out.args(&held);
                self.out.diags(el.writer.take_diags());
            }
            _ => el.rejected = true,
        }
    }

    fn finish_element(&mut self) {
        let at = self.st.offset;
        if let Some(el) = self.st.el.as_mut() {
            if !el.started && !el.rejected && el.name.is_some() {
                if el.args == Args::NotSeen {
                    el.writer.token(Token::BeginObject, at);
                    el.writer.token(Token::EndObject, at);
                    el.args = Args::Done;
                }
                self.try_start();
            }
        }
        let Some(mut el) = self.st.el.take() else { return };
        if el.started {
            self.out.end_call();
        } else {
            self.out.diag(
                "not_a_call",
                el.start,
                at,
                "a JSON element that is not a usable call was kept as content",
            );
            let text = el.shadow.take();
            self.out.text(Channel::Content, &text);
        }
    }
}

impl TokenSink for JsonSink<'_> {
    fn token(&mut self, tok: Token<'_>, at: usize) {
        self.st.offset = at;
        let depth_before = self.st.depth;
        match tok {
            Token::BeginObject | Token::BeginArray => self.st.depth += 1,
            Token::EndObject | Token::EndArray => self.st.depth = self.st.depth.saturating_sub(1),
            _ => {}
        }
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
        let Some(el) = self.st.el.as_mut() else {
            if depth_before == elem_depth && tok == Token::BeginObject {
                let mut el = Elem {
                    writer: ArgsWriter::deferred(),
                    start: at,
                    ..Elem::default()
                };
                el.shadow.token(Token::BeginObject, at);
                self.st.el = Some(el);
            }
            return;
        };
        if !el.started {
            el.shadow.token(tok.clone(), at);
        }
        if let Args::Object { depth } = el.args {
            if depth_before >= depth {
                match tok {
                    Token::BeginObject => el.closers.push(b'}'),
                    Token::BeginArray => el.closers.push(b']'),
                    Token::EndObject | Token::EndArray => {
                        el.closers.pop();
                    }
                    _ => {}
                }
                if depth_before == depth && matches!(tok, Token::EndObject | Token::EndArray) {
                    el.args = Args::Done;
                }
                el.writer.token(tok, at);
                if el.started {
                    let s = el.writer.take();
                    self.out.args(&s);
                    self.out.diags(el.writer.take_diags());
                }
                return;
            }
        }
        if let Some(role) = el.collecting {
            match tok {
                Token::StringPart(s) => el.text.push_str(s),
                Token::EndString => {
                    el.collecting = None;
                    let text = std::mem::take(&mut el.text);
                    if role == Role::Name {
                        el.name = Some(text);
                    } else {
                        match crate::json::rewrite(&text, Dialect::Json, true) {
                            Some((json, _, _)) if json.starts_with('{') => {
                                let mut sc = Scanner::new(Dialect::Json, false, at);
                                let _ = sc.feed(&json, &mut el.writer);
                                el.args = Args::Done;
                            }
                            _ => el.args = Args::Invalid,
                        }
                    }
                    self.try_start();
                }
                _ => {}
            }
            return;
        }
        if depth_before != elem_depth + 1 {
            return;
        }
        match tok {
            Token::Key(k) => {
                el.role = if NAME_KEYS.contains(&k) && el.name.is_none() {
                    Role::Name
                } else if ARGS_KEYS.contains(&k) && el.args == Args::NotSeen {
                    Role::Args
                } else {
                    Role::Other
                };
            }
            Token::EndObject | Token::EndArray => self.finish_element(),
            _ => {
                let role = std::mem::take(&mut el.role);
                match (role, &tok) {
                    (Role::Name, Token::BeginString) => el.collecting = Some(Role::Name),
                    (Role::Args, Token::BeginObject) => {
                        el.args = Args::Object {
                            depth: depth_before + 1,
                        };
                        el.closers.push(b'}');
                        el.writer.token(Token::BeginObject, at);
                        self.try_start();
                    }
                    (Role::Args, Token::BeginString) => {
                        el.args = Args::Encoded;
                        el.collecting = Some(Role::Args);
                    }
                    (Role::Args, Token::Null) => {
                        el.writer.token(Token::BeginObject, at);
                        el.writer.token(Token::EndObject, at);
                        el.args = Args::Done;
                        self.try_start();
                    }
                    (Role::Args, _) => el.args = Args::Invalid,
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::families::test_support::{self, calls, one};

    /// Parses whole and in many chunkings; all must agree. Returns the whole result.
    fn check(format: &str, tools: Option<&str>, text: &str) -> ParseResult {
        test_support::check(Some(format), tools, text)
    }

    use crate::parser::{parse, Options};

    use crate::ParseResult;

    #[test]
    fn formats_md_examples() {
        let r = check("pythonic", None, r#"[get_weather(city="Paris", days=3)]"#);
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"Paris","days":3}"#));
        assert_eq!(r.content, None);
        let r = check(
            "olmo3",
            None,
            "<function_calls>get_weather(location=\"SF\")\nget_time(timezone=\"PST\")</function_calls>",
        );
        assert_eq!(
            calls(&r),
            vec![
                ("get_weather".into(), r#"{"location":"SF"}"#.into()),
                ("get_time".into(), r#"{"timezone":"PST"}"#.into())
            ]
        );
        let r = check(
            "lfm2",
            None,
            r#"<|tool_call_start|>[get_weather(location="Paris")]<|tool_call_end|>"#,
        );
        assert_eq!(calls(&r), one("get_weather", r#"{"location":"Paris"}"#));
        assert_eq!(r.content, None);
    }

    #[test]
    fn python_literals() {
        let r = check(
            "pythonic",
            None,
            r#"[f(a='x', b="y\n", c='''multi "line" ''', d=r'C:\dir\'s', e=(1, 2.50, -3), f={'k': [True, None]}, g=1e3, h=b"\x41\u00e9")]"#,
        );
        assert_eq!(
            calls(&r),
            one(
                "f",
                r#"{"a":"x","b":"y\n","c":"multi \"line\" ","d":"C:\\dir\\'s","e":[1,2.50,-3],"f":{"k":[true,null]},"g":1e3,"h":"Aé"}"#
            )
        );
        let r = check(
            "olmo3",
            None,
            "<function_calls>f(t=true, n=null, s=\"\"\"a\nb\"\"\")</function_calls>",
        );
        assert_eq!(calls(&r), one("f", r#"{"t":true,"n":null,"s":"a\nb"}"#));
    }

    #[test]
    fn prose_around_calls() {
        let text = "Sure.\n\n[a(x=1),\n b()]\n\nDone [not a call] here.";
        let r = check("pythonic", None, text);
        assert_eq!(
            calls(&r),
            vec![("a".into(), r#"{"x":1}"#.into()), ("b".into(), "{}".into())]
        );
        assert_eq!(r.content.as_deref(), Some("Sure.\n\n\n\nDone [not a call] here."));
        let r = check("pythonic", None, "x <|python_start|>[f(q='a')]<|python_end|> y");
        assert_eq!(calls(&r), one("f", r#"{"q":"a"}"#));
        assert_eq!(r.content.as_deref(), Some("x  y"));
    }

    #[test]
    fn positional_arguments_use_schema_names() {
        let tools = r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}}]"#;
        let r = check("pythonic", Some(tools), r#"[get_weather("Paris", days=2)]"#);
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"Paris","days":2}"#));
        let r = check("pythonic", None, "[f(True, 'x')]");
        assert_eq!(calls(&r), one("f", r#"{"arg0":true,"arg1":"x"}"#));
    }

    #[test]
    fn unknown_tool_stays_content() {
        let tools = r#"[{"type":"function","function":{"name":"get_weather","parameters":{}}}]"#;
        let r = check(
            "lfm2",
            Some(tools),
            "Hi <|tool_call_start|>[nope(x=1)]<|tool_call_end|>",
        );
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            r.content.as_deref(),
            Some("Hi <|tool_call_start|>[nope(x=1)]<|tool_call_end|>")
        );
        let r = check(
            "lfm2",
            Some(tools),
            "<|tool_call_start|>[get_weather(city='a'), nope(x=1)]<|tool_call_end|>",
        );
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"a"}"#));
        assert_eq!(r.content.as_deref(), Some("nope(x=1)"));
    }

    #[test]
    fn lfm2_json_variant() {
        let r = check(
            "lfm2",
            None,
            r#"<|tool_call_start|>[{"name": "a", "arguments": {"x": [1, {"y": 2}]}}, {"arguments": {}, "name": "b"}]<|tool_call_end|>ok"#,
        );
        assert_eq!(
            calls(&r),
            vec![("a".into(), r#"{"x":[1,{"y":2}]}"#.into()), ("b".into(), "{}".into())]
        );
        assert_eq!(r.content.as_deref(), Some("ok"));
        let r = check(
            "lfm2",
            None,
            r#"<|tool_call_start|>{"name": "a", "arguments": "{\"x\": 1}"}<|tool_call_end|>"#,
        );
        assert_eq!(calls(&r), one("a", r#"{"x":1}"#));
    }

    #[test]
    fn truncation_and_junk_are_mended() {
        let r = check("pythonic", None, "[f(a=[1, 2");
        assert_eq!(calls(&r), one("f", r#"{"a":[1,2]}"#));
        let r = check("pythonic", None, "[f(a='x' b=2)]");
        assert_eq!(calls(&r), one("f", r#"{"a":"x","b":2}"#));
        let r = check("olmo3", None, "<function_calls>f(a=)\n</function_calls>after");
        assert_eq!(calls(&r), one("f", r#"{"a":null}"#));
        assert_eq!(r.content.as_deref(), Some("after"));
        let r = check("olmo3", None, "<function_calls>  \n </function_calls>");
        assert!(r.tool_calls.is_empty() && r.content.is_none());
        let r = check("olmo3", None, "<function_calls>not a call</function_calls>");
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            r.content.as_deref(),
            Some("<function_calls>not a call</function_calls>")
        );
        // Hostile input: everything is consumed, nothing panics, chunkings agree.
        for text in [
            "[f(((((",
            "[f(a=\"\"\"",
            "[f(a=r'\\",
            "<|tool_call_start|>[{",
            "[f(x=1]<|tool_call_end|>",
            "[a(b=c(d=e))]",
        ] {
            check("pythonic", None, text);
            check("lfm2", None, text);
        }
    }

    #[test]
    fn reasoning_is_not_a_call() {
        let r = check(
            "lfm2",
            None,
            "<think>maybe <|tool_call_start|>[x()]<|tool_call_end|></think>A<|tool_call_start|>[y()]<|tool_call_end|>",
        );
        assert_eq!(calls(&r), one("y", "{}"));
        assert_eq!(r.content.as_deref(), Some("A"));
        assert!(r.reasoning.is_some_and(|s| s.contains("[x()]")));
    }

    #[test]
    fn auto_detects_a_leading_python_list() {
        let o = Options {
            id_seed: Some(1),
            ..Options::default()
        };
        let r = parse(r#"[get_weather(city="x")]"#, o).expect("parse");
        assert_eq!(r.format, Some("pythonic"));
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"x"}"#));
        let o = Options {
            id_seed: Some(1),
            ..Options::default()
        };
        let r = parse(r#"[{"name": "a", "arguments": {}}]"#, o).expect("parse");
        assert_eq!(r.format, Some("generic_json"));
        for (text, format) in [
            ("<function_calls>f(a=1)</function_calls>", "olmo3"),
            ("<|tool_call_start|>[f(a=1)]<|tool_call_end|>", "lfm2"),
            ("<|python_start|>[f(a=1)]<|python_end|>", "pythonic"),
        ] {
            let o = Options {
                id_seed: Some(1),
                ..Options::default()
            };
            let r = parse(text, o).expect("parse");
            assert_eq!(r.format, Some(format), "{text}");
            assert_eq!(calls(&r), one("f", r#"{"a":1}"#), "{text}");
        }
    }
}

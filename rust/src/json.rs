//! Incremental, resumable JSON scanner with lenient repair, and a compact writer.
//!
//! The scanner reads any chunking of a JSON(-ish) value and emits a stream of [`Token`]s.
//! It never re-reads input: every byte is consumed once, and state (a partial string,
//! a partial number, the container stack) lives in the scanner. Only two constructs need
//! lookahead and may leave a few bytes unconsumed until more input arrives: a `/` that
//! may start a comment, and (lenient mode) a `"` that may be an unescaped inner quote.
//!
//! Tokens carry no commas or colons, so a [`JsonWriter`] re-serialises them as compact,
//! valid JSON whatever separators the model wrote (trailing or missing commas vanish).

use crate::event::Repair;

/// Maximum nesting depth accepted before the scanner stops with an error.
pub const MAX_DEPTH: usize = 256;

/// Inside a value string, input shorter than this is decoded as usual rather than offered
/// to the sink in escaped form (asking costs more than it saves on a few bytes).
const ESCAPED_MIN: usize = 16;

/// One lexical unit of a JSON value, as decoded text.
#[derive(Debug, Clone, PartialEq)]
pub enum Token<'a> {
    BeginObject,
    EndObject,
    BeginArray,
    EndArray,
    /// A complete, decoded object key.
    Key(&'a str),
    BeginString,
    /// Decoded string text (no quotes, no escapes).
    StringPart(&'a str),
    EndString,
    /// A number, already normalised to valid JSON number syntax.
    Number(&'a str),
    Bool(bool),
    Null,
}

/// Receives tokens from a [`Scanner`].
pub trait TokenSink {
    /// `at` is the absolute byte offset where the token's text starts.
    fn token(&mut self, tok: Token<'_>, at: usize);

    /// A sink may ask the scanner to stop early (e.g. the value turned out not to be a
    /// tool call); the scanner then returns `Progress::Done` at the next byte boundary.
    fn wants_stop(&self) -> bool {
        false
    }

    /// Whether the sink, at this point, takes the text of the open value string in its
    /// escaped form through [`TokenSink::escaped`] (the scanner then skips decoding it).
    fn takes_escaped(&self) -> bool {
        false
    }

    /// Text of the open value string as written in the input, which this module's writer
    /// would write back unchanged ([`is_verbatim_string_text`] holds for it). Only sent while
    /// [`TokenSink::takes_escaped`] holds; by default it is decoded and sent as a
    /// [`Token::StringPart`].
    fn escaped(&mut self, text: &str, at: usize) {
        let decoded = unescape_simple(text);
        self.token(Token::StringPart(&decoded), at);
    }
}

/// Which surface syntax the scanner accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 8259 JSON; with `lenient` the usual model mistakes are mended.
    Json,
    /// Python literals (`'s'`, `True`, `None`, tuples); JSON literals also accepted.
    Python,
}

/// Result of feeding input to a [`Scanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// All `consumed` bytes were used and the value is not complete yet. When
    /// `consumed` is less than the input length, the rest must be fed again with more input.
    Partial { consumed: usize },
    /// The top-level value ended (or the sink asked to stop); `consumed` bytes were read.
    Done { consumed: usize },
    /// Input that cannot be read as a value at all (strict mode, or hopeless input).
    Error { consumed: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Expecting a value.
    Value,
    /// Inside an object, expecting a key or `}`.
    Key,
    /// After a key, expecting `:`.
    Colon,
    /// After a value, expecting `,` or a closer.
    After,
    /// Inside a quoted string.
    Str { quote: u8, key: bool, python_raw: bool },
    /// After a backslash inside a string.
    Escape { quote: u8, key: bool },
    /// Inside `\uXXXX`.
    Unicode { quote: u8, key: bool, digits: u8, acc: u32 },
    /// Accumulating an unquoted word (number, literal, or bare key/string).
    Bare { key: bool },
    /// Inside a `//` or `#` comment.
    LineComment,
    /// Inside a `/* */` comment; `star` is true after a `*`.
    BlockComment { star: bool },
    /// The top-level value is complete.
    Done,
    /// Unrecoverable error.
    Failed,
}

/// Resumable scanner for one JSON value. See the module docs. It is a few hundred bytes:
/// families keep it boxed, since they take it out and put it back on every feed.
#[derive(Debug)]
pub struct Scanner {
    dialect: Dialect,
    lenient: bool,
    mode: Mode,
    /// Mode to return to after a comment.
    resume: Mode,
    stack: Vec<Frame>,
    /// Bytes consumed so far (relative to `base`).
    pos: usize,
    base: usize,
    /// Key text, bare word text, or escape output being accumulated.
    word: String,
    /// Pending UTF-16 high surrogate from a `\uD8xx` escape.
    high_surrogate: Option<u32>,
    /// Repairs made so far.
    pub repairs: Vec<Repair>,
    /// Start offset of the current bare word / string (absolute).
    tok_start: usize,
    started: bool,
    /// The last structural byte was a comma (strict mode rejects trailing commas).
    last_was_comma: bool,
    /// Python: the open string is triple-quoted (`'''`/`"""`).
    triple: bool,
    /// Python: the next string opened is raw (an `r` prefix was read).
    raw_prefix: bool,
    /// Hex digits the open `\u`/`\x`/`\U` escape takes (4, 2 or 8).
    hex_need: u8,
    /// A raw control character was already reported for the open string.
    ctrl_reported: bool,
    /// Decoded text of the open value string not yet sent as a token (one `StringPart` per
    /// feed instead of one per escape).
    sbuf: String,
    sbuf_at: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_key_delim(b: u8) -> bool {
    is_ws(b) || matches!(b, b',' | b':' | b'}' | b'"' | b'\'' | b'=')
}

fn is_bare_delim(b: u8) -> bool {
    is_ws(b) || matches!(b, b',' | b':' | b'}' | b']' | b'{' | b'[' | b'"' | b'\'' | b')' | b'(')
}

impl Scanner {
    /// A scanner for one value. `base` is the absolute offset of the first byte it will see,
    /// used for diagnostic spans.
    pub fn new(dialect: Dialect, lenient: bool, base: usize) -> Self {
        Scanner {
            dialect,
            lenient,
            mode: Mode::Value,
            resume: Mode::Value,
            stack: Vec::new(),
            pos: 0,
            base,
            word: String::new(),
            high_surrogate: None,
            repairs: Vec::new(),
            tok_start: 0,
            started: false,
            last_was_comma: false,
            triple: false,
            raw_prefix: false,
            hex_need: 4,
            ctrl_reported: false,
            sbuf: String::new(),
            sbuf_at: 0,
        }
    }

    /// True once the top-level value is complete.
    pub fn is_done(&self) -> bool {
        self.mode == Mode::Done
    }

    /// True when no byte of a value has been seen yet (only whitespace/comments so far).
    pub fn is_pristine(&self) -> bool {
        !self.started
    }

    /// Current container depth (0 at top level).
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// Absolute offset of the next byte to be read.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// True inside a JSON value string (not a key, not mid-escape, no decoded text waiting):
    /// there, text without quotes, backslashes or control characters is string content as it
    /// stands (see [`is_verbatim_string_text`]) and may be consumed with [`Scanner::take_plain`].
    pub fn in_plain_string(&self) -> bool {
        matches!(
            self.mode,
            Mode::Str {
                quote: b'"',
                key: false,
                python_raw: false
            }
        ) && self.plain_string_state()
    }

    /// What both [`Scanner::in_plain_string`] and [`Scanner::in_plain_escape`] need besides the
    /// mode: a JSON double-quoted string with nothing decoded waiting.
    fn plain_string_state(&self) -> bool {
        self.dialect == Dialect::Json && !self.triple && self.sbuf.is_empty() && self.high_surrogate.is_none()
    }

    /// Consumes `n` bytes of string content the caller handled itself (only valid where
    /// [`Scanner::in_plain_string`] holds, for text that [`is_verbatim_string_text`] accepts).
    pub fn take_plain(&mut self, n: usize) {
        debug_assert!(self.in_plain_string());
        self.pos += n;
    }

    /// Consumes a backslash that ends the input, inside a plain string (see
    /// [`Scanner::in_plain_string`]): the escape it starts is cut, and
    /// [`Scanner::in_plain_escape`] holds until its next byte comes.
    pub fn take_plain_escape_start(&mut self) {
        debug_assert!(self.in_plain_string());
        self.mode = Mode::Escape {
            quote: b'"',
            key: false,
        };
        self.pos += 1;
    }

    /// True while inside a string (its text, escapes included).
    pub fn in_string(&self) -> bool {
        matches!(self.mode, Mode::Str { .. } | Mode::Escape { .. } | Mode::Unicode { .. })
    }

    /// True when the last input ended with the backslash of an escape in a plain string
    /// (see [`Scanner::in_plain_string`]): an escape cut between two deltas.
    pub fn in_plain_escape(&self) -> bool {
        matches!(
            self.mode,
            Mode::Escape {
                quote: b'"',
                key: false
            }
        ) && self.plain_string_state()
    }

    /// Consumes the byte that ends a cut escape the caller handled itself (only valid where
    /// [`Scanner::in_plain_escape`] holds, for a byte [`is_verbatim_escape`] accepts): the
    /// scanner is back inside the plain string.
    pub fn take_plain_escape_end(&mut self) {
        debug_assert!(self.in_plain_escape());
        self.mode = Mode::Str {
            quote: b'"',
            key: false,
            python_raw: false,
        };
        self.pos += 1;
    }

    /// Consumes the rest of the container opened last, `n` bytes through its closer, which
    /// the caller read and wrote itself (only valid right after the scanner sent the
    /// container's opening token, for a well-formed container whose tokens the sink would not
    /// have needed): the scanner is after a complete value.
    pub fn skip_container_rest(&mut self, n: usize) {
        debug_assert!(matches!(self.mode, Mode::Key | Mode::Value) && !self.stack.is_empty());
        self.stack.pop();
        self.pos += n;
        self.last_was_comma = false;
        self.value_done();
    }

    fn repair(&mut self, kind: &'static str, start: usize, message: impl Into<String>) {
        let end = self.base + self.pos;
        self.repairs.push(Repair {
            kind,
            start,
            end: end.max(start),
            message: message.into(),
        });
    }

    fn fail(&mut self, message: impl Into<String>) {
        let at = self.base + self.pos;
        self.repairs.push(Repair {
            kind: "invalid_json",
            start: at,
            end: at,
            message: message.into(),
        });
        self.mode = Mode::Failed;
    }

    /// Called when a value (scalar or container) completes.
    fn value_done(&mut self) {
        self.mode = if self.stack.is_empty() { Mode::Done } else { Mode::After };
    }

    fn open(&mut self, frame: Frame, sink: &mut dyn TokenSink) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(format!("nesting deeper than {MAX_DEPTH}"));
            return;
        }
        self.started = true;
        self.stack.push(frame);
        match frame {
            Frame::Object => {
                sink.token(Token::BeginObject, self.base + self.pos);
                self.mode = Mode::Key;
            }
            Frame::Array => {
                sink.token(Token::BeginArray, self.base + self.pos);
                self.mode = Mode::Value;
            }
        }
    }

    fn close(&mut self, closer: u8, sink: &mut dyn TokenSink) {
        let want = if closer == b'}' { Frame::Object } else { Frame::Array };
        match self.stack.pop() {
            Some(frame) => {
                if frame != want {
                    if !self.lenient {
                        self.fail(format!("mismatched '{}'", closer as char));
                        return;
                    }
                    let at = self.base + self.pos;
                    self.repair(
                        "mismatched_bracket",
                        at,
                        format!("'{}' closed a {:?}", closer as char, frame),
                    );
                }
                sink.token(
                    if frame == Frame::Object {
                        Token::EndObject
                    } else {
                        Token::EndArray
                    },
                    self.base + self.pos,
                );
                self.value_done();
            }
            None => self.fail(format!("unexpected '{}'", closer as char)),
        }
    }

    /// Feed input. See [`Progress`]. After `Done` or `Error`, further feeds consume nothing.
    pub fn feed(&mut self, input: &str, sink: &mut dyn TokenSink) -> Progress {
        let p = self.feed_inner(input, sink);
        self.flush_str(sink);
        p
    }

    /// Buffers decoded string text (sent by [`Scanner::flush_str`]).
    fn buffer_part(&mut self, part: &str) {
        if self.sbuf.is_empty() {
            self.sbuf_at = self.base + self.pos;
        }
        self.sbuf.push_str(part);
    }

    /// Sends buffered string text as one token.
    fn flush_str(&mut self, sink: &mut dyn TokenSink) {
        if !self.sbuf.is_empty() {
            sink.token(Token::StringPart(&self.sbuf), self.sbuf_at);
            self.sbuf.clear();
        }
    }

    fn feed_inner(&mut self, input: &str, sink: &mut dyn TokenSink) -> Progress {
        let bytes = input.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            // Tokens are only emitted outside strings (string text is buffered), so the
            // sink's stop request only needs checking there (not after a backslash either).
            if !self.in_string() && sink.wants_stop() {
                return Progress::Done { consumed: i };
            }
            let b = bytes[i];
            match self.mode {
                Mode::Done => return Progress::Done { consumed: i },
                Mode::Failed => return Progress::Error { consumed: i },
                Mode::Str { quote, key, python_raw } => {
                    // Fastest path: text that the sink would write back as it stands (plain
                    // text and simple escapes) goes through in its escaped form, neither
                    // decoded nor re-escaped. Short rests (streamed deltas) skip the check.
                    if quote == b'"'
                        && !key
                        && !python_raw
                        && !self.triple
                        && self.dialect == Dialect::Json
                        && self.high_surrogate.is_none()
                        && bytes.len() - i >= ESCAPED_MIN
                        && sink.takes_escaped()
                    {
                        let n = verbatim_prefix_len_wide(&bytes[i..]);
                        if n > 0 {
                            self.flush_str(sink);
                            sink.escaped(&input[i..i + n], self.base + self.pos);
                            i += n;
                            self.pos += n;
                            if i >= bytes.len() {
                                break;
                            }
                        }
                    }
                    // Fast path: a run of ordinary characters.
                    let run_start = i;
                    let newline_ends = quote != b'"' && self.dialect == Dialect::Python && !self.triple;
                    // The run ends at the quote, a backslash or (single-line Python) a newline.
                    let rest = &bytes[i..];
                    let found = find_string_stop(rest, quote, newline_ends);
                    i = found.map_or(bytes.len(), |k| i + k);
                    if i > run_start {
                        let part = &input[run_start..i];
                        let saw_control = has_control(part.as_bytes());
                        if saw_control {
                            self.note_controls(part, run_start);
                        }
                        if key {
                            self.word.push_str(part);
                        } else if i >= bytes.len() && self.sbuf.is_empty() {
                            // The run ends this input and nothing is buffered: it is the
                            // feed's one string token already, without a copy.
                            sink.token(Token::StringPart(part), self.base + self.pos);
                        } else {
                            self.buffer_part(part);
                        }
                        self.pos += i - run_start;
                    }
                    if i >= bytes.len() {
                        break;
                    }
                    let c = bytes[i];
                    if c == b'\\' && python_raw {
                        // Python raw string: the backslash stays, and it keeps the next
                        // character (an escaped quote does not close the string).
                        let Some(&next) = bytes.get(i + 1) else {
                            return Progress::Partial { consumed: i };
                        };
                        let n = if next.is_ascii() { 2 } else { 1 };
                        let part = &input[i..i + n];
                        if key {
                            self.word.push_str(part);
                        } else {
                            self.buffer_part(part);
                        }
                        i += n;
                        self.pos += n;
                        continue;
                    }
                    if c == b'\\' {
                        // Fast path: a simple escape whose second byte is already here.
                        let simple = bytes.get(i + 1).copied().and_then(simple_escape);
                        if let Some(decoded) = simple {
                            if self.high_surrogate.take().is_some() {
                                self.push_char(char::REPLACEMENT_CHARACTER, key);
                            }
                            if key {
                                self.word.push_str(decoded);
                            } else {
                                self.buffer_part(decoded);
                            }
                            i += 2;
                            self.pos += 2;
                            continue;
                        }
                        self.mode = Mode::Escape { quote, key };
                        i += 1;
                        self.pos += 1;
                        continue;
                    }
                    if c == b'\n' {
                        // Python single-line strings cannot hold raw newlines; keep it (repair).
                        if key {
                            self.word.push('\n');
                        } else {
                            self.buffer_part("\n");
                        }
                        i += 1;
                        self.pos += 1;
                        continue;
                    }
                    // c == quote: decide whether it closes the string.
                    if self.triple {
                        // Only three quotes close a triple-quoted string.
                        if bytes.len() < i + 3 {
                            return Progress::Partial { consumed: i };
                        }
                        if bytes[i + 1] == quote && bytes[i + 2] == quote {
                            i += 3;
                            self.pos += 3;
                            self.triple = false;
                            self.end_string(key, sink);
                        } else {
                            let part = &input[i..i + 1];
                            if key {
                                self.word.push_str(part);
                            } else {
                                self.buffer_part(part);
                            }
                            i += 1;
                            self.pos += 1;
                        }
                        continue;
                    }
                    if self.lenient
                        && (quote == b'"' || self.dialect == Dialect::Json)
                        && !key
                        && !self.stack.is_empty()
                    {
                        match self.quote_closes(&bytes[i + 1..]) {
                            None => return Progress::Partial { consumed: i },
                            Some(false) => {
                                let at = self.base + self.pos;
                                i += 1;
                                self.pos += 1;
                                self.repair("unescaped_quote", at, "kept an unescaped inner quote as text");
                                self.buffer_part(if quote == b'"' { "\"" } else { "'" });
                                continue;
                            }
                            Some(true) => {}
                        }
                    }
                    i += 1;
                    self.pos += 1;
                    self.end_string(key, sink);
                }
                Mode::Escape { quote, key } => {
                    i += 1;
                    self.pos += 1;
                    let decoded: Option<char> = match b {
                        b'"' => Some('"'),
                        b'\\' => Some('\\'),
                        b'/' => Some('/'),
                        b'b' => Some('\u{8}'),
                        b'f' => Some('\u{c}'),
                        b'n' => Some('\n'),
                        b'r' => Some('\r'),
                        b't' => Some('\t'),
                        b'\'' => Some('\''),
                        b'u' | b'x' | b'U' if b == b'u' || self.dialect == Dialect::Python => {
                            self.hex_need = match b {
                                b'x' => 2,
                                b'U' => 8,
                                _ => 4,
                            };
                            self.mode = Mode::Unicode {
                                quote,
                                key,
                                digits: 0,
                                acc: 0,
                            };
                            continue;
                        }
                        b'a' if self.dialect == Dialect::Python => Some('\u{7}'),
                        b'v' if self.dialect == Dialect::Python => Some('\u{b}'),
                        b'\n' if self.dialect == Dialect::Python => {
                            // Line continuation.
                            self.mode = Mode::Str {
                                quote,
                                key,
                                python_raw: false,
                            };
                            continue;
                        }
                        _ => None,
                    };
                    if b == b'\'' && self.dialect == Dialect::Json && quote == b'"' {
                        let at = self.base + self.pos - 2;
                        self.repair("invalid_escape", at, "\\' is not a JSON escape; read as '");
                    }
                    self.mode = Mode::Str {
                        quote,
                        key,
                        python_raw: false,
                    };
                    if decoded.is_some() && self.high_surrogate.take().is_some() {
                        // A `\uD8xx` not followed by its low half.
                        self.push_char(char::REPLACEMENT_CHARACTER, key);
                    }
                    match decoded {
                        Some(ch) => {
                            let mut tmp = [0u8; 4];
                            let s = ch.encode_utf8(&mut tmp);
                            if key {
                                self.word.push_str(s);
                            } else {
                                self.buffer_part(s);
                            }
                        }
                        None => {
                            if !self.lenient {
                                // The error is at the escaped character, which is not consumed
                                // (it may be the first byte of a multi-byte character).
                                i -= 1;
                                self.pos -= 1;
                                self.fail("invalid escape");
                                continue;
                            }
                            // Keep the backslash literally; the escaped byte is re-read as text.
                            let at = self.base + self.pos - 2;
                            self.repair("invalid_escape", at, "kept an invalid escape's backslash literally");
                            if key {
                                self.word.push('\\');
                            } else {
                                self.buffer_part("\\");
                            }
                            i -= 1;
                            self.pos -= 1;
                        }
                    }
                }
                Mode::Unicode {
                    quote,
                    key,
                    digits,
                    acc,
                } => {
                    let v = match (b as char).to_digit(16) {
                        Some(v) => v,
                        None => {
                            if !self.lenient {
                                self.fail("invalid \\u escape");
                                continue;
                            }
                            let at = self.base + self.pos;
                            self.repair("invalid_escape", at, "truncated \\u escape");
                            self.mode = Mode::Str {
                                quote,
                                key,
                                python_raw: false,
                            };
                            self.push_char(char::REPLACEMENT_CHARACTER, key);
                            continue;
                        }
                    };
                    i += 1;
                    self.pos += 1;
                    let acc = acc.wrapping_mul(16).wrapping_add(v);
                    if digits + 1 < self.hex_need {
                        self.mode = Mode::Unicode {
                            quote,
                            key,
                            digits: digits + 1,
                            acc,
                        };
                        continue;
                    }
                    self.mode = Mode::Str {
                        quote,
                        key,
                        python_raw: false,
                    };
                    self.unicode_scalar(acc, key);
                }
                Mode::LineComment => {
                    i += 1;
                    self.pos += 1;
                    if b == b'\n' {
                        self.mode = self.resume;
                    }
                }
                Mode::BlockComment { star } => {
                    i += 1;
                    self.pos += 1;
                    self.mode = if star && b == b'/' {
                        self.resume
                    } else {
                        Mode::BlockComment { star: b == b'*' }
                    };
                }
                Mode::Bare { key } => {
                    let start = i;
                    while i < bytes.len() {
                        let c = bytes[i];
                        let delim = if key {
                            is_key_delim(c)
                        } else {
                            is_bare_delim(c) || c == b'/'
                        };
                        if delim && !(i == start && self.word.is_empty()) {
                            break;
                        }
                        i += 1;
                    }
                    self.word.push_str(&input[start..i]);
                    self.pos += i - start;
                    if self.word.len() > 1 << 20 {
                        self.fail("bare word too long");
                    } else if i < bytes.len()
                        && !key
                        && self.dialect == Dialect::Python
                        && matches!(bytes[i], b'"' | b'\'')
                        && matches!(
                            self.word.to_ascii_lowercase().as_str(),
                            "r" | "u" | "b" | "f" | "rb" | "br" | "fr" | "rf"
                        )
                    {
                        // A string prefix (`r'..'`, `b".."`): the quote opens the string.
                        self.raw_prefix = self.word.contains(['r', 'R']);
                        self.word.clear();
                        self.mode = Mode::Value;
                    } else if i < bytes.len() {
                        // A delimiter ends the word; it is re-read in the next mode.
                        self.finish_bare(key, sink);
                    }
                }
                Mode::Value | Mode::Key | Mode::Colon | Mode::After => {
                    if is_ws(b) {
                        i += 1;
                        self.pos += 1;
                        continue;
                    }
                    if (b == b'/' || b == b'#') && self.lenient {
                        if b == b'#' {
                            let at = self.base + self.pos;
                            self.resume = self.mode;
                            self.mode = Mode::LineComment;
                            i += 1;
                            self.pos += 1;
                            self.repair("comment", at, "removed a # comment");
                            continue;
                        }
                        let Some(&next) = bytes.get(i + 1) else {
                            return Progress::Partial { consumed: i };
                        };
                        if next == b'/' || next == b'*' {
                            let at = self.base + self.pos;
                            self.resume = self.mode;
                            self.mode = if next == b'/' {
                                Mode::LineComment
                            } else {
                                Mode::BlockComment { star: false }
                            };
                            i += 2;
                            self.pos += 2;
                            self.repair("comment", at, "removed a comment");
                            continue;
                        }
                    }
                    // Python: `'''`/`"""` opens a triple-quoted string (two bytes of lookahead).
                    let mut triple = false;
                    if self.dialect == Dialect::Python
                        && (b == b'"' || b == b'\'')
                        && matches!(self.mode, Mode::Value | Mode::Key)
                    {
                        match (bytes.get(i + 1), bytes.get(i + 2)) {
                            (None, _) => return Progress::Partial { consumed: i },
                            (Some(&x), None) if x == b => return Progress::Partial { consumed: i },
                            (Some(&x), Some(&y)) => triple = x == b && y == b,
                            _ => {}
                        }
                    }
                    let consumed = self.structural(b, sink);
                    if self.mode == Mode::Failed {
                        return Progress::Error { consumed: i };
                    }
                    if consumed {
                        i += 1;
                        self.pos += 1;
                        if triple && matches!(self.mode, Mode::Str { .. }) {
                            i += 2;
                            self.pos += 2;
                            self.triple = true;
                        }
                    }
                }
            }
        }
        match self.mode {
            Mode::Done => Progress::Done { consumed: i },
            Mode::Failed => Progress::Error { consumed: i },
            _ => Progress::Partial { consumed: i },
        }
    }

    /// Reports the first raw control character of a string (they are escaped on output).
    fn note_controls(&mut self, part: &str, _offset: usize) {
        if !self.lenient || self.ctrl_reported {
            return;
        }
        if let Some(k) = part.bytes().position(|c| c < 0x20) {
            let at = self.base + self.pos + k;
            self.ctrl_reported = true;
            self.repairs.push(Repair {
                kind: "control_character",
                start: at,
                end: at + 1,
                message: "escaped raw control characters inside a string".into(),
            });
        }
    }

    fn push_char(&mut self, ch: char, key: bool) {
        let mut tmp = [0u8; 4];
        let s = ch.encode_utf8(&mut tmp);
        if key {
            self.word.push_str(s);
        } else {
            self.buffer_part(s);
        }
    }

    fn unicode_scalar(&mut self, code: u32, key: bool) {
        if (0xD800..0xDC00).contains(&code) {
            if let Some(h) = self.high_surrogate.take() {
                let _ = h;
                self.push_char(char::REPLACEMENT_CHARACTER, key);
            }
            self.high_surrogate = Some(code);
            return;
        }
        if (0xDC00..0xE000).contains(&code) {
            if let Some(h) = self.high_surrogate.take() {
                let c = 0x10000 + ((h - 0xD800) << 10) + (code - 0xDC00);
                self.push_char(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), key);
            } else {
                self.push_char(char::REPLACEMENT_CHARACTER, key);
            }
            return;
        }
        if self.high_surrogate.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER, key);
        }
        self.push_char(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER), key);
    }

    /// Decides whether a `"` inside a value string closes it, looking at what follows.
    /// `None` means more input is needed.
    fn quote_closes(&self, rest: &[u8]) -> Option<bool> {
        let in_object = self.stack.last() == Some(&Frame::Object);
        let k = rest.iter().position(|&c| !is_ws(c))?;
        let c = rest[k];
        Some(match c {
            b'}' | b']' | b'#' => true,
            b')' => self.dialect == Dialect::Python,
            b':' => !in_object,
            // A comment after the value: `"rust" /* the language */`.
            b'/' => match rest.get(k + 1) {
                None => return None,
                Some(&n) => n == b'/' || n == b'*',
            },
            // After a comma the next member must look like one (`"key"`, a value, or a bare
            // key and a colon); otherwise the comma is text: `"SELECT "id", name FROM t"`.
            b',' if self.dialect == Dialect::Json => return Self::member_follows(&rest[k + 1..], in_object),
            b',' => true,
            // Another quote: the next key or element (missing comma), unless the quote after
            // it ends the container: `"say "hi""}` keeps the first as text.
            b'"' | b'\'' => {
                let after = &rest[k + 1..];
                match after.iter().position(|&c| !is_ws(c)) {
                    None => return None,
                    Some(j) => !matches!(after[j], b',' | b'}' | b']'),
                }
            }
            _ => false,
        })
    }

    /// Does `rest` (after a comma) start like the next member? `None`: need more input.
    fn member_follows(rest: &[u8], in_object: bool) -> Option<bool> {
        let k = rest.iter().position(|&c| !is_ws(c))?;
        let c = rest[k];
        if matches!(c, b'"' | b'\'' | b'}' | b']' | b'{' | b'[' | b',' | b'/' | b'#')
            || (!in_object && (c.is_ascii_digit() || c == b'-'))
        {
            return Some(true);
        }
        if !in_object {
            // A bare literal element.
            let word: Vec<u8> = rest[k..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .copied()
                .collect();
            if k + word.len() == rest.len() {
                return if word.len() > 16 { Some(false) } else { None };
            }
            return Some(matches!(
                word.as_slice(),
                b"true" | b"false" | b"null" | b"True" | b"False" | b"None"
            ));
        }
        // An unquoted key: an identifier followed by a colon.
        let mut j = k;
        while j < rest.len()
            && (rest[j].is_ascii_alphanumeric() || matches!(rest[j], b'_' | b'-' | b'.' | b'$') || rest[j] >= 0x80)
        {
            j += 1;
        }
        // Keys longer than this are not taken for keys, whatever follows (so the answer
        // does not depend on how much input has arrived).
        if j - k > 64 {
            return Some(false);
        }
        if j == rest.len() {
            return None;
        }
        if j == k {
            return Some(false);
        }
        rest[j..].iter().position(|&c| !is_ws(c)).map(|p| rest[j + p] == b':')
    }

    fn end_string(&mut self, key: bool, sink: &mut dyn TokenSink) {
        if self.high_surrogate.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER, key);
        }
        self.triple = false;
        if key {
            let k = std::mem::take(&mut self.word);
            sink.token(Token::Key(&k), self.base + self.pos);
            self.mode = Mode::Colon;
        } else {
            self.flush_str(sink);
            sink.token(Token::EndString, self.base + self.pos);
            self.value_done();
        }
    }

    /// Handles a non-whitespace byte in a structural mode. Returns false when the byte was
    /// not consumed (it starts a bare word and is re-read in `Bare` mode).
    fn structural(&mut self, b: u8, sink: &mut dyn TokenSink) -> bool {
        let at = self.base + self.pos;
        let in_object = self.stack.last() == Some(&Frame::Object);
        match self.mode {
            Mode::Value => match b {
                b'{' => self.open(Frame::Object, sink),
                b'[' => self.open(Frame::Array, sink),
                b'(' if self.dialect == Dialect::Python => self.open(Frame::Array, sink),
                b'"' | b'\'' => {
                    if b == b'\'' && self.dialect == Dialect::Json {
                        if !self.lenient {
                            self.fail("single-quoted string");
                            return true;
                        }
                        self.repair("single_quotes", at, "converted a single-quoted string");
                    }
                    self.started = true;
                    self.tok_start = at;
                    sink.token(Token::BeginString, self.base + self.pos);
                    self.ctrl_reported = false;
                    self.mode = Mode::Str {
                        quote: b,
                        key: false,
                        python_raw: std::mem::take(&mut self.raw_prefix),
                    };
                }
                b']' | b'}' | b')' if !self.stack.is_empty() => {
                    let closer = if b == b')' { b']' } else { b };
                    if in_object {
                        // `{"a": }`: the key has no value; writers drop such a key.
                        if !self.lenient {
                            self.fail("missing value");
                            return true;
                        }
                        self.repair("missing_value", at, "dropped a key that had no value");
                    } else if self.last_was_comma {
                        if !self.lenient {
                            self.fail("trailing comma");
                            return true;
                        }
                        self.repair("trailing_comma", at, "removed a trailing comma");
                    }
                    self.close(closer, sink);
                }
                b',' | b':' if self.lenient && !self.stack.is_empty() => {
                    self.repair("extra_separator", at, format!("removed an extra '{}'", b as char));
                }
                b',' | b':' | b']' | b'}' | b')' => self.fail(format!("unexpected '{}'", b as char)),
                _ => {
                    self.started = true;
                    self.tok_start = at;
                    self.word.clear();
                    self.mode = Mode::Bare { key: false };
                    return false;
                }
            },
            Mode::Key => match b {
                b'"' | b'\'' => {
                    if b == b'\'' && self.dialect == Dialect::Json {
                        if !self.lenient {
                            self.fail("single-quoted key");
                            return true;
                        }
                        self.repair("single_quotes", at, "converted a single-quoted key");
                    }
                    self.word.clear();
                    self.ctrl_reported = false;
                    self.mode = Mode::Str {
                        quote: b,
                        key: true,
                        python_raw: false,
                    };
                }
                b'}' => {
                    if self.last_was_comma {
                        if !self.lenient {
                            self.fail("trailing comma");
                            return true;
                        }
                        self.repair("trailing_comma", at, "removed a trailing comma");
                    }
                    self.close(b'}', sink);
                }
                b',' if self.lenient => self.repair("extra_separator", at, "removed an extra ','"),
                b']' if self.lenient => self.close(b']', sink),
                b':' | b'[' | b'{' | b']' | b',' => self.fail(format!("expected a key, found '{}'", b as char)),
                _ => {
                    if !self.lenient && self.dialect == Dialect::Json {
                        self.fail("unquoted key");
                        return true;
                    }
                    self.word.clear();
                    self.tok_start = at;
                    self.mode = Mode::Bare { key: true };
                    return false;
                }
            },
            Mode::Colon => match b {
                b':' => self.mode = Mode::Value,
                b'=' if self.dialect == Dialect::Python => self.mode = Mode::Value,
                _ if self.lenient => {
                    self.repair("missing_colon", at, "inserted a missing colon");
                    self.mode = Mode::Value;
                    return self.structural(b, sink);
                }
                _ => self.fail(format!("expected ':', found '{}'", b as char)),
            },
            Mode::After => match b {
                b',' => {
                    self.mode = if in_object { Mode::Key } else { Mode::Value };
                    self.last_was_comma = true;
                    return true;
                }
                b'}' | b']' => self.close(b, sink),
                b')' if self.dialect == Dialect::Python => self.close(b']', sink),
                _ if self.lenient => {
                    self.repair("missing_comma", at, "inserted a missing comma");
                    self.mode = if in_object { Mode::Key } else { Mode::Value };
                    return self.structural(b, sink);
                }
                _ => self.fail(format!("expected ',' or a closer, found '{}'", b as char)),
            },
            _ => {}
        }
        self.last_was_comma = false;
        true
    }

    /// Completes an unquoted word: a number, a literal, or (lenient) a bare string/key.
    fn finish_bare(&mut self, key: bool, sink: &mut dyn TokenSink) {
        let word = std::mem::take(&mut self.word);
        let start = self.tok_start;
        if key {
            if !self.lenient && self.dialect == Dialect::Json {
                self.fail("unquoted key");
                return;
            }
            if self.dialect == Dialect::Json {
                self.repair("unquoted_key", start, format!("quoted the key {word:?}"));
            }
            sink.token(Token::Key(&word), self.base + self.pos);
            self.mode = Mode::Colon;
            return;
        }
        let python = self.dialect == Dialect::Python;
        match word.as_str() {
            "true" => sink.token(Token::Bool(true), self.base + self.pos),
            "false" => sink.token(Token::Bool(false), self.base + self.pos),
            "null" => sink.token(Token::Null, self.base + self.pos),
            "True" | "False" | "None" if python || self.lenient => {
                if !python {
                    self.repair("python_literal", start, format!("read Python {word} as JSON"));
                }
                match word.as_str() {
                    "True" => sink.token(Token::Bool(true), self.base + self.pos),
                    "False" => sink.token(Token::Bool(false), self.base + self.pos),
                    _ => sink.token(Token::Null, self.base + self.pos),
                }
            }
            "undefined" | "NaN" | "Infinity" | "-Infinity" | "+Infinity" | "nan" | "inf" | "-inf" if self.lenient => {
                self.repair("js_literal", start, format!("{word} has no JSON form; used null"));
                sink.token(Token::Null, self.base + self.pos);
            }
            _ => {
                if let Some(num) = normalize_number(&word) {
                    if num != word {
                        if !self.lenient {
                            self.fail(format!("invalid number {word:?}"));
                            return;
                        }
                        self.repair("number", start, format!("normalised number {word:?}"));
                    }
                    let huge = is_out_of_range(&num);
                    if huge && !self.lenient {
                        self.fail(format!("number {word} is out of range"));
                        return;
                    }
                    if huge {
                        // Like Infinity: no JSON reader can represent it.
                        self.repair(
                            "js_literal",
                            start,
                            format!("{word} is out of range for any JSON number reader; used null"),
                        );
                        sink.token(Token::Null, self.base + self.pos);
                    } else {
                        sink.token(Token::Number(&num), self.base + self.pos);
                    }
                } else if self.lenient && !word.is_empty() {
                    self.repair("bare_string", start, format!("quoted the bare word {word:?}"));
                    sink.token(Token::BeginString, self.base + self.pos);
                    sink.token(Token::StringPart(&word), self.base + self.pos);
                    sink.token(Token::EndString, self.base + self.pos);
                } else {
                    self.fail(format!("invalid value {word:?}"));
                    return;
                }
            }
        }
        self.value_done();
    }

    /// End of input: completes a pending word and, in lenient mode, closes open strings and
    /// containers (truncation repair). Returns false when the value is incomplete and could
    /// not be closed (strict mode) or never started.
    pub fn finish(&mut self, sink: &mut dyn TokenSink) -> bool {
        if matches!(self.mode, Mode::LineComment | Mode::BlockComment { .. }) {
            self.mode = self.resume;
        }
        if let Mode::Bare { key } = self.mode {
            if !key && self.lenient && matches!(self.word.as_str(), "-" | "+" | ".") && !self.stack.is_empty() {
                // A number cut right after its sign: there is no value; drop it (and its key).
                let at = self.base + self.pos;
                self.repairs.push(Repair {
                    kind: "truncated",
                    start: at,
                    end: at,
                    message: "dropped a value cut after its sign".into(),
                });
                self.word.clear();
                self.mode = Mode::After;
            }
        }
        if let Mode::Bare { key } = self.mode {
            if !key && self.lenient {
                // A literal cut short at the end of the output: `tr` -> `true`.
                let full = ["true", "false", "null"]
                    .into_iter()
                    .find(|l| l.len() > self.word.len() && l.starts_with(self.word.as_str()) && !self.word.is_empty());
                if let Some(l) = full {
                    let at = self.base + self.pos;
                    self.repairs.push(Repair {
                        kind: "truncated",
                        start: at,
                        end: at,
                        message: format!("completed the literal {l}"),
                    });
                    self.word = l.to_string();
                }
            }
            self.finish_bare(key, sink);
        }
        match self.mode {
            Mode::Done => return true,
            Mode::Failed => return false,
            _ => {}
        }
        if !self.lenient || !self.started || (self.mode == Mode::Value && self.stack.is_empty()) {
            return false;
        }
        let at = self.base + self.pos;
        match self.mode {
            Mode::Str { key, .. } | Mode::Escape { key, .. } | Mode::Unicode { key, .. } => {
                if key {
                    // A dangling key: drop it.
                    self.word.clear();
                    self.mode = Mode::After;
                } else {
                    self.flush_str(sink);
                    sink.token(Token::EndString, self.base + self.pos);
                    self.value_done();
                }
                self.repairs.push(Repair {
                    kind: "truncated",
                    start: at,
                    end: at,
                    message: "closed an unterminated string".into(),
                });
            }
            Mode::Colon => {
                // `{"a"` or `{"a":` : a dangling key; writers drop it.
                self.repairs.push(Repair {
                    kind: "truncated",
                    start: at,
                    end: at,
                    message: "dropped a dangling key".into(),
                });
            }
            Mode::Value if self.stack.last() == Some(&Frame::Object) => {
                self.repairs.push(Repair {
                    kind: "truncated",
                    start: at,
                    end: at,
                    message: "dropped a dangling key".into(),
                });
            }
            _ => {}
        }
        if !self.stack.is_empty() {
            self.repairs.push(Repair {
                kind: "truncated",
                start: at,
                end: at,
                message: format!("closed {} open container(s)", self.stack.len()),
            });
        }
        while let Some(frame) = self.stack.pop() {
            sink.token(
                if frame == Frame::Object {
                    Token::EndObject
                } else {
                    Token::EndArray
                },
                self.base + self.pos,
            );
        }
        self.mode = Mode::Done;
        true
    }
}

/// True when `w` is a number in RFC 8259 syntax.
fn is_json_number(w: &str) -> bool {
    let b = w.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let s = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let s = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

/// True when the JSON number `num` is beyond what any JSON reader can represent (it reads
/// as an infinite double); the scanner writes such a number as `null`, like `Infinity`.
pub(crate) fn is_out_of_range(num: &str) -> bool {
    (num.len() > 300 || num.contains(['e', 'E'])) && num.parse::<f64>().is_ok_and(|f| f.is_infinite())
}

/// Normalises number text to JSON syntax; `None` when it is not a number at all.
pub fn normalize_number(word: &str) -> Option<String> {
    if is_json_number(word) {
        return Some(word.to_string());
    }
    let s = word.strip_prefix('+').unwrap_or(word);
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty()
        || !digits
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let (mantissa, exp) = match digits.find(['e', 'E']) {
        Some(p) => (&digits[..p], Some(&digits[p + 1..])),
        None => (digits, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(p) => (&mantissa[..p], Some(&mantissa[p + 1..])),
        None => (mantissa, None),
    };
    if !int.bytes().all(|c| c.is_ascii_digit()) || frac.is_some_and(|f| !f.bytes().all(|c| c.is_ascii_digit())) {
        return None;
    }
    if int.is_empty() && frac.is_none_or(str::is_empty) {
        return None;
    }
    let mut out = String::with_capacity(word.len() + 2);
    if neg {
        out.push('-');
    }
    let int_trim = int.trim_start_matches('0');
    out.push_str(if int_trim.is_empty() { "0" } else { int_trim });
    if let Some(f) = frac {
        if !f.is_empty() {
            out.push('.');
            out.push_str(f);
        }
    }
    if let Some(e) = exp {
        let (sign, edigits) = match e.as_bytes().first() {
            Some(b'+') => ("", &e[1..]),
            Some(b'-') => ("-", &e[1..]),
            _ => ("", e),
        };
        if edigits.is_empty() || !edigits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        out.push('e');
        out.push_str(sign);
        out.push_str(edigits);
    }
    Some(out)
}

/// Writes a token stream as compact JSON text (serde_json's compact style).
///
/// A key is held until its value begins, so a key left without a value (truncated or
/// `{"a": }`) is dropped rather than written.
#[derive(Debug, Default)]
pub struct JsonWriter {
    /// Output produced so far and not yet taken.
    pub out: String,
    /// Per open container: its closer, and whether it has written an element yet.
    open: Vec<(char, bool)>,
    /// The key waiting for its value (`has_key`); the buffer is reused from key to key.
    pending_key: String,
    has_key: bool,
}

impl JsonWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Depth of open containers.
    pub fn depth(&self) -> usize {
        self.open.len()
    }

    fn separator(&mut self) {
        if let Some((_, first)) = self.open.last_mut() {
            if *first {
                *first = false;
            } else {
                self.out.push(',');
            }
        }
    }

    fn before_value(&mut self) {
        if self.has_key {
            self.has_key = false;
            self.separator();
            self.out.push('"');
            escape_into(&mut self.out, &self.pending_key);
            self.out.push_str("\":");
            return;
        }
        self.separator();
    }

    /// Takes the output produced since the last call.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// Closers for every open container (to end a value cut short), in order.
    pub fn closers(&self) -> String {
        self.open.iter().rev().map(|(c, _)| *c).collect()
    }
}

/// Bytes that need escaping inside a JSON string.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Where a run of ordinary string characters in `rest` ends: at the quote, a backslash or
/// (when `newline_ends`) a newline. Streamed deltas are a few bytes long, where a plain loop
/// beats memchr's vector set-up; long inputs (whole parses) get memchr.
#[inline]
fn find_string_stop(rest: &[u8], quote: u8, newline_ends: bool) -> Option<usize> {
    const SHORT: usize = 32;
    if rest.len() < SHORT {
        return rest
            .iter()
            .position(|&b| b == quote || b == b'\\' || (newline_ends && b == b'\n'));
    }
    if newline_ends {
        memchr::memchr3(quote, b'\\', b'\n', rest)
    } else {
        memchr::memchr2(quote, b'\\', rest)
    }
}

/// True when `bytes` holds a control character (below 0x20), eight bytes at a time.
fn has_control(bytes: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let w = u64::from_le_bytes(word);
        if w.wrapping_sub(LO * 0x20) & !w & HI != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| c < 0x20)
}

/// A mask with the high bit set in each of the eight bytes of `w` that is a control
/// character, `"` or `\\` (SWAR). Bits above the lowest set one may be spurious (borrows),
/// but the lowest set bit always marks the first such byte.
#[inline]
fn swar_escape_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
    below_space | has_zero(w ^ (LO * u64::from(b'"'))) | has_zero(w ^ (LO * u64::from(b'\\')))
}

/// Where the first byte at or after `i` that needs escaping inside a JSON string (a control
/// character, `"` or `\\`) is, or `bytes.len()`; eight bytes at a time (the short texts of
/// streamed deltas; [`find_needing_escape_wide`] is for long ones).
#[inline]
pub(crate) fn find_needing_escape(bytes: &[u8], mut i: usize) -> usize {
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        let mask = swar_escape_mask(u64::from_le_bytes(word));
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && !NEEDS_ESCAPE[bytes[i] as usize] {
        i += 1;
    }
    i
}

/// Bit `k` set when byte `i + k` of `bytes` needs escaping inside a JSON string (a control
/// character, `"` or `\\`), sixteen bytes at once (SSE2, which every x86-64 processor has).
///
/// # Safety
/// `i + 16 <= bytes.len()`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn escape_mask16(bytes: &[u8], i: usize) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    debug_assert!(i + 16 <= bytes.len());
    // SAFETY: SSE2 is part of the x86-64 baseline; the load reads bytes `i..i + 16`, inside
    // `bytes` by the caller's promise, unaligned.
    unsafe {
        let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast());
        // A byte is a control character when min(byte, 0x1f) is the byte itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32
    }
}

/// [`find_needing_escape`] for long texts (whole outputs, argument strings being checked):
/// sixteen bytes at a time on x86-64.
#[inline]
pub(crate) fn find_needing_escape_wide(bytes: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= bytes.len() {
        // SAFETY: `i + 16 <= bytes.len()`.
        let mask = unsafe { escape_mask16(bytes, i) };
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    find_needing_escape(bytes, i)
}

/// True when `s`, read as text inside a JSON string, is written back unchanged by this
/// module's scanner and writer: no quote or control character, and every backslash starts a
/// complete escape that re-escapes to itself (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`;
/// not `\/` or `\u`, which come back as other text).
pub fn is_verbatim_string_text(s: &str) -> bool {
    verbatim_prefix_len(s.as_bytes()) == s.len()
}

/// True when `\` followed by `b` is an escape the writers write back as it stands (every
/// one-character JSON escape but `\/`, which they write as `/`).
pub fn is_verbatim_escape(b: u8) -> bool {
    matches!(b, b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't')
}

/// How many bytes at the start of `bytes` are text that [`is_verbatim_string_text`] accepts
/// (it stops before a quote, a control character, an escape that is not written back as it
/// stands, and an escape cut off at the end).
pub fn verbatim_prefix_len(bytes: &[u8]) -> usize {
    verbatim_prefix_len_with(bytes, find_needing_escape)
}

/// [`verbatim_prefix_len`] for long texts: sixteen bytes at a time on x86-64, going over the
/// escapes each block holds without searching the block again.
pub(crate) fn verbatim_prefix_len_wide(bytes: &[u8]) -> usize {
    #[allow(unused_mut)]
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= bytes.len() {
        // SAFETY: `i + 16 <= bytes.len()`.
        let mut mask = unsafe { escape_mask16(bytes, i) };
        // Where the next block starts: one further when an escape crosses into it.
        let mut next = i + 16;
        while mask != 0 {
            let p = mask.trailing_zeros() as usize;
            let at = i + p;
            if bytes[at] != b'\\' || !bytes.get(at + 1).copied().is_some_and(is_verbatim_escape) {
                return at;
            }
            // The escape stays as it stands: its byte after the backslash is text.
            mask &= !(0b11 << p);
            next = next.max(at + 2);
        }
        i = next;
    }
    i + verbatim_prefix_len(&bytes[i..])
}

#[inline(always)]
fn verbatim_prefix_len_with(bytes: &[u8], find: impl Fn(&[u8], usize) -> usize) -> usize {
    let mut i = 0;
    loop {
        i = find(bytes, i);
        if i < bytes.len() && bytes[i] == b'\\' && bytes.get(i + 1).copied().is_some_and(is_verbatim_escape) {
            i += 2;
        } else {
            return i;
        }
    }
}

/// What a one-character JSON escape decodes to, given the byte after its backslash.
fn simple_escape(b: u8) -> Option<&'static str> {
    Some(match b {
        b'"' => "\"",
        b'\\' => "\\",
        b'/' => "/",
        b'n' => "\n",
        b't' => "\t",
        b'r' => "\r",
        b'b' => "\u{8}",
        b'f' => "\u{c}",
        _ => return None,
    })
}

/// Decodes text that [`is_verbatim_string_text`] accepts (only simple escapes).
fn unescape_simple(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(k) = rest.find('\\') {
        out.push_str(&rest[..k]);
        match rest.as_bytes().get(k + 1).copied().and_then(simple_escape) {
            Some(decoded) => {
                out.push_str(decoded);
                rest = &rest[k + 2..];
            }
            // Not verbatim text (the caller broke the contract): keep the backslash.
            None => {
                out.push('\\');
                rest = &rest[k + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Appends `s` to `out` with JSON string escaping (no quotes).
pub fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        i = find_needing_escape_wide(bytes, i);
        if i == bytes.len() {
            break;
        }
        out.push_str(&s[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
}

impl TokenSink for JsonWriter {
    fn token(&mut self, tok: Token<'_>, _at: usize) {
        match tok {
            Token::BeginObject => {
                self.before_value();
                self.out.push('{');
                self.open.push(('}', true));
            }
            Token::BeginArray => {
                self.before_value();
                self.out.push('[');
                self.open.push((']', true));
            }
            Token::EndObject => {
                self.has_key = false;
                self.open.pop();
                self.out.push('}');
            }
            Token::EndArray => {
                self.open.pop();
                self.out.push(']');
            }
            Token::Key(k) => {
                self.pending_key.clear();
                self.pending_key.push_str(k);
                self.has_key = true;
            }
            Token::BeginString => {
                self.before_value();
                self.out.push('"');
            }
            Token::StringPart(s) => escape_into(&mut self.out, s),
            Token::EndString => self.out.push('"'),
            Token::Number(n) => {
                self.before_value();
                self.out.push_str(n);
            }
            Token::Bool(v) => {
                self.before_value();
                self.out.push_str(if v { "true" } else { "false" });
            }
            Token::Null => {
                self.before_value();
                self.out.push_str("null");
            }
        }
    }

    fn takes_escaped(&self) -> bool {
        true
    }

    fn escaped(&mut self, text: &str, _at: usize) {
        self.out.push_str(text);
    }
}

/// Runs `text` through a lenient scanner in one go and returns compact JSON plus repairs.
/// `None` when nothing value-like was found.
pub fn rewrite(text: &str, dialect: Dialect, lenient: bool) -> Option<(String, Vec<Repair>, usize)> {
    let mut sc = Scanner::new(dialect, lenient, 0);
    let mut w = JsonWriter::new();
    let consumed = match sc.feed(text, &mut w) {
        Progress::Done { consumed } => consumed,
        Progress::Partial { consumed } => {
            if !sc.finish(&mut w) {
                return None;
            }
            consumed
        }
        Progress::Error { .. } => return None,
    };
    Some((w.out, sc.repairs, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbatim_string_text_is_what_scanning_and_writing_give_back() {
        for text in [
            "plain",
            "naïve 👍",
            r#"a\"b\\c\nd\te\rf\bg\fh"#,
            "",
            "0123456789abcdef0123",
        ] {
            assert!(is_verbatim_string_text(text), "{text:?}");
            // Scanned inside a string and written back: the same text.
            let (out, repairs, _) = rewrite(&format!("\"{text}\""), Dialect::Json, true).expect("value");
            assert_eq!(out, format!("\"{text}\""), "{text:?}");
            assert!(repairs.is_empty());
        }
        for text in [
            r#"a\/b"#,
            r#"\u00e9"#,
            r#"ends\"#,
            "quote\"",
            "tab\there",
            "01234567\u{1}",
            r#"\x"#,
        ] {
            assert!(!is_verbatim_string_text(text), "{text:?}");
        }
    }

    /// Writes tokens with a [`JsonWriter`]; takes escaped text when `takes` (and then either
    /// writes it as it stands or, with `default_decode`, decodes it as the trait's default does).
    #[derive(Default)]
    struct Recorder {
        takes: bool,
        default_decode: bool,
        w: JsonWriter,
        escaped_bytes: usize,
    }

    impl TokenSink for Recorder {
        fn token(&mut self, tok: Token<'_>, at: usize) {
            self.w.token(tok, at);
        }
        fn takes_escaped(&self) -> bool {
            self.takes
        }
        fn escaped(&mut self, text: &str, at: usize) {
            self.escaped_bytes += text.len();
            if self.default_decode {
                let decoded = unescape_simple(text);
                self.token(Token::StringPart(&decoded), at);
            } else {
                self.w.escaped(text, at);
            }
        }
    }

    /// In strict mode an invalid escape fails at the escaped character, which may start a
    /// multi-byte character: what the scanner says it consumed stays on a character boundary
    /// (callers slice the input there; a fuzz find).
    #[test]
    fn strict_invalid_escape_fails_on_a_character_boundary() {
        for text in ["{\"a\": \"\\\u{7ae}\"}", "\"\\é", "{\"\\👍", "[\"x\\q\"]"] {
            let mut sc = Scanner::new(Dialect::Json, false, 0);
            let mut w = JsonWriter::new();
            match sc.feed(text, &mut w) {
                Progress::Error { consumed } => {
                    assert!(text.is_char_boundary(consumed), "{text:?}: {consumed}");
                    assert_eq!(&text[consumed - 1..consumed], "\\", "{text:?}");
                }
                p => panic!("{text:?}: {p:?}"),
            }
        }
        let opts = crate::parser::Options {
            repair: false,
            ..crate::parser::Options::default()
        };
        let r = crate::parser::parse("{\"\\\u{7ae}", opts).expect("parse");
        assert!(r.tool_calls.is_empty());
    }

    /// The vector and word-at-a-time searches find what a byte-by-byte search finds: every
    /// byte value, at every position and offset, in texts long enough for both loops.
    #[test]
    fn verbatim_prefix_lengths_agree() {
        // Escapes of every kind, at every offset within and across sixteen-byte blocks.
        let pieces: [&[u8]; 12] = [
            b"a",
            b"\\n",
            b"\\\"",
            b"\\\\",
            b"\\/",
            b"\\u00e9",
            b"\"",
            b"\n",
            b"\xc3\xa9",
            b"\\t",
            b"\\",
            b"bcdefgh",
        ];
        let mut checked = 0;
        for lead in 0..20 {
            for a in pieces {
                for b in pieces {
                    let mut text = vec![b'x'; lead];
                    text.extend_from_slice(a);
                    text.extend_from_slice(b);
                    text.extend_from_slice(b"0123456789abcdefghij");
                    for cut in [text.len(), lead + a.len(), lead + 1] {
                        let t = &text[..cut.min(text.len())];
                        assert_eq!(
                            verbatim_prefix_len_wide(t),
                            verbatim_prefix_len(t),
                            "{:?}",
                            String::from_utf8_lossy(t)
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn find_needing_escape_is_the_first_byte_needing_escape() {
        let naive = |b: &[u8], i: usize| {
            i + b[i..]
                .iter()
                .position(|&c| NEEDS_ESCAPE[c as usize])
                .unwrap_or(b.len() - i)
        };
        for special in 0..=255u8 {
            for len in [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47] {
                for at in 0..len {
                    let mut b = vec![b'a'; len];
                    b[at] = special;
                    // A byte needing no escape but over 0x7f, and one just above the controls.
                    if at > 0 {
                        b[at - 1] = 0xc3;
                    }
                    if at + 1 < len {
                        b[at + 1] = b' ';
                    }
                    for start in [0, 1, 3].into_iter().filter(|&s| s <= len) {
                        if start < len {
                            assert_eq!(
                                find_needing_escape(&b, start),
                                naive(&b, start),
                                "{special} {len} {at} {start}"
                            );
                            assert_eq!(
                                find_needing_escape_wide(&b, start),
                                naive(&b, start),
                                "{special} {len} {at} {start}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(find_needing_escape(b"", 0), 0);
        assert_eq!(find_needing_escape(&[b'a'; 40], 40), 40);
        assert_eq!(find_needing_escape_wide(&[b'a'; 40], 40), 40);
    }

    #[test]
    fn escaped_string_text_gives_what_decoding_gives() {
        let long = "0123456789abcdef".repeat(3);
        let texts = [
            format!(r#"{{"code": "{long}\n\t\"x\" \\ {long}", "n": 1}}"#),
            format!(r#"["{long}\u00e9\/{long}", "{long}\ud83d\ude00{long}", "{long}\ud83d{long}"]"#),
            format!("{{\"ctl\": \"{long}\u{1}{long}\", \"q\": \"{long} \"inner\" {long}\"}}"),
            format!(r#"{{"{long}key\n": "{long}\x{long}", "cut": "{long}\"#),
            format!(r#"{{"naive": "{long}naïve 👍 東京{long}\b\f\r"}}"#),
        ];
        for text in &texts {
            let run = |takes: bool, default_decode: bool, size: usize| {
                let mut sc = Scanner::new(Dialect::Json, true, 0);
                let mut r = Recorder {
                    takes,
                    default_decode,
                    ..Recorder::default()
                };
                let mut pending = String::new();
                let chars: Vec<char> = text.chars().collect();
                for chunk in chars.chunks(size) {
                    pending.extend(chunk.iter());
                    if let Progress::Partial { consumed } | Progress::Done { consumed } = sc.feed(&pending, &mut r) {
                        pending.drain(..consumed);
                    }
                }
                if !sc.is_done() {
                    sc.finish(&mut r);
                }
                (r.w.out, sc.repairs.len(), r.escaped_bytes)
            };
            let (want, repairs, none) = run(false, false, usize::MAX / 2);
            assert_eq!(none, 0);
            for size in [1, 7, 20, usize::MAX / 2] {
                let (out, n, escaped) = run(true, false, size);
                assert_eq!((&out, n), (&want, repairs), "{text} in chunks of {size}");
                if size > 20 {
                    assert!(escaped >= 2 * long.len(), "{escaped} escaped bytes of {text}");
                }
                assert_eq!(run(true, true, size).0, want, "{text} decoded by default");
            }
        }
    }

    fn chunked(text: &str, size: usize) -> Option<String> {
        let mut sc = Scanner::new(Dialect::Json, true, 0);
        let mut w = JsonWriter::new();
        let mut pending = String::new();
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(size) {
            pending.extend(chunk.iter());
            match sc.feed(&pending, &mut w) {
                Progress::Partial { consumed } => {
                    pending.drain(..consumed);
                }
                Progress::Done { .. } => return Some(w.out),
                Progress::Error { .. } => return None,
            }
        }
        if !pending.is_empty() {
            if let Progress::Error { .. } = sc.feed(&pending, &mut w) {
                return None;
            }
        }
        sc.finish(&mut w).then_some(w.out)
    }

    fn check(input: &str, want: &str) {
        for size in [1, 2, 3, 7, 1000] {
            assert_eq!(
                chunked(input, size).as_deref(),
                Some(want),
                "input {input:?} chunk {size}"
            );
        }
    }

    #[test]
    fn valid_json_is_compacted() {
        check(
            r#" { "a" : [1, 2.5, -3e10, true, false, null], "b": {"c": "d\"e\\f\u00e9"} } "#,
            r#"{"a":[1,2.5,-3e10,true,false,null],"b":{"c":"d\"e\\fé"}}"#,
        );
        check(r#""\ud83d\ude00""#, "\"😀\"");
        check("[]", "[]");
        check("{}", "{}");
    }

    #[test]
    fn lenient_repairs() {
        check("{'a': 'b',}", r#"{"a":"b"}"#);
        check("{a: True, b: None, c: undefined}", r#"{"a":true,"b":null,"c":null}"#);
        check("{\"a\": 1 // c\n, /* x */ \"b\": 2}", r#"{"a":1,"b":2}"#);
        check("{\"a\": \"x\ny\"}", r#"{"a":"x\ny"}"#);
        check(r#"{"p": "C:\path"}"#, r#"{"p":"C:\\path"}"#);
        check(r#"{"a": [1, 2"#, r#"{"a":[1,2]}"#);
        check(r#"{"a": "unterminated"#, r#"{"a":"unterminated"}"#);
        check(r#"{"s": "He said "hi" there"}"#, r#"{"s":"He said \"hi\" there"}"#);
        check(r#"{"a": 1 "b": 2}"#, r#"{"a":1,"b":2}"#);
        check(r#"{"a": .5, "b": 01}"#, r#"{"a":0.5,"b":1}"#);
    }

    #[test]
    fn stops_at_value_end() {
        let mut sc = Scanner::new(Dialect::Json, true, 0);
        let mut w = JsonWriter::new();
        assert_eq!(
            sc.feed(r#"{"a": 1}</tool_call>"#, &mut w),
            Progress::Done { consumed: 8 }
        );
        assert_eq!(w.out, r#"{"a":1}"#);
    }

    #[test]
    fn strict_rejects() {
        assert!(rewrite("{'a': 1}", Dialect::Json, false).is_none());
        assert!(rewrite("{\"a\": 1,}", Dialect::Json, true).is_some());
    }

    /// Regressions found by fuzzing (fuzz/regressions/scanner).
    #[test]
    fn fuzz_regressions() {
        assert!(rewrite("b\"", Dialect::Python, true).is_none());
        let long_key = format!("{{m\"\",{}:1}}", "s".repeat(65));
        let whole = rewrite(&long_key, Dialect::Json, true).map(|r| r.0);
        assert_eq!(chunked(&long_key, 1), whole);
        let surrogate = "\"\\ud83d\\r\"";
        assert_eq!(chunked(surrogate, 1), chunked(surrogate, 1000));
        assert_eq!(chunked(surrogate, 1000).as_deref(), Some("\"\u{fffd}\\r\""));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 10);
        assert!(rewrite(&deep, Dialect::Json, true).is_none());
    }

    #[test]
    fn python_dialect() {
        let (out, _, _) = rewrite("{'a': (1, 2), 'b': None, 'c': 'it\\'s'}", Dialect::Python, true).unwrap();
        assert_eq!(out, r#"{"a":[1,2],"b":null,"c":"it's"}"#);
    }

    #[test]
    fn python_strings() {
        let cases = [
            (
                r#"['''a 'b' ""c""''', """x
y"""]"#,
                r#"["a 'b' \"\"c\"\"","x\ny"]"#,
            ),
            (
                r#"[r'C:\d\'s', b"\x41\u00e9\U0001F600\a", f'{x}', '']"#,
                r#"["C:\\d\\'s","Aé😀\u0007","{x}",""]"#,
            ),
            (r#"{'t': ("a", "b")}"#, r#"{"t":["a","b"]}"#),
        ];
        for (input, want) in cases {
            for size in [1, 2, 3, 1000] {
                let mut sc = Scanner::new(Dialect::Python, true, 0);
                let mut w = JsonWriter::new();
                let mut pending = String::new();
                let chars: Vec<char> = input.chars().collect();
                for chunk in chars.chunks(size) {
                    pending.extend(chunk.iter());
                    if let Progress::Partial { consumed } = sc.feed(&pending, &mut w) {
                        pending.drain(..consumed);
                    }
                }
                assert!(sc.is_done() || sc.finish(&mut w));
                assert_eq!(w.out, want, "{input} chunk {size}");
            }
        }
    }
}

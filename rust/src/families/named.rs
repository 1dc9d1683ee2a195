//! Named-call family: a marker, the tool NAME, then a JSON arguments object.
//!
//! One state machine, configured per format by [`NamedSpec`]:
//!
//! * mistral_v13 / mistral_v11: `[TOOL_CALLS]NAME[CALL_ID]id[ARGS]{…}` (the id part optional);
//! * deepseek_v3: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{…}\n```<｜tool▁call▁end｜>…<｜tool▁calls▁end｜>`;
//! * deepseek_v31: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜>…`;
//! * kimi_k2: `<|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{…}<|tool_call_end|>…`;
//! * functionary_v31: `<function=NAME>{…}</function>` (and `<|python_tag|>` raw code);
//! * functionary_v32: `>>>NAME\n{…}` (`>>>all\n` introduces text; the first `>>>` may be absent);
//! * inkling: `<|message_model|>NAME<|content_invoke_tool_json|>{"name": …, "args": {…}}<|end_message|>`.
//!
//! A call is: an optional section marker, the call-open marker, a header (an optional type
//! word and separator, the name, an optional id), an optional code fence, the JSON arguments
//! (read by the shared incremental [`Scanner`] and streamed through a [`JsonWriter`]), an
//! optional fence close and the call-close marker. The call starts when the name is complete
//! and the arguments have begun with `{`; until then the call's text is held, and a call
//! that turns out not to be one (unknown tool, broken header, arguments that are not an
//! object) is given back as content verbatim.

use crate::args::ArgsWriter;
use crate::emit::{Channel, Emitter, IdStyle};
use crate::event::Repair;
use crate::families::{Family, Prose, ProseSpec, ProseStep};
use crate::json::{Dialect, Progress, Scanner, Token, TokenSink};
use crate::marker::{skip_ws, starts_with_marker, Find, MarkerSet};

/// Longest header (name, id, type word) accepted, in bytes.
const MAX_NAME: usize = 256;
/// Most text held back for an undecided call before it is given up as content.
const MAX_HELD: usize = 64 * 1024;
/// Longest language tag accepted after a code fence.
const MAX_LANG: usize = 16;
const FENCE: &str = "```";

/// A type word before the name (deepseek_v3: `function<｜tool▁sep｜>NAME`). When the first
/// separator is followed by the arguments instead, the word before it is the name
/// (deepseek_v31: `NAME<｜tool▁sep｜>{…}`), so one spec reads both.
#[derive(Debug, Clone, Copy)]
pub struct TypeWord {
    /// The only accepted type word.
    pub word: &'static str,
    /// Separators after the type word (or after the name).
    pub seps: &'static [&'static str],
    /// Markers that end the name after the type word; a `{` ends it too.
    pub name_ends: &'static [&'static str],
}

/// Data describing one named-call format.
#[derive(Debug, Clone)]
pub struct NamedSpec {
    /// Section (open, close) markers around the calls. The open markers are prose triggers.
    pub sections: &'static [(&'static str, &'static str)],
    /// Markers opening one call (a header follows). Prose triggers, also read in a section.
    pub opens: &'static [&'static str],
    /// Markers opening a call with no header: the arguments follow at once. The name is
    /// fixed, or (`None`) comes from the envelope.
    pub direct: &'static [(&'static str, Option<&'static str>)],
    /// An optional type word before the name.
    pub typed: Option<TypeWord>,
    /// Markers ending the name (the arguments follow).
    pub name_ends: &'static [&'static str],
    /// Markers ending the name before a model-written id (the id ends at a `name_ends` marker).
    pub id_marks: &'static [&'static str],
    /// The header is a call id that carries the name (`functions.NAME:IDX`): this prefix and
    /// a `:digits` suffix are removed to get the name.
    pub name_in_id: Option<&'static str>,
    /// Markers that, ending the header, make the frame a non-call one (inkling text frames):
    /// the open marker and header are dropped and the marker is read as prose.
    pub frames: &'static [&'static str],
    /// Header names that introduce plain text (functionary `all`); the header is dropped.
    pub text_names: &'static [&'static str],
    /// The arguments may sit in a ``` code fence.
    pub fence: bool,
    /// Markers closing a call (optional when absent).
    pub closes: &'static [&'static str],
    /// The JSON is an envelope `{"name": …, "args": {…}}` (inkling).
    pub envelope: bool,
    /// Tools whose body may be raw code instead of JSON: (tool name, argument key).
    pub raw_tools: &'static [(&'static str, &'static str)],
    /// Markers ending a raw-code body.
    pub raw_ends: &'static [&'static str],
    /// The output may start with a header and no open marker (functionary_v32).
    pub header_at_start: bool,
    pub id_style: IdStyle,
}

impl NamedSpec {
    /// An empty spec to fill in with struct-update syntax.
    pub const BASE: NamedSpec = NamedSpec {
        sections: &[],
        opens: &[],
        direct: &[],
        typed: None,
        name_ends: &[],
        id_marks: &[],
        name_in_id: None,
        frames: &[],
        text_names: &[],
        fence: false,
        closes: &[],
        envelope: false,
        raw_tools: &[],
        raw_ends: &[],
        header_at_start: false,
        id_style: IdStyle::OpenAi,
    };

    /// The prose triggers: section opens, call opens, direct markers.
    pub fn triggers(&self) -> Vec<&'static str> {
        let mut t: Vec<&'static str> = self.sections.iter().map(|s| s.0).collect();
        t.extend_from_slice(self.opens);
        t.extend(self.direct.iter().map(|d| d.0));
        t
    }
}

// ---- per-format data -------------------------------------------------------------------

const MISTRAL_OPENS: &[&str] = &["[TOOL_CALLS]"];
const MISTRAL_ARGS: &[&str] = &["[ARGS]"];
const MISTRAL_ID: &[&str] = &["[CALL_ID]"];

/// mistral_v13 / mistral_v11: `[TOOL_CALLS]NAME[CALL_ID]id[ARGS]{…}`, the id part optional.
pub const MISTRAL: NamedSpec = NamedSpec {
    opens: MISTRAL_OPENS,
    name_ends: MISTRAL_ARGS,
    id_marks: MISTRAL_ID,
    id_style: IdStyle::Mistral9,
    ..NamedSpec::BASE
};

/// DeepSeek section markers (fullwidth bars; the ASCII-bar spelling some templates use too).
pub const DEEPSEEK_SECTIONS: &[(&str, &str)] = &[
    ("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"),
    ("<|tool▁calls▁begin|>", "<|tool▁calls▁end|>"),
];
pub const DEEPSEEK_OPENS: &[&str] = &["<｜tool▁call▁begin｜>", "<|tool▁call▁begin|>"];
pub const DEEPSEEK_SEPS: &[&str] = &["<｜tool▁sep｜>", "<|tool▁sep|>"];
const DEEPSEEK_CLOSES: &[&str] = &["<｜tool▁call▁end｜>", "<|tool▁call▁end|>"];
/// Tokens dropped from DeepSeek prose: end of sentence, echoed tool-output framing.
pub const DEEPSEEK_STRIP: &[&str] = &[
    "<｜end▁of▁sentence｜>",
    "<|end▁of▁sentence|>",
    "<｜tool▁outputs▁begin｜>",
    "<｜tool▁outputs▁end｜>",
    "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>",
];

/// deepseek_v3 and deepseek_v31 (one reader for both: the type word is optional).
pub const DEEPSEEK: NamedSpec = NamedSpec {
    sections: DEEPSEEK_SECTIONS,
    opens: DEEPSEEK_OPENS,
    typed: Some(TypeWord {
        word: "function",
        seps: DEEPSEEK_SEPS,
        name_ends: &["\n", FENCE],
    }),
    fence: true,
    closes: DEEPSEEK_CLOSES,
    ..NamedSpec::BASE
};

/// kimi_k2.
pub const KIMI: NamedSpec = NamedSpec {
    sections: &[("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>")],
    opens: &["<|tool_call_begin|>"],
    name_ends: &["<|tool_call_argument_begin|>"],
    name_in_id: Some("functions."),
    closes: &["<|tool_call_end|>"],
    ..NamedSpec::BASE
};

/// functionary_v31: `<function=NAME>{…}</function>`; `<|python_tag|>` starts raw Python code.
pub const FUNCTIONARY_V31: NamedSpec = NamedSpec {
    opens: &["<function="],
    direct: &[("<|python_tag|>", Some("python"))],
    name_ends: &[">"],
    closes: &["</function>"],
    raw_tools: &[("python", "code")],
    raw_ends: &["<|eom_id|>", "<|eot_id|>", "<function="],
    ..NamedSpec::BASE
};

/// functionary_v32: `>>>NAME\n{…}`; `>>>all\n` introduces text; `python` takes raw code.
pub const FUNCTIONARY_V32: NamedSpec = NamedSpec {
    opens: &[">>>"],
    name_ends: &["\n"],
    text_names: &["all"],
    raw_tools: &[("python", "code")],
    raw_ends: &[">>>", "<|eom_id|>", "<|eot_id|>"],
    header_at_start: true,
    ..NamedSpec::BASE
};

/// Inkling framing tokens dropped from prose.
pub const INKLING_STRIP: &[&str] = &[
    "<|content_text|>",
    "<|end_message|>",
    "<|content_model_end_sampling|>",
    "<|content_invoke_tool_text|>",
    "<|content_tool_error|>",
];

/// inkling: `<|message_model|>NAME<|content_invoke_tool_json|>{"name": …, "args": {…}}<|end_message|>`;
/// the header name is optional metadata, the envelope's name is authoritative.
pub const INKLING: NamedSpec = NamedSpec {
    opens: &["<|message_model|>"],
    direct: &[("<|content_invoke_tool_json|>", None)],
    name_ends: &["<|content_invoke_tool_json|>"],
    frames: &[
        "<|content_text|>",
        "<|content_thinking|>",
        "<|content_invoke_tool_text|>",
        "<|content_tool_error|>",
        "<|end_message|>",
        "<|content_model_end_sampling|>",
        "<|message_model|>",
    ],
    closes: &["<|end_message|>"],
    envelope: true,
    ..NamedSpec::BASE
};

// ---- markers ---------------------------------------------------------------------------

/// A marker set that reports the static marker found.
#[derive(Debug, Clone)]
struct Markers {
    set: MarkerSet,
    list: Vec<&'static str>,
}

enum Hit {
    /// Marker at `at`.
    Found(usize, &'static str),
    /// No marker before `at`; the rest may still grow into one.
    Partial(usize),
    None,
}

impl Markers {
    fn new(list: Vec<&'static str>) -> Self {
        let mut list = list;
        list.sort_unstable();
        list.dedup();
        Markers {
            set: MarkerSet::new(&list),
            list,
        }
    }

    fn find(&self, input: &str, from: usize, eof: bool) -> Hit {
        if self.list.is_empty() {
            return Hit::None;
        }
        match self.set.find(input, from, eof) {
            Find::Found { at, index } => Hit::Found(at, self.list[index]),
            Find::Partial { at } => Hit::Partial(at),
            Find::None => Hit::None,
        }
    }
}

/// Which of `markers` starts at `at`: `None` = wait for more input, `Some(None)` = none.
fn match_any(input: &str, at: usize, markers: &[&'static str], eof: bool) -> Option<Option<&'static str>> {
    let mut partial = false;
    for &m in markers {
        match starts_with_marker(input, at, m, eof) {
            Some(true) => return Some(Some(m)),
            None => partial = true,
            Some(false) => {}
        }
    }
    if partial {
        None
    } else {
        Some(None)
    }
}

/// A byte that may be part of a tool name or id (non-ASCII bytes are accepted: names may
/// be in any script).
fn name_byte(b: u8) -> bool {
    b >= 0x80 || b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/' | b'@' | b'$')
}

fn is_ws(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// The name carried by a call id: `functions.NAME:IDX` -> `NAME`.
fn name_from_id<'a>(id: &'a str, prefix: &str) -> &'a str {
    let mut s = id;
    if let Some(p) = s.rfind(':') {
        let idx = &s[p + 1..];
        if !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()) {
            s = &s[..p];
        }
    }
    s.strip_prefix(prefix).unwrap_or(s)
}

// ---- arguments ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    /// Not decided yet: the call's text is held.
    #[default]
    Pending,
    /// The call was started: its markup is dropped, its arguments streamed.
    Live,
    /// Not a call: its text is content.
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum EnvArgs {
    #[default]
    NotSeen,
    /// The arguments object is being written; it lives at token depth `depth`.
    Open {
        depth: usize,
    },
    Done,
    /// The arguments value is not an object.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Role {
    #[default]
    Other,
    Name,
    Args,
}

/// Keys of the envelope that hold the name / the arguments.
const ENV_NAME_KEYS: &[&str] = &["name", "tool_name", "function"];
const ENV_ARGS_KEYS: &[&str] = &["args", "arguments", "parameters", "input"];

/// The arguments of the current call, as the token sink sees them.
#[derive(Debug, Default)]
struct ArgState {
    mode: Mode,
    envelope: bool,
    /// Token depth.
    depth: usize,
    writer: ArgsWriter,
    in_string: bool,
    /// The name from the header (may be empty for an envelope).
    header_name: String,
    id: Option<String>,
    /// Absolute offset where the call's markup starts.
    start: usize,
    /// Absolute offset of the last token.
    offset: usize,
    role: Role,
    /// The envelope's name string while it is read, and whether it reached the cap.
    collecting: Option<(String, bool)>,
    env_name: Option<String>,
    env_args: EnvArgs,
}

impl ArgState {
    /// Text that closes what the written arguments left open (after a scan error).
    /// (The writer holds a key back until its value arrives, so a dangling key vanishes.)
    fn closing_tail(&mut self) -> String {
        // The writer closes an open string and containers (and writes a held value).
        self.writer.close_all();
        self.writer.take()
    }
}

/// Resolves `name` and starts the call, or rejects it.
fn begin_call(a: &mut ArgState, out: &mut Emitter, name: &str) {
    match out.accept_name(name, a.start, a.offset) {
        Some(declared) => {
            out.start_call(&declared, a.id.as_deref());
            a.mode = Mode::Live;
            a.writer.set_schema(out.args_schema(&declared));
            let held = a.writer.take();
            out.args(&held);
            out.diags(a.writer.take_diags());
        }
        None => {
            a.mode = Mode::Rejected;
            a.writer.out.clear();
        }
    }
}

struct Sink<'a> {
    a: &'a mut ArgState,
    out: &'a mut Emitter,
}

impl Sink<'_> {
    /// Writes an arguments token.
    fn write(&mut self, tok: Token<'_>, at: usize) {
        let a = &mut *self.a;
        match tok {
            Token::BeginString => a.in_string = true,
            Token::EndString => a.in_string = false,
            _ => {}
        }
        a.writer.token(tok, at);
        match a.mode {
            Mode::Live => {
                let s = a.writer.take();
                self.out.args(&s);
                self.out.diags(a.writer.take_diags());
            }
            Mode::Rejected => a.writer.out.clear(),
            Mode::Pending => {}
        }
    }

    /// Envelope: starts the call once the name is known and the arguments have begun.
    fn try_start(&mut self) {
        let a = &mut *self.a;
        if a.mode != Mode::Pending || matches!(a.env_args, EnvArgs::NotSeen | EnvArgs::Invalid) {
            return;
        }
        let name = match &a.env_name {
            Some(n) if !n.trim().is_empty() => n.clone(),
            _ if !a.header_name.is_empty() => a.header_name.clone(),
            _ => return,
        };
        begin_call(a, self.out, &name);
    }

    /// Envelope: the envelope object ended.
    fn envelope_end(&mut self) {
        if self.a.mode != Mode::Pending {
            return;
        }
        match self.a.env_args {
            EnvArgs::NotSeen => {
                let at = self.a.offset;
                self.write(Token::BeginObject, at);
                self.write(Token::EndObject, at);
                self.a.env_args = EnvArgs::Done;
            }
            EnvArgs::Invalid => {
                let (start, at) = (self.a.start, self.a.offset);
                self.out.diag(
                    "invalid_arguments",
                    start,
                    at,
                    "arguments are not a JSON object; kept as content",
                );
                self.a.mode = Mode::Rejected;
                return;
            }
            _ => {}
        }
        self.try_start();
        if self.a.mode == Mode::Pending {
            let (start, at) = (self.a.start, self.a.offset);
            self.out.diag(
                "not_a_call",
                start,
                at,
                "a tool-call frame without a tool name was kept as content",
            );
            self.a.mode = Mode::Rejected;
            self.a.writer.out.clear();
        }
    }

    fn envelope_token(&mut self, tok: Token<'_>, at: usize, depth_before: usize) {
        if let EnvArgs::Open { depth } = self.a.env_args {
            if depth_before >= depth {
                if depth_before == depth && matches!(tok, Token::EndObject | Token::EndArray) {
                    self.a.env_args = EnvArgs::Done;
                }
                self.write(tok, at);
                return;
            }
        }
        if let Some((buf, full)) = self.a.collecting.as_mut() {
            match tok {
                Token::StringPart(s) => push_capped(buf, full, s, MAX_NAME * 4),
                Token::EndString => {
                    let name = self.a.collecting.take().unwrap_or_default().0;
                    if self.a.env_name.is_none() {
                        self.a.env_name = Some(name);
                    }
                    self.try_start();
                }
                _ => {}
            }
            return;
        }
        if depth_before != 1 {
            if depth_before == 0 && tok == Token::EndObject {
                self.envelope_end();
            }
            return;
        }
        if let Token::Key(k) = tok {
            self.a.role = if ENV_NAME_KEYS.contains(&k) && self.a.env_name.is_none() {
                Role::Name
            } else if ENV_ARGS_KEYS.contains(&k) && self.a.env_args == EnvArgs::NotSeen {
                Role::Args
            } else {
                Role::Other
            };
            return;
        }
        if tok == Token::EndObject {
            self.envelope_end();
            return;
        }
        let role = std::mem::take(&mut self.a.role);
        match (role, &tok) {
            (Role::Name, Token::BeginString) => self.a.collecting = Some((String::new(), false)),
            (Role::Args, Token::BeginObject) => {
                self.a.env_args = EnvArgs::Open {
                    depth: depth_before + 1,
                };
                self.write(tok, at);
                self.try_start();
            }
            (Role::Args, Token::Null) => {
                self.write(Token::BeginObject, at);
                self.write(Token::EndObject, at);
                self.a.env_args = EnvArgs::Done;
                self.try_start();
            }
            (Role::Args, _) => self.a.env_args = EnvArgs::Invalid,
            _ => {}
        }
    }
}

impl TokenSink for Sink<'_> {
    fn token(&mut self, tok: Token<'_>, at: usize) {
        self.a.offset = at;
        let depth_before = self.a.depth;
        match tok {
            Token::BeginObject | Token::BeginArray => self.a.depth += 1,
            Token::EndObject | Token::EndArray => self.a.depth = self.a.depth.saturating_sub(1),
            _ => {}
        }
        if self.a.envelope {
            self.envelope_token(tok, at, depth_before);
        } else {
            self.write(tok, at);
        }
    }
}

// ---- the state machine -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first header segment (name, id, or type word).
    First,
    /// The name after the type word and separator.
    Typed,
    /// The id after an id marker.
    Id,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prose,
    /// Inside a section, between calls.
    Section,
    Header(Phase),
    /// After a type-word separator: arguments (the word was the name) or the name.
    AfterSep,
    /// Before the arguments; `fence`: 0 none, 1 in the language tag, 2 after it.
    BeforeArgs {
        fence: u8,
    },
    Args,
    AfterArgs {
        fence_closed: bool,
    },
    /// A raw-code body.
    Raw,
    /// The rest of a rejected call, as content, up to its close marker.
    Skip,
}

/// Per-call state outside the arguments.
#[derive(Debug, Default)]
struct Call {
    /// Header segment being read.
    seg: String,
    /// 0: leading whitespace, 1: in the word, 2: trailing whitespace.
    seg_pos: u8,
    /// The segment before a type-word separator.
    word1: String,
    name: String,
    lang: usize,
    scanner: Option<Box<Scanner>>,
    args: ArgState,
    /// Repairs of a call not decided yet.
    repairs: Vec<Repair>,
    /// Whitespace after the arguments.
    after_ws: String,
    /// Trailing whitespace of a raw body, held back.
    raw_ws: String,
    /// A header read at the very start of the output with no open marker (functionary_v32):
    /// if it is not one, the text is plain content, with no diagnostic.
    tentative: bool,
}

/// How a header's text scanned.
enum HeaderText {
    Ok,
    /// A `{` at this offset ends the name.
    Brace(usize),
    /// This offset cannot be part of a header.
    Invalid(usize),
}

impl Call {
    fn new(envelope: bool, start: usize) -> Self {
        Call {
            args: ArgState {
                writer: ArgsWriter::deferred(),
                envelope,
                start,
                offset: start,
                ..ArgState::default()
            },
            ..Call::default()
        }
    }

    fn take_seg(&mut self) -> String {
        self.seg_pos = 0;
        std::mem::take(&mut self.seg).trim().to_string()
    }

    /// Appends header text, checking that it can be a name.
    fn header_text(&mut self, text: &str, brace_ends: bool) -> HeaderText {
        for (k, &b) in text.as_bytes().iter().enumerate() {
            if b == b'{' && brace_ends {
                self.seg.push_str(&text[..k]);
                return HeaderText::Brace(k);
            }
            if is_ws(b) {
                if self.seg_pos == 1 {
                    self.seg_pos = 2;
                }
                continue;
            }
            if !name_byte(b) || self.seg_pos == 2 {
                self.seg.push_str(&text[..k]);
                return HeaderText::Invalid(k);
            }
            self.seg_pos = 1;
        }
        self.seg.push_str(text);
        HeaderText::Ok
    }
}

/// Where consumed text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Hold,
    Drop,
    Content,
}

/// The named-call state machine.
pub struct Named {
    spec: &'static NamedSpec,
    prose: Prose,
    lenient: bool,
    state: State,
    /// Close marker of the open section.
    section: Option<&'static str>,
    /// A call of the open section was started.
    committed: bool,
    /// Text whose fate is not decided yet (markup of a pending call or section).
    held: String,
    call: Call,
    first_set: Markers,
    typed_set: Markers,
    id_set: Markers,
    skip_set: Markers,
    raw_set: Markers,
    section_closes: Vec<&'static str>,
}

impl Named {
    /// `prose_spec` is the spec `prose` was built from: its dropped tokens and reasoning
    /// markers also end the content-skipping of a rejected call.
    pub fn new(spec: &'static NamedSpec, prose_spec: &ProseSpec, prose: Prose, lenient: bool) -> Self {
        let section_closes: Vec<&'static str> = spec.sections.iter().map(|s| s.1).collect();
        let mut aborts: Vec<&'static str> = spec.closes.to_vec();
        aborts.extend_from_slice(spec.opens);
        aborts.extend(section_closes.iter().copied());
        aborts.extend(spec.direct.iter().map(|d| d.0));
        aborts.extend_from_slice(spec.frames);
        let seps: &[&'static str] = spec.typed.map_or(&[], |t| t.seps);
        let typed_ends: &[&'static str] = spec.typed.map_or(&[], |t| t.name_ends);
        let with = |parts: &[&[&'static str]]| {
            let mut v = aborts.clone();
            for p in parts {
                v.extend_from_slice(p);
            }
            Markers::new(v)
        };
        let first_set = with(&[seps, spec.name_ends, spec.id_marks]);
        let typed_set = with(&[seps, typed_ends]);
        let id_set = with(&[spec.name_ends]);
        let mut skip: Vec<&'static str> = spec.closes.to_vec();
        skip.extend_from_slice(spec.opens);
        skip.extend(section_closes.iter().copied());
        skip.extend(spec.direct.iter().map(|d| d.0));
        skip.extend(prose_spec.strip.iter().copied());
        skip.extend(prose_spec.reasoning.iter().map(|r| r.0));
        let mut named = Named {
            spec,
            prose,
            lenient,
            state: State::Prose,
            section: None,
            committed: false,
            held: String::new(),
            call: Call::new(spec.envelope, 0),
            first_set,
            typed_set,
            id_set,
            skip_set: Markers::new(skip),
            raw_set: Markers::new(spec.raw_ends.to_vec()),
            section_closes,
        };
        if spec.header_at_start && !named.prose.in_reasoning() {
            named.state = State::Header(Phase::First);
            named.call.tentative = true;
        }
        named
    }

    fn route(&self) -> Route {
        match self.state {
            State::Prose | State::Skip => Route::Content,
            State::Section => {
                if self.committed {
                    Route::Drop
                } else {
                    Route::Hold
                }
            }
            _ => match self.call.args.mode {
                Mode::Pending => Route::Hold,
                Mode::Live => Route::Drop,
                Mode::Rejected => Route::Content,
            },
        }
    }

    fn content(&mut self, s: &str, out: &mut Emitter) {
        if !s.is_empty() {
            out.text(Channel::Content, s);
            self.prose.note_content();
        }
    }

    /// Consumed text, routed by the current state.
    fn take(&mut self, s: &str, out: &mut Emitter) {
        if s.is_empty() {
            return;
        }
        match self.route() {
            Route::Hold => {
                self.held.push_str(s);
                if self.held.len() > MAX_HELD && self.state == State::Section {
                    let h = std::mem::take(&mut self.held);
                    self.content(&h, out);
                }
            }
            Route::Drop => {}
            Route::Content => self.content(s, out),
        }
    }

    fn flush_held(&mut self, out: &mut Emitter) {
        let h = std::mem::take(&mut self.held);
        self.content(&h, out);
    }

    /// The current call is started: its held markup is dropped.
    fn commit(&mut self, out: &mut Emitter) {
        self.held.clear();
        self.committed = true;
        let repairs = std::mem::take(&mut self.call.repairs);
        out.diags(repairs);
    }

    /// The current call is not one: its held text becomes content.
    fn reject(&mut self, out: &mut Emitter, kind: &'static str, at: usize, message: &str) {
        if !kind.is_empty() {
            out.diag(kind, self.call.args.start, at.max(self.call.args.start), message);
        }
        if self.call.args.mode == Mode::Pending {
            self.flush_held(out);
        }
        self.call.args.mode = Mode::Rejected;
        self.call.repairs.clear();
    }

    /// Rejects a call whose markup is broken: the rest of it is content up to its close.
    fn reject_markup(&mut self, out: &mut Emitter, kind: &'static str, at: usize, message: &str) {
        let kind = if self.call.tentative { "" } else { kind };
        self.reject(out, kind, at, message);
        if self.spec.closes.is_empty() {
            self.after_call();
        } else {
            self.state = State::Skip;
        }
    }

    /// Back to the section or prose after a call.
    fn after_call(&mut self) {
        self.call = Call::new(self.spec.envelope, 0);
        self.state = if self.section.is_some() {
            State::Section
        } else {
            State::Prose
        };
    }

    /// A non-call frame: the open marker and header are dropped.
    fn drop_frame(&mut self) {
        self.held.clear();
        self.after_call();
    }

    fn end_call(&mut self, out: &mut Emitter) {
        if self.call.args.mode == Mode::Live {
            out.end_call();
        }
        self.after_call();
    }

    fn end_section(&mut self, close: &str, out: &mut Emitter) {
        if self.committed {
            self.held.clear();
        } else {
            self.held.push_str(close);
            self.flush_held(out);
        }
        self.section = None;
        self.committed = false;
        self.after_call();
    }

    /// A call-open (or direct) marker at absolute offset `abs`.
    fn open_call(&mut self, marker: &str, abs: usize) {
        if self.section.is_none() || self.committed {
            self.held.clear();
        }
        self.held.push_str(marker);
        self.call = Call::new(self.spec.envelope, abs);
    }

    /// A trigger found by the prose scanner.
    fn trigger(&mut self, marker: &str, abs: usize) {
        if let Some(&(open, close)) = self.spec.sections.iter().find(|s| s.0 == marker) {
            self.held.clear();
            self.held.push_str(open);
            self.section = Some(close);
            self.committed = false;
            self.state = State::Section;
        } else if let Some(&(_, fixed)) = self.spec.direct.iter().find(|d| d.0 == marker) {
            self.open_call(marker, abs);
            self.call.name = fixed.unwrap_or("").to_string();
            self.state = State::BeforeArgs { fence: 0 };
        } else {
            self.open_call(marker, abs);
            self.state = State::Header(Phase::First);
        }
    }

    /// The header is complete (`call.name` holds the name or id).
    fn header_done(&mut self, fence_open: bool, at: usize, out: &mut Emitter) {
        let mut name = self.call.name.trim().to_string();
        if let Some(prefix) = self.spec.name_in_id {
            let id = name.clone();
            name = name_from_id(&id, prefix).to_string();
            if !id.is_empty() {
                self.call.args.id = Some(id);
            }
        }
        if self.spec.text_names.contains(&name.as_str()) {
            self.drop_frame();
            return;
        }
        if name.is_empty() && !self.spec.envelope {
            self.reject_markup(
                out,
                "missing_name",
                at,
                "a tool call without a name was kept as content",
            );
            return;
        }
        self.call.name = name;
        self.state = State::BeforeArgs {
            fence: if fence_open { 1 } else { 0 },
        };
    }

    /// The arguments begin with `{` at absolute offset `abs`.
    fn begin_args(&mut self, abs: usize, out: &mut Emitter) {
        let a = &mut self.call.args;
        a.header_name = self.call.name.clone();
        a.offset = abs;
        if !self.spec.envelope && a.mode == Mode::Pending {
            let name = self.call.name.clone();
            begin_call(a, out, &name);
            match a.mode {
                Mode::Live => self.commit(out),
                _ => {
                    // Unknown tool: the call's text is content (accept_name said why).
                    self.flush_held(out);
                    self.call.repairs.clear();
                }
            }
        }
        self.call.scanner = Some(Box::new(Scanner::new(Dialect::Json, self.lenient, abs)));
        self.state = State::Args;
    }

    /// Routes text the scanner consumed, given the mode before the feed.
    fn route_args(&mut self, before: Mode, text: &str, repairs: Vec<Repair>, out: &mut Emitter) {
        match (before, self.call.args.mode) {
            (Mode::Pending, Mode::Live) => {
                self.call.repairs.extend(repairs);
                self.commit(out);
            }
            (Mode::Pending, Mode::Rejected) => {
                self.held.push_str(text);
                self.flush_held(out);
                self.call.repairs.clear();
            }
            (_, Mode::Pending) => {
                self.held.push_str(text);
                self.call.repairs.extend(repairs);
            }
            (_, Mode::Live) => out.diags(repairs),
            (_, Mode::Rejected) => self.content(text, out),
        }
    }

    /// Ends a live call whose arguments could not be read to their end.
    fn abandon(&mut self, at: usize, out: &mut Emitter) {
        if self.call.args.mode == Mode::Live {
            let tail = self.call.args.closing_tail();
            out.args(&tail);
            out.diags(self.call.args.writer.take_diags());
            out.diag(
                "truncated_arguments",
                self.call.args.start,
                at,
                "invalid JSON cut a call's arguments short",
            );
            out.end_call();
            // The rest of the call is content.
            self.call.args.mode = Mode::Rejected;
        } else if self.call.args.mode == Mode::Pending {
            self.reject(out, "invalid_arguments", at, "unreadable arguments; kept as content");
        }
        self.call.scanner = None;
        if self.spec.closes.is_empty() {
            self.after_call();
        } else {
            self.state = State::Skip;
        }
    }

    /// Raw-code body text.
    fn raw_text(&mut self, text: &str, out: &mut Emitter) {
        if text.is_empty() {
            return;
        }
        if self.call.args.mode != Mode::Live {
            self.content(text, out);
            return;
        }
        let body = text.trim_end();
        if body.is_empty() {
            self.call.raw_ws.push_str(text);
            return;
        }
        let mut s = String::new();
        crate::json::escape_into(&mut s, &self.call.raw_ws);
        self.call.raw_ws.clear();
        crate::json::escape_into(&mut s, body);
        self.call.raw_ws.push_str(&text[body.len()..]);
        out.args(&s);
    }

    fn feed_args(&mut self, input: &str, pos: usize, eof: bool, out: &mut Emitter) -> (usize, bool) {
        let Some(mut sc) = self.call.scanner.take() else {
            self.state = State::AfterArgs { fence_closed: false };
            return (pos, true);
        };
        let before = self.call.args.mode;
        let progress = {
            let mut sink = Sink {
                a: &mut self.call.args,
                out,
            };
            sc.feed(&input[pos..], &mut sink)
        };
        let consumed = match progress {
            Progress::Done { consumed } | Progress::Partial { consumed } | Progress::Error { consumed } => consumed,
        };
        let mut end = pos + consumed;
        let mut finished = false;
        if matches!(progress, Progress::Partial { .. }) && eof {
            // End of output inside the arguments: close them (truncation repair).
            end = input.len();
            let ok = {
                let mut sink = Sink {
                    a: &mut self.call.args,
                    out,
                };
                sc.finish(&mut sink)
            };
            finished = ok;
            if !ok {
                let repairs: Vec<Repair> = sc.repairs.drain(..).collect();
                self.route_args(before, &input[pos..end], repairs, out);
                self.abandon(out.base + end, out);
                return (end, true);
            }
        }
        let repairs: Vec<Repair> = sc.repairs.drain(..).collect();
        self.route_args(before, &input[pos..end], repairs, out);
        match progress {
            Progress::Error { .. } => {
                self.abandon(out.base + end, out);
                (end, true)
            }
            Progress::Done { .. } => {
                self.state = State::AfterArgs { fence_closed: false };
                (end, true)
            }
            Progress::Partial { .. } if finished => {
                self.state = State::AfterArgs { fence_closed: false };
                (end, true)
            }
            Progress::Partial { .. } => {
                if self.call.args.mode == Mode::Pending && self.held.len() > MAX_HELD {
                    self.reject(
                        out,
                        "not_a_call",
                        out.base + end,
                        "an undecided tool call grew too long; kept as content",
                    );
                }
                self.call.scanner = Some(sc);
                (end, false)
            }
        }
    }
}

impl Family for Named {
    fn feed(&mut self, input: &str, eof: bool, out: &mut Emitter) -> usize {
        out.set_id_style(self.spec.id_style);
        if self.call.tentative && self.state == State::Header(Phase::First) && out.base > 0 && self.call.seg.is_empty()
        {
            // Handed over mid-output (auto-detection): there is no start-of-output header.
            self.call.tentative = false;
            self.state = State::Prose;
        }
        let bytes = input.as_bytes();
        let mut pos = 0;
        loop {
            match self.state {
                State::Prose => match self.prose.scan(input, pos, eof, out) {
                    ProseStep::Trigger { at, len, .. } => {
                        let marker = &input[at..at + len];
                        pos = at + len;
                        self.trigger(marker, out.base + at);
                    }
                    ProseStep::BareJson { at } => {
                        // Not used by this family's formats: the bracket is text.
                        let end = at + 1;
                        self.content(&input[at..end], out);
                        pos = end;
                    }
                    ProseStep::Wait { consumed } => return consumed,
                },
                State::Section => {
                    let ws_end = skip_ws(input, pos);
                    self.take(&input[pos..ws_end], out);
                    pos = ws_end;
                    if pos >= input.len() {
                        if eof {
                            self.end_section("", out);
                            continue;
                        }
                        return pos;
                    }
                    match match_any(input, pos, &self.section_closes, eof) {
                        None => return pos,
                        Some(Some(m)) => {
                            pos += m.len();
                            self.end_section(m, out);
                            continue;
                        }
                        Some(None) => {}
                    }
                    match match_any(input, pos, self.spec.opens, eof) {
                        None => return pos,
                        Some(Some(m)) => {
                            self.open_call(m, out.base + pos);
                            pos += m.len();
                            self.state = State::Header(Phase::First);
                        }
                        // Anything else ends the section.
                        Some(None) => self.end_section("", out),
                    }
                }
                State::Header(phase) => {
                    let set = match phase {
                        Phase::First => &self.first_set,
                        Phase::Typed => &self.typed_set,
                        Phase::Id => &self.id_set,
                    };
                    let (end, found) = match set.find(input, pos, eof) {
                        Hit::Found(at, m) => (at, Some(m)),
                        Hit::Partial(at) => (at, None),
                        Hit::None => (input.len(), None),
                    };
                    let text = &input[pos..end];
                    match self.call.header_text(text, phase == Phase::Typed) {
                        HeaderText::Ok => {
                            self.take(text, out);
                            pos = end;
                        }
                        HeaderText::Brace(k) => {
                            self.take(&text[..k], out);
                            pos += k;
                            self.call.name = self.call.take_seg();
                            self.header_done(false, out.base + pos, out);
                            continue;
                        }
                        HeaderText::Invalid(k) => {
                            self.take(&text[..k], out);
                            pos += k;
                            self.reject_markup(
                                out,
                                "not_a_call",
                                out.base + pos,
                                "malformed tool-call header; kept as content",
                            );
                            continue;
                        }
                    }
                    if self.call.seg.len() > MAX_NAME {
                        self.reject_markup(
                            out,
                            "not_a_call",
                            out.base + pos,
                            "tool-call header too long; kept as content",
                        );
                        continue;
                    }
                    let Some(m) = found else {
                        if eof {
                            self.reject_markup(
                                out,
                                "not_a_call",
                                out.base + pos,
                                "unfinished tool-call header; kept as content",
                            );
                            continue;
                        }
                        return pos;
                    };
                    let spec = self.spec;
                    let seps: &[&str] = spec.typed.map_or(&[], |t| t.seps);
                    let typed_ends: &[&str] = spec.typed.map_or(&[], |t| t.name_ends);
                    let consume = |me: &mut Self, pos: &mut usize, out: &mut Emitter| {
                        me.take(m, out);
                        *pos += m.len();
                    };
                    match phase {
                        Phase::First if seps.contains(&m) => {
                            consume(self, &mut pos, out);
                            self.call.word1 = self.call.take_seg();
                            self.state = State::AfterSep;
                        }
                        Phase::First if spec.name_ends.contains(&m) => {
                            consume(self, &mut pos, out);
                            self.call.name = self.call.take_seg();
                            self.header_done(false, out.base + pos, out);
                        }
                        Phase::First if spec.id_marks.contains(&m) => {
                            consume(self, &mut pos, out);
                            self.call.name = self.call.take_seg();
                            self.state = State::Header(Phase::Id);
                        }
                        Phase::Typed if typed_ends.contains(&m) => {
                            consume(self, &mut pos, out);
                            self.call.name = self.call.take_seg();
                            self.header_done(m == FENCE, out.base + pos, out);
                        }
                        Phase::Id if spec.name_ends.contains(&m) => {
                            consume(self, &mut pos, out);
                            let id = self.call.take_seg();
                            if !id.is_empty() {
                                self.call.args.id = Some(id);
                            }
                            self.header_done(false, out.base + pos, out);
                        }
                        _ if spec.frames.contains(&m) => self.drop_frame(),
                        _ => self.reject_markup(
                            out,
                            "not_a_call",
                            out.base + pos,
                            "malformed tool-call header; kept as content",
                        ),
                    }
                }
                State::AfterSep => {
                    let ws_end = skip_ws(input, pos);
                    self.take(&input[pos..ws_end], out);
                    pos = ws_end;
                    let args_next = if pos >= input.len() {
                        if !eof {
                            return pos;
                        }
                        false
                    } else if bytes[pos] == b'{' {
                        true
                    } else if self.spec.fence {
                        match starts_with_marker(input, pos, FENCE, eof) {
                            None => return pos,
                            Some(v) => v,
                        }
                    } else {
                        false
                    };
                    let word = std::mem::take(&mut self.call.word1);
                    if args_next {
                        self.call.name = word;
                        self.header_done(false, out.base + pos, out);
                    } else if self.spec.typed.is_some_and(|t| t.word == word) {
                        self.call.seg_pos = 0;
                        self.state = State::Header(Phase::Typed);
                    } else {
                        let msg = format!(
                            "call type {word:?} is not {:?}; kept as content",
                            self.spec.typed.map_or("", |t| t.word)
                        );
                        self.reject_markup(out, "not_a_call", out.base + pos, &msg);
                    }
                }
                State::BeforeArgs { mut fence } => {
                    if fence == 1 {
                        // At most MAX_LANG + 1 tag bytes in all: the decision (over the cap or
                        // not) depends on the bytes only, never on where a chunk ends.
                        let room = (MAX_LANG + 1).saturating_sub(self.call.lang);
                        let lang_end = input[pos..]
                            .bytes()
                            .take(room)
                            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+')))
                            .map_or((pos + room).min(input.len()), |k| pos + k);
                        self.call.lang += lang_end - pos;
                        self.take(&input[pos..lang_end], out);
                        pos = lang_end;
                        if self.call.lang > MAX_LANG {
                            self.reject_markup(
                                out,
                                "invalid_arguments",
                                out.base + pos,
                                "the fence's language tag is too long; kept as content",
                            );
                            continue;
                        }
                        if pos >= input.len() && !eof {
                            return pos;
                        }
                        fence = 2;
                        self.state = State::BeforeArgs { fence };
                    }
                    let ws_end = skip_ws(input, pos);
                    self.take(&input[pos..ws_end], out);
                    pos = ws_end;
                    if pos >= input.len() {
                        if eof {
                            self.reject_markup(
                                out,
                                "invalid_arguments",
                                out.base + pos,
                                "a tool call without arguments was kept as content",
                            );
                            continue;
                        }
                        return pos;
                    }
                    if self.spec.fence && fence == 0 {
                        match starts_with_marker(input, pos, FENCE, eof) {
                            None => return pos,
                            Some(true) => {
                                self.take(FENCE, out);
                                pos += FENCE.len();
                                self.state = State::BeforeArgs { fence: 1 };
                                continue;
                            }
                            Some(false) => {}
                        }
                    }
                    if bytes[pos] == b'{' {
                        self.begin_args(out.base + pos, out);
                        continue;
                    }
                    let raw_key = self.spec.raw_tools.iter().find(|t| t.0 == self.call.name).map(|t| t.1);
                    match raw_key {
                        Some(key) if self.call.args.mode == Mode::Pending => {
                            let name = self.call.name.clone();
                            self.call.args.offset = out.base + pos;
                            begin_call(&mut self.call.args, out, &name);
                            if self.call.args.mode == Mode::Live {
                                self.commit(out);
                                let mut head = String::from("{\"");
                                crate::json::escape_into(&mut head, key);
                                head.push_str("\":\"");
                                out.args(&head);
                                self.state = State::Raw;
                            } else {
                                self.call.args.mode = Mode::Pending;
                                self.reject_markup(out, "", out.base + pos, "");
                            }
                        }
                        _ => self.reject_markup(
                            out,
                            "invalid_arguments",
                            out.base + pos,
                            "tool-call arguments are not a JSON object; kept as content",
                        ),
                    }
                }
                State::Args => {
                    let (next, go_on) = self.feed_args(input, pos, eof, out);
                    pos = next;
                    if !go_on {
                        return pos;
                    }
                }
                State::AfterArgs { fence_closed } => {
                    let ws_end = skip_ws(input, pos);
                    self.call.after_ws.push_str(&input[pos..ws_end]);
                    pos = ws_end;
                    if pos >= input.len() && !eof {
                        return pos;
                    }
                    if pos < input.len() {
                        if self.spec.fence && !fence_closed {
                            match starts_with_marker(input, pos, FENCE, eof) {
                                None => return pos,
                                Some(true) => {
                                    let ws = std::mem::take(&mut self.call.after_ws);
                                    self.take(&ws, out);
                                    self.take(FENCE, out);
                                    pos += FENCE.len();
                                    self.state = State::AfterArgs { fence_closed: true };
                                    continue;
                                }
                                Some(false) => {}
                            }
                        }
                        match match_any(input, pos, self.spec.closes, eof) {
                            None => return pos,
                            Some(Some(m)) => {
                                let ws = std::mem::take(&mut self.call.after_ws);
                                self.take(&ws, out);
                                self.take(m, out);
                                pos += m.len();
                                self.end_call(out);
                                continue;
                            }
                            Some(None) => {}
                        }
                    }
                    // No close marker: the call ends here.
                    let ws = std::mem::take(&mut self.call.after_ws);
                    let in_section = self.section.is_some();
                    let rejected = self.call.args.mode == Mode::Rejected;
                    self.end_call(out);
                    if rejected || !in_section {
                        self.content(&ws, out);
                    }
                }
                State::Raw => {
                    let (end, found) = match self.raw_set.find(input, pos, eof) {
                        Hit::Found(at, _) => (at, true),
                        Hit::Partial(at) => (at, false),
                        Hit::None => (input.len(), false),
                    };
                    let text = &input[pos..end];
                    self.raw_text(text, out);
                    pos = end;
                    if found || (eof && pos >= input.len()) {
                        if self.call.args.mode == Mode::Live {
                            out.args("\"}");
                        }
                        self.call.raw_ws.clear();
                        self.end_call(out);
                        continue;
                    }
                    return pos;
                }
                State::Skip => match self.skip_set.find(input, pos, eof) {
                    Hit::Found(at, m) => {
                        self.content(&input[pos..at], out);
                        pos = at;
                        if self.spec.closes.contains(&m) {
                            self.content(m, out);
                            pos += m.len();
                        }
                        self.after_call();
                    }
                    Hit::Partial(at) => {
                        self.content(&input[pos..at], out);
                        return at;
                    }
                    Hit::None => {
                        self.content(&input[pos..], out);
                        pos = input.len();
                        if !eof {
                            return pos;
                        }
                        self.after_call();
                    }
                },
            }
        }
    }
}

/// Appends `s` to `buf` up to `cap` bytes in all, cut at a character boundary; once a part
/// did not fit whole, `full` is set and nothing more is added. The result is the longest
/// prefix of whole characters within the cap, however the text was split into parts.
fn push_capped(buf: &mut String, full: &mut bool, s: &str, cap: usize) {
    if *full {
        return;
    }
    if buf.len() + s.len() <= cap {
        buf.push_str(s);
        return;
    }
    let mut end = cap.saturating_sub(buf.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.push_str(&s[..end]);
    *full = true;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::push_capped;
    use crate::event::{Event, ParseResult};
    use crate::families::test_support::normalize;
    use crate::parser::{Options, StreamParser};
    use crate::tools::ToolSet;

    fn run(format: &str, tools: Option<&str>, parts: &[&str]) -> (Vec<Event>, ParseResult) {
        let opts = Options {
            format: Some(format.to_string()),
            tools: tools.map(|t| Arc::new(ToolSet::from_json_str(t).expect("tools"))),
            id_seed: Some(7),
            ..Options::default()
        };
        let mut p = StreamParser::new(opts).expect("parser");
        let mut events = Vec::new();
        for part in parts {
            events.extend(p.feed(part).expect("feed"));
        }
        events.extend(p.finish().expect("finish"));
        (events, p.result())
    }

    /// Parses `text` whole and in every chunking by 1..=7 chars; all must agree.
    fn parse(format: &str, tools: Option<&str>, text: &str) -> ParseResult {
        let (events, whole) = run(format, tools, &[text]);
        let reference = normalize(events);
        let chars: Vec<char> = text.chars().collect();
        for size in 1..=7 {
            let parts: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let (events, result) = run(format, tools, &refs);
            assert_eq!(result, whole, "chunk size {size} of {text:?}");
            assert_eq!(normalize(events), reference, "events, chunk size {size} of {text:?}");
        }
        whole
    }

    fn calls(r: &ParseResult) -> Vec<(String, String)> {
        r.tool_calls
            .iter()
            .map(|c| (c.name.clone(), c.arguments.clone()))
            .collect()
    }

    fn call(name: &str, args: &str) -> (String, String) {
        (name.to_string(), args.to_string())
    }

    #[test]
    fn mistral_v11_keeps_the_written_id() {
        let r = parse(
            "mistral_v11",
            None,
            "Sure.[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]{\"city\": \"Paris\"}</s>",
        );
        assert_eq!(calls(&r), vec![call("get_weather", r#"{"city":"Paris"}"#)]);
        assert_eq!(r.tool_calls[0].id, "a1B2c3D4e");
        assert_eq!(r.content.as_deref(), Some("Sure."));
        let r = parse(
            "mistral_v11",
            None,
            "[TOOL_CALLS]a[CALL_ID]abcdefghi[ARGS]{\"x\":1}[TOOL_CALLS]b[CALL_ID]jklmnopqr[ARGS]{}",
        );
        assert_eq!(calls(&r), vec![call("a", r#"{"x":1}"#), call("b", "{}")]);
        assert_eq!(r.tool_calls[1].id, "jklmnopqr");
    }

    #[test]
    fn mistral_generated_ids_are_nine_alphanumerics() {
        let r = parse(
            "mistral_v13",
            None,
            "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}",
        );
        assert_eq!(r.tool_calls[0].id.len(), 9);
        assert!(r.tool_calls[0].id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn mistral_non_object_arguments_stay_content() {
        let r = parse("mistral_v13", None, "[TOOL_CALLS]get_weather[ARGS]\"Paris\" ok");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some("[TOOL_CALLS]get_weather[ARGS]\"Paris\" ok"));
        let r = parse("mistral_v13", None, "[TOOL_CALLS]not a name[ARGS]{}");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some("[TOOL_CALLS]not a name[ARGS]{}"));
    }

    #[test]
    fn unknown_tools_stay_content_and_later_calls_still_work() {
        let tools = r#"[{"type":"function","function":{"name":"get_weather","parameters":{}}}]"#;
        let text = "[TOOL_CALLS]nope[ARGS]{\"a\": 1}[TOOL_CALLS]Get-Weather[ARGS]{\"city\": \"Oslo\"}";
        let r = parse("mistral_v13", Some(tools), text);
        assert_eq!(calls(&r), vec![call("get_weather", r#"{"city":"Oslo"}"#)]);
        assert_eq!(r.content.as_deref(), Some("[TOOL_CALLS]nope[ARGS]{\"a\": 1}"));
        assert!(r.diagnostics.iter().any(|d| d.kind == "unknown_tool"));
    }

    #[test]
    fn functionary_v31_calls_and_text() {
        let text = "Let me check.<function=get_weather>{\"city\": \"Paris\"}</function>\n<function=get_time>{\"tz\": \"CET\"}</function>";
        let r = parse("functionary_v31", None, text);
        assert_eq!(
            calls(&r),
            vec![
                call("get_weather", r#"{"city":"Paris"}"#),
                call("get_time", r#"{"tz":"CET"}"#)
            ]
        );
        assert_eq!(r.content.as_deref(), Some("Let me check."));
        // Not a call: the name is followed by something else than `>`.
        let r = parse("functionary_v31", None, "a <function=x y>{}</function> b");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some("a <function=x y>{}</function> b"));
    }

    #[test]
    fn functionary_v31_python_tag_is_raw_code() {
        let r = parse(
            "functionary_v31",
            None,
            "<|python_tag|>print(\"hi\")\nx = 1\n<|eom_id|>",
        );
        assert_eq!(calls(&r), vec![call("python", r#"{"code":"print(\"hi\")\nx = 1"}"#)]);
        assert_eq!(r.content, None);
    }

    #[test]
    fn functionary_v32_recipients() {
        let text = ">>>all\nI'll look that up.>>>get_weather\n{\"city\": \"Paris\"}>>>get_time\n{\"tz\": \"CET\"}";
        let r = parse("functionary_v32", None, text);
        assert_eq!(
            calls(&r),
            vec![
                call("get_weather", r#"{"city":"Paris"}"#),
                call("get_time", r#"{"tz":"CET"}"#)
            ]
        );
        assert_eq!(r.content.as_deref(), Some("I'll look that up."));
        // The generation prompt ends with `>>>`, so the output may start with the recipient.
        let r = parse("functionary_v32", None, "get_weather\n{\"city\": \"Paris\"}");
        assert_eq!(calls(&r), vec![call("get_weather", r#"{"city":"Paris"}"#)]);
        let r = parse("functionary_v32", None, "all\nHello there!");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some("Hello there!"));
        let r = parse("functionary_v32", None, "Hello there, no recipient");
        assert_eq!(r.content.as_deref(), Some("Hello there, no recipient"));
        let r = parse("functionary_v32", None, ">>>python\nimport math\nprint(math.pi)\n");
        assert_eq!(
            calls(&r),
            vec![call("python", r#"{"code":"import math\nprint(math.pi)"}"#)]
        );
    }

    #[test]
    fn deepseek_reads_both_header_styles() {
        let v3 = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        let v31 = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        for f in ["deepseek_v3", "deepseek_v31"] {
            for t in [v3, v31] {
                let r = parse(f, None, t);
                assert_eq!(calls(&r), vec![call("get_weather", r#"{"city":"Paris"}"#)], "{f}: {t}");
                assert_eq!(r.content, None);
            }
        }
    }

    #[test]
    fn deepseek_rejected_call_in_a_committed_section() {
        let tools = r#"[{"name":"b"}]"#;
        let text = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>b<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁call▁begin｜>zz<｜tool▁sep｜>{\"q\": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜>after";
        let r = parse("deepseek_v31", Some(tools), text);
        assert_eq!(calls(&r), vec![call("b", "{}")]);
        assert_eq!(
            r.content.as_deref(),
            Some("<｜tool▁call▁begin｜>zz<｜tool▁sep｜>{\"q\": 1}<｜tool▁call▁end｜>after")
        );
    }

    #[test]
    fn kimi_ids_are_kept() {
        let text = "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_call_end|><|tool_calls_section_end|>";
        let r = parse("kimi_k2", None, text);
        assert_eq!(calls(&r), vec![call("get_weather", r#"{"city":"Paris"}"#)]);
        assert_eq!(r.tool_calls[0].id, "functions.get_weather:0");
    }

    #[test]
    fn truncated_arguments_are_closed() {
        let r = parse("kimi_k2", None, "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{\"a\": [1, {\"b\": \"x");
        assert_eq!(calls(&r), vec![call("f", r#"{"a":[1,{"b":"x"}]}"#)]);
    }

    #[test]
    fn inkling_envelope_and_frames() {
        let tools = r#"[{"name":"search"}]"#;
        let text = "<|message_model|><|content_thinking|>hmm<|end_message|><|message_model|><|content_text|>Hi.<|end_message|><|message_model|>search<|content_invoke_tool_json|>{\"args\":{\"q\":\"x\"},\"name\":\"search\"}<|end_message|><|content_model_end_sampling|>";
        let r = parse("inkling", Some(tools), text);
        assert_eq!(calls(&r), vec![call("search", r#"{"q":"x"}"#)]);
        assert_eq!(r.content.as_deref(), Some("Hi."));
        assert_eq!(r.reasoning.as_deref(), Some("hmm"));
        // Headerless frame, name after the arguments.
        let r = parse(
            "inkling",
            Some(tools),
            "<|content_invoke_tool_json|>{\"args\":{},\"name\":\"search\"}<|end_message|>",
        );
        assert_eq!(calls(&r), vec![call("search", "{}")]);
    }

    /// An envelope name over the cap is cut the same way whatever the chunking (the cap was
    /// checked before appending each part, so one big part could pass it: a fuzz find).
    #[test]
    fn long_envelope_names_are_capped_whatever_the_chunking() {
        let tools = r#"[{"name":"search"}]"#;
        for tail in ["c", "é", "👍x", "\"}<|end_message|>"] {
            for n in [1021, 1022, 1023, 1024, 1025, 1100] {
                let text = format!("<|content_invoke_tool_json|>{{\"name\":\"{}{tail}", "a".repeat(n));
                let r = parse("inkling", Some(tools), &text);
                let d = r
                    .diagnostics
                    .iter()
                    .find(|d| d.kind == "unknown_tool")
                    .expect("unknown_tool");
                assert!(d.message.len() < 1024 + 200, "{n}: {}", d.message.len());
            }
        }
        assert_eq!(
            (
                {
                    let (mut b, mut f) = (String::from("aa"), false);
                    push_capped(&mut b, &mut f, "éx", 3);
                    push_capped(&mut b, &mut f, "y", 3);
                    b
                },
                {
                    let (mut b, mut f) = (String::from("aa"), false);
                    push_capped(&mut b, &mut f, "é", 3);
                    push_capped(&mut b, &mut f, "x", 3);
                    b
                }
            ),
            ("aa".to_string(), "aa".to_string())
        );
    }

    #[test]
    fn auto_detection_tells_shared_markers_apart() {
        let cases: &[(&str, &str, &str)] = &[
            ("[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", "mistral_v13", "get_weather"),
            ("[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]{\"city\": \"Paris\"}", "mistral_v11", "get_weather"),
            ("[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {}}]", "mistral_array", "get_weather"),
            (
                "Hi<｜tool▁calls▁begin｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
                "deepseek_v3",
                "get_weather",
            ),
            (
                "<|tool▁calls▁begin|><|tool▁call▁begin|>function<|tool▁sep|>get_weather\n```json\n{}\n```<|tool▁call▁end|><|tool▁calls▁end|>",
                "deepseek_v3",
                "get_weather",
            ),
            ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>", "deepseek_v31", "get_weather"),
            ("<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{}<｜tool▁call▁end｜>", "deepseek_v31", "get_weather"),
            (
                "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>",
                "kimi_k2",
                "get_weather",
            ),
            ("<function=get_weather>{\"city\": \"Paris\"}</function>", "functionary_v31", "get_weather"),
            (">>>get_weather\n{\"city\": \"Paris\"}", "functionary_v32", "get_weather"),
            ("<|message_model|>get_weather<|content_invoke_tool_json|>{\"name\":\"get_weather\",\"args\":{}}<|end_message|>", "inkling", "get_weather"),
        ];
        for (text, format, name) in cases {
            let opts = Options {
                id_seed: Some(1),
                ..Options::default()
            };
            let mut p = StreamParser::new(opts).expect("parser");
            for ch in text.chars() {
                p.feed(&ch.to_string()).expect("feed");
            }
            p.finish().expect("finish");
            let r = p.result();
            assert_eq!(r.format, Some(*format), "{text}");
            assert_eq!(r.tool_calls.len(), 1, "{text}");
            assert_eq!(r.tool_calls[0].name, *name, "{text}");
        }
        // Ordinary text that looks a little like markup stays content.
        for text in [">>> print(1)", "a <function=x y> b", "[TOOL_CALLS] hello"] {
            let r = crate::parser::parse(text, Options::default()).expect("parse");
            assert!(r.tool_calls.is_empty(), "{text}");
            assert_eq!(r.content.as_deref(), Some(text.trim()), "{text}");
        }
    }

    #[test]
    fn unfinished_calls_at_the_end_of_output() {
        // Before the arguments began, nothing was started: the text is content.
        for text in [
            "Hi [TOOL_CALLS]get_wea",
            "Hi [TOOL_CALLS]get_weather[ARGS]",
            "Hi [TOOL_CALLS]get_weather[ARGS]  ",
        ] {
            let r = parse("mistral_v13", None, text);
            assert!(r.tool_calls.is_empty(), "{text}");
            assert_eq!(r.content.as_deref(), Some(text.trim_end()), "{text}");
        }
        let text = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n";
        let r = parse("deepseek_v3", None, text);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(text.trim_end()));
        // Once `{` was read the call is closed (truncation repair).
        let r = parse("mistral_v13", None, "[TOOL_CALLS]f[ARGS]{\"a\": \"x");
        assert_eq!(calls(&r), vec![call("f", r#"{"a":"x"}"#)]);
    }

    #[test]
    fn strict_mode_still_closes_a_started_call() {
        for text in [
            "[TOOL_CALLS]f[ARGS]{\"a\": 'x'} tail",
            "[TOOL_CALLS]f[ARGS]{\"a\": [1, ",
        ] {
            let opts = Options {
                format: Some("mistral_v13".into()),
                repair: false,
                id_seed: Some(1),
                ..Options::default()
            };
            let r = crate::parser::parse(text, opts).expect("parse");
            assert_eq!(r.tool_calls.len(), 1, "{text}");
            let v: serde_json::Value = serde_json::from_str(&r.tool_calls[0].arguments).expect("valid JSON");
            assert!(v.is_object(), "{text}");
        }
    }

    #[test]
    fn empty_and_stray_sections() {
        let r = parse("deepseek_v31", None, "a<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>b");
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            r.content.as_deref(),
            Some("a<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>b")
        );
        // A stray section close in prose is a special token.
        let r = parse("kimi_k2", None, "done<|tool_calls_section_end|>");
        assert_eq!(r.content.as_deref(), Some("done"));
        // A call-open marker with no section still reads a call.
        let r = parse(
            "kimi_k2",
            None,
            "x<|tool_call_begin|>functions.f:3<|tool_call_argument_begin|>{}<|tool_call_end|>y",
        );
        assert_eq!(calls(&r), vec![call("f", "{}")]);
        assert_eq!(r.content.as_deref(), Some("xy"));
    }

    #[test]
    fn reasoning_markup_is_never_a_call() {
        let r = parse("mistral_v13", None, "[THINK]maybe [TOOL_CALLS]f[ARGS]{}[/THINK]ok");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.reasoning.as_deref(), Some("maybe [TOOL_CALLS]f[ARGS]{}"));
        assert_eq!(r.content.as_deref(), Some("ok"));
    }

    #[test]
    fn a_rejected_call_ends_at_prose_tokens() {
        let r = parse("functionary_v31", None, "See <function=x> for details.<|eot_id|>");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some("See <function=x> for details."));
    }

    #[test]
    fn long_arguments_stream_in_linear_time() {
        let body = "x".repeat(300_000);
        let text = format!(
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{{\"a\": \"{body}\"}}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
        );
        let started = std::time::Instant::now();
        let (_, whole) = run("deepseek_v31", None, &[&text]);
        assert_eq!(whole.tool_calls.len(), 1);
        let chars: Vec<char> = text.chars().collect();
        let chunks: Vec<String> = chars.chunks(2).map(|c| c.iter().collect()).collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (_, streamed) = run("deepseek_v31", None, &refs);
        assert_eq!(streamed.tool_calls, whole.tool_calls);
        assert!(started.elapsed().as_secs() < 20, "too slow: {:?}", started.elapsed());
    }

    #[test]
    fn hostile_headers_are_bounded() {
        let long = format!("[TOOL_CALLS]{}[ARGS]{{}}", "a".repeat(10_000));
        let (_, r) = super::tests::run("mistral_v13", None, &[&long]);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(long.as_str()));
    }

    #[test]
    fn fence_language_cap_is_chunk_independent() {
        let head = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f```";
        let tail = "\n{}<｜tool▁call▁end｜>";
        // Within the cap the fenced arguments are read; over it the markup stays content.
        let text = format!("{head}{}{tail}", "S".repeat(16));
        assert_eq!(calls(&parse("deepseek_v3", None, &text)), vec![call("f", "{}")]);
        for n in [17, 18, 40] {
            let text = format!("{head}{}{tail}", "S".repeat(n));
            let r = parse("deepseek_v3", None, &text);
            assert!(r.tool_calls.is_empty(), "{n}");
        }
    }
}

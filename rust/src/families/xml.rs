//! XML-ish family: calls written as tags whose parameters are raw text, typed by the tool
//! schema (or by an attribute the model writes).
//!
//! Covers qwen3_xml, seed_oss, glm45, glm47, minimax_m2, step3, deepseek_dsml and kimi_k3.
//! One state machine reads them all; the formats differ only in data ([`XmlSpec`]):
//!
//! ```text
//! SECTION_OPEN  [filler…]  CALL_OPEN name CALL_END  { PARAM_OPEN key PARAM_END [VALUE_OPEN] value PARAM_CLOSE }  CALL_CLOSE  …  SECTION_CLOSE
//! ```
//!
//! * the name is the whole tag text (`<function=NAME>`), an attribute (`name="N"`,
//!   `tool="N"`), or (GLM, where the section is the call) the text up to a newline or `<`;
//! * keys likewise: `<parameter=KEY>`, `name="K"`/`key="K"` attributes, `<arg_key>K</arg_key>`;
//! * values: a string (schema or attribute says so) streams as JSON-escaped fragments while
//!   the model writes it; a typed value is held until complete and read as JSON (falling
//!   back to a string); without a schema, text that cannot start a JSON value streams as a
//!   string at once and the rest is inferred when complete.
//!
//! The call starts (and its `{` is emitted) as soon as the name is complete. Text of a
//! section that turns out not to hold a call is content, verbatim.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use crate::args::ArgsWriter;
use crate::emit::{Channel, Emitter};
use crate::families::{Family, Prose, ProseStep};
use crate::json::{self, Dialect, Progress, Scanner, Token, TokenSink};
use crate::marker::{Find, MarkerSet};
use crate::tools::{self, ValueKind};

/// Longest tag text (name, attributes) read before the markup is given up as not a tag.
const MAX_TAG: usize = 512;
/// Longest uncommitted section text held back (only whitespace and fillers can get here).
const MAX_RAW: usize = 1 << 16;

/// How a call's name or a parameter's key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameIn {
    /// The whole tag text between the open marker and the tag end: `<function=NAME>`.
    Whole,
    /// The first present attribute among these: `<invoke name="N">`, `tool="N"`.
    Attr(&'static [&'static str]),
}

/// One kind of tag: how it opens, where its open tag ends, how the name is given, how it
/// closes. Several spellings of the open/close markers may be listed.
#[derive(Debug, Clone, Copy)]
pub struct Tag {
    pub opens: &'static [&'static str],
    /// End of the open tag (`>`, `<|sep|>`, `</arg_key>`).
    pub end: &'static str,
    pub name: NameIn,
    pub closes: &'static [&'static str],
}

/// An attribute the model writes to type a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeAttr {
    None,
    /// `string="true"` (raw string) / `string="false"` (JSON) (DeepSeek DSML).
    StringFlag(&'static str),
    /// `type="T"`: `string` is raw, anything else JSON (Kimi-K3). Absent means string.
    TypeName(&'static str),
}

/// What schema-less values may be inferred as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Infer {
    /// Numbers, booleans, null, objects and arrays.
    Json,
    /// Numbers, booleans and null; JSON-looking objects/arrays stay strings (MiniMax).
    Scalars,
}

/// Data describing one XML-ish format.
#[derive(Debug, Clone)]
pub struct XmlSpec {
    /// Section markers (open, close); the opens are the format's prose triggers, in order.
    pub sections: &'static [(&'static str, &'static str)],
    /// The call tag inside a section; `None`: the section is the call and the name is the
    /// text right after the opener, up to a newline or `<` (GLM).
    pub call: Option<Tag>,
    /// Tokens skipped between calls inside a section (Step-3's per-call wrappers).
    pub fillers: &'static [&'static str],
    pub param: Tag,
    /// Optional marker opening a value after the key tag (GLM `<arg_value>`).
    pub value_open: Option<&'static str>,
    pub type_attr: TypeAttr,
    /// Values are trimmed.
    pub trim: bool,
    /// Named XML entities in values are decoded.
    pub entities: bool,
    pub infer: Infer,
    /// A call body starting with `{` is the whole arguments object (DSML).
    pub json_body: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    SectionOpen,
    SectionClose,
    CallOpen,
    CallClose,
    Filler,
    ParamOpen,
    ParamClose,
}

enum Hit {
    Found { at: usize, len: usize, kind: K },
    Partial { at: usize },
    None,
}

/// A marker set whose markers carry a kind.
#[derive(Debug, Clone)]
struct Markers {
    set: MarkerSet,
    kinds: Vec<K>,
}

impl Markers {
    fn new(groups: &[(K, Vec<String>)]) -> Self {
        let mut all = Vec::new();
        let mut kinds = Vec::new();
        for (k, ms) in groups {
            for m in ms {
                if !m.is_empty() && !all.contains(m) {
                    all.push(m.clone());
                    kinds.push(*k);
                }
            }
        }
        Markers {
            set: MarkerSet::new(&all),
            kinds,
        }
    }

    fn find(&self, input: &str, from: usize, eof: bool) -> Hit {
        match self.set.find(input, from, eof) {
            Find::Found { at, index } => Hit::Found {
                at,
                len: self.set.get(index).len(),
                kind: self.kinds[index],
            },
            Find::Partial { at } => Hit::Partial { at },
            Find::None => Hit::None,
        }
    }
}

fn owned(ms: &[&str]) -> Vec<String> {
    ms.iter().map(|s| s.to_string()).collect()
}

/// The marker sets the states search.
#[derive(Debug)]
struct Sets {
    between: Markers,
    in_call: Markers,
    value_end: Markers,
    body_end: Markers,
    pass: Markers,
    skip: Markers,
}

impl Sets {
    fn build(spec: &XmlSpec) -> Self {
        let section_opens: Vec<String> = spec.sections.iter().map(|s| s.0.to_string()).collect();
        let section_closes: Vec<String> = spec.sections.iter().map(|s| s.1.to_string()).collect();
        let call_opens = spec.call.map(|c| owned(c.opens)).unwrap_or_default();
        let call_closes = spec.call.map(|c| owned(c.closes)).unwrap_or_default();
        let param_opens = owned(spec.param.opens);
        // As a value terminator (a missing close), an attribute-style opener must be
        // followed by a space: `<parameter ` ends a value, `<parameters>` does not.
        let param_opens_in_value: Vec<String> = match spec.param.name {
            NameIn::Attr(_) => param_opens.iter().map(|o| format!("{o} ")).collect(),
            NameIn::Whole => param_opens.clone(),
        };
        Sets {
            between: Markers::new(&[
                (K::CallOpen, call_opens),
                (K::SectionClose, section_closes.clone()),
                (K::Filler, owned(spec.fillers)),
            ]),
            in_call: Markers::new(&[
                (K::ParamOpen, param_opens),
                (K::CallClose, call_closes.clone()),
                (K::SectionClose, section_closes.clone()),
            ]),
            value_end: Markers::new(&[
                (K::ParamClose, owned(spec.param.closes)),
                (K::ParamOpen, param_opens_in_value),
                (K::CallClose, call_closes.clone()),
                (K::SectionClose, section_closes.clone()),
            ]),
            body_end: Markers::new(&[
                (K::CallClose, call_closes.clone()),
                (K::SectionClose, section_closes.clone()),
            ]),
            pass: Markers::new(&[
                (K::SectionClose, section_closes.clone()),
                (K::SectionOpen, section_opens.clone()),
            ]),
            skip: Markers::new(&[
                (K::CallClose, call_closes),
                (K::SectionClose, section_closes),
                (K::SectionOpen, section_opens),
            ]),
        }
    }

    /// The sets of a registered (static) spec, built on first use and shared.
    fn for_spec(spec: &'static XmlSpec) -> Arc<Sets> {
        static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Sets>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = spec as *const XmlSpec as usize;
        map.entry(key).or_insert_with(|| Arc::new(Sets::build(spec))).clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prose,
    /// Inside a section, between calls.
    Between,
    /// Reading a call's open tag.
    CallTag,
    /// (GLM) Reading the name after the section opener.
    CallName,
    /// Inside a started call, between parameters.
    InCall,
    /// Reading a parameter's open tag.
    ParamTag,
    /// After the key, before the optional value opener (GLM).
    BeforeValue,
    Value,
    /// A JSON object as the whole call body (DSML).
    JsonBody,
    /// A section that holds no call: its text is content up to its close.
    Passthrough,
    /// A rejected call after an accepted one: its text is content up to its close.
    SkipCall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VMode {
    /// A string, streamed as it arrives.
    Str,
    /// A typed value, held until complete.
    Hold,
    /// No schema: held while it may still be a JSON scalar/container.
    Infer,
    /// An inferred container (`{`/`[`), held until complete.
    InferContainer,
}

/// The XML-ish state machine.
pub struct Xml {
    spec: &'static XmlSpec,
    prose: Prose,
    state: State,
    lenient: bool,
    /// The marker sets of each state (built once per format).
    m: Arc<Sets>,
    /// Section text not yet part of a started call (content if no call comes of it).
    raw: String,
    /// A call of the current section was started.
    committed: bool,
    /// Open tag text being read, quote state and last significant byte.
    tag: String,
    quote: Option<u8>,
    last_sig: u8,
    tag_start: usize,
    /// Declared name of the open call.
    call_name: String,
    n_params: usize,
    keys: HashSet<String>,
    /// The arguments object is closed (a JSON body ended it); later parameters are dropped.
    args_closed: bool,
    /// Non-space text was seen inside the call (a JSON body can only come first).
    body_seen: bool,
    junk_noted: bool,
    /// Between calls after a call: whitespace since the last marker, and whether stray
    /// text (content) is being copied.
    gap: String,
    stray_open: bool,
    // The open value.
    vmode: VMode,
    v_started: bool,
    v_ws: String,
    v_ent: String,
    v_held: String,
    /// Infer: the held text ends with whitespace.
    v_tail_ws: bool,
    v_start: usize,
    /// Key of the value being read (schema coercion of typed values).
    v_key: String,
    /// The value being read is dropped (a parameter the schema forbids).
    v_drop: bool,
    // JSON body.
    scanner: Option<Box<Scanner>>,
    body: BodySink,
    body_first: bool,
}

/// Writes a JSON body and remembers what is open, so that a cut body can still be closed.
#[derive(Debug, Default)]
struct BodySink {
    w: ArgsWriter,
    /// Open containers (true: object).
    stack: Vec<bool>,
    after_key: bool,
    in_string: bool,
}

impl TokenSink for BodySink {
    fn token(&mut self, tok: Token<'_>, at: usize) {
        match tok {
            Token::BeginObject => self.stack.push(true),
            Token::BeginArray => self.stack.push(false),
            Token::EndObject | Token::EndArray => {
                self.stack.pop();
            }
            Token::BeginString => self.in_string = true,
            Token::EndString => self.in_string = false,
            _ => {}
        }
        self.after_key = matches!(tok, Token::Key(_));
        self.w.token(tok, at);
    }
}

impl BodySink {
    /// Text that closes whatever is open (the writer also writes a held value).
    fn close_tail(&mut self) -> String {
        self.w.close_all();
        self.w.take()
    }
}

impl Xml {
    pub fn new(spec: &'static XmlSpec, prose: Prose, lenient: bool) -> Self {
        Xml {
            spec,
            prose,
            state: State::Prose,
            lenient,
            m: Sets::for_spec(spec),
            raw: String::new(),
            committed: false,
            tag: String::new(),
            quote: None,
            last_sig: 0,
            tag_start: 0,
            call_name: String::new(),
            n_params: 0,
            keys: HashSet::new(),
            args_closed: false,
            body_seen: false,
            junk_noted: false,
            gap: String::new(),
            stray_open: false,
            vmode: VMode::Str,
            v_started: false,
            v_ws: String::new(),
            v_ent: String::new(),
            v_held: String::new(),
            v_tail_ws: false,
            v_start: 0,
            v_key: String::new(),
            v_drop: false,
            scanner: None,
            body: BodySink::default(),
            body_first: true,
        }
    }

    // ----- content and raw section text -------------------------------------------------

    fn content(&mut self, out: &mut Emitter, s: &str) {
        if !s.is_empty() {
            out.text(Channel::Content, s);
            self.prose.note_content();
        }
    }

    /// Section text outside a started call: kept in case no call comes of it.
    fn eat(&mut self, s: &str) {
        self.raw.push_str(s);
    }

    fn flush_raw(&mut self, out: &mut Emitter) {
        let raw = std::mem::take(&mut self.raw);
        self.content(out, &raw);
    }

    fn open_section(&mut self, marker: &str) {
        self.raw.clear();
        self.raw.push_str(marker);
        self.committed = false;
        self.state = if self.spec.call.is_some() {
            State::Between
        } else {
            State::CallName
        };
        self.tag.clear();
    }

    /// The section ends with no open call.
    fn end_section(&mut self, out: &mut Emitter, at: usize) {
        if !self.committed {
            out.diag(
                "empty_tool_call",
                at,
                at,
                "a tool-call section with no call in it was dropped",
            );
        }
        self.raw.clear();
        self.state = State::Prose;
    }

    /// What was read is not a call. With no call from this section yet, the section is
    /// content up to its close; after one, only this call's text is.
    fn not_a_call(&mut self, out: &mut Emitter) {
        self.flush_raw(out);
        self.tag.clear();
        self.state = if !self.committed || self.spec.call.is_none() {
            State::Passthrough
        } else {
            State::SkipCall
        };
    }

    // ----- open tags ---------------------------------------------------------------------

    /// Reads open-tag text up to `end` (outside attribute quotes when `quotes`). Returns
    /// `Ok(Some(next))` when the tag is complete, `Ok(None)` with everything before
    /// `*consumed` taken when more input is needed, `Err(())` when it is too long or the
    /// output ended.
    fn scan_tag(
        &mut self,
        input: &str,
        pos: usize,
        eof: bool,
        end: &str,
        quotes: bool,
        consumed: &mut usize,
    ) -> Result<Option<usize>, ()> {
        let b = input.as_bytes();
        let e = end.as_bytes();
        let mut i = pos;
        while i < b.len() {
            if self.tag.len() + (i - pos) > MAX_TAG && input.is_char_boundary(i) {
                // Too long for a tag: given up at a fixed byte, whatever the chunking.
                self.tag.push_str(&input[pos..i]);
                *consumed = i;
                return Err(());
            }
            let c = b[i];
            if let Some(q) = self.quote {
                if c == q {
                    self.quote = None;
                    self.last_sig = c;
                }
                i += 1;
                continue;
            }
            if quotes && (c == b'"' || c == b'\'') && self.last_sig == b'=' {
                self.quote = Some(c);
                i += 1;
                continue;
            }
            if c == e[0] {
                let rest = &b[i..];
                if rest.len() >= e.len() {
                    if rest.starts_with(e) {
                        self.tag.push_str(&input[pos..i]);
                        return Ok(Some(i + e.len()));
                    }
                } else if e.starts_with(rest) && !eof {
                    self.tag.push_str(&input[pos..i]);
                    *consumed = i;
                    return Ok(None);
                }
            }
            if !c.is_ascii_whitespace() {
                self.last_sig = c;
            }
            i += 1;
        }
        self.tag.push_str(&input[pos..]);
        *consumed = input.len();
        if eof {
            Err(())
        } else {
            Ok(None)
        }
    }

    fn reset_tag(&mut self) {
        self.tag.clear();
        self.quote = None;
        self.last_sig = 0;
    }

    /// The name a finished call tag gives, if it is a well-formed call tag.
    fn call_tag_name(&self, tag: &Tag) -> Option<String> {
        match tag.name {
            NameIn::Whole => {
                let n = self.tag.trim();
                (!n.is_empty() && !n.contains(['<', '\n'])).then(|| n.to_string())
            }
            NameIn::Attr(keys) => {
                let attrs = parse_attrs(&self.tag)?;
                let n = keys
                    .iter()
                    .find_map(|k| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.trim().to_string()))?;
                (!n.is_empty()).then_some(n)
            }
        }
    }

    fn start_call(&mut self, out: &mut Emitter, name: &str, at: usize) -> bool {
        let start = self.tag_start;
        match out.accept_name(name, start, at) {
            Some(declared) => {
                out.start_call(&declared, None);
                out.args("{");
                self.call_name = declared;
                self.committed = true;
                self.raw.clear();
                self.n_params = 0;
                self.keys.clear();
                self.args_closed = false;
                self.body_seen = false;
                self.junk_noted = false;
                self.state = State::InCall;
                true
            }
            None => false,
        }
    }

    fn finish_call(&mut self, out: &mut Emitter) {
        if !self.args_closed {
            if let Some(root) = out.args_schema(&self.call_name) {
                let seen: Vec<String> = self.keys.iter().cloned().collect();
                // No span: where the call ends depends on how the output was read.
                for (key, default, diag) in crate::args::missing_defaults(&root, &seen) {
                    let mut s = String::new();
                    if self.n_params > 0 {
                        s.push(',');
                    }
                    s.push('"');
                    json::escape_into(&mut s, &key);
                    s.push_str("\":");
                    s.push_str(&default.to_string());
                    self.n_params += 1;
                    out.args(&s);
                    out.diag("default_filled", 0, 0, diag);
                }
            }
            out.args("}");
        }
        self.args_closed = true;
        self.scanner = None;
        self.gap.clear();
        self.stray_open = false;
        out.end_call();
    }

    /// Arguments text, unless the object was already closed by a JSON body.
    fn put(&mut self, out: &mut Emitter, s: &str) {
        if !self.args_closed {
            out.args(s);
        }
    }

    // ----- values ------------------------------------------------------------------------

    /// A parameter's key is known: writes it and opens the value.
    fn begin_value(&mut self, out: &mut Emitter, key: &str, attr_kind: Option<ValueKind>, at: usize) {
        let kind = attr_kind.unwrap_or_else(|| {
            let schema = out.tool(&self.call_name).and_then(|t| t.property(key));
            let k = tools::value_kind(schema);
            match (k, self.spec.type_attr) {
                // Kimi-K3 writes a type for every non-string value: untyped means string.
                (ValueKind::Unknown, TypeAttr::TypeName(_)) => ValueKind::String,
                _ => k,
            }
        });
        self.v_drop = !self.args_closed
            && out
                .args_schema(&self.call_name)
                .is_some_and(|root| crate::args::forbids(&root, key));
        if self.v_drop {
            // Read and dropped: the schema forbids this parameter.
            out.diag(
                "dropped_property",
                at,
                at,
                format!("/{key}: not allowed (additionalProperties is false); dropped"),
            );
            self.vmode = VMode::Hold;
            self.v_started = false;
            self.v_ws.clear();
            self.v_ent.clear();
            self.v_held.clear();
            self.v_tail_ws = false;
            self.v_start = at;
            return;
        }
        if !self.keys.insert(key.to_string()) && !self.args_closed {
            out.diag(
                "duplicate_key",
                at,
                at,
                format!("parameter {key:?} given twice; the last value wins"),
            );
        }
        let mut s = String::new();
        if self.n_params > 0 {
            s.push(',');
        }
        s.push('"');
        json::escape_into(&mut s, key);
        s.push_str("\":");
        self.n_params += 1;
        self.vmode = match kind {
            ValueKind::String => {
                s.push('"');
                VMode::Str
            }
            ValueKind::Typed => VMode::Hold,
            ValueKind::Unknown => VMode::Infer,
        };
        self.put(out, &s);
        self.v_started = false;
        self.v_ws.clear();
        self.v_ent.clear();
        self.v_held.clear();
        self.v_tail_ws = false;
        self.v_start = at;
        self.v_key.clear();
        self.v_key.push_str(key);
    }

    fn value_text(&mut self, out: &mut Emitter, s: &str) {
        if s.is_empty() {
            return;
        }
        if self.spec.entities {
            let mut buf = std::mem::take(&mut self.v_ent);
            buf.push_str(s);
            let keep = partial_entity_len(&buf);
            let (done, rest) = buf.split_at(buf.len() - keep);
            self.v_ent = rest.to_string();
            let decoded = decode_entities(done, false);
            self.value_decoded(out, &decoded);
        } else {
            self.value_decoded(out, s);
        }
    }

    fn value_decoded(&mut self, out: &mut Emitter, s: &str) {
        if s.is_empty() {
            return;
        }
        match self.vmode {
            VMode::Str => self.str_push(out, s),
            VMode::Hold | VMode::InferContainer => self.v_held.push_str(s),
            VMode::Infer => {
                self.v_held.push_str(s);
                let t = self.v_held.trim_start();
                let Some(&first) = t.as_bytes().first() else { return };
                let keep = match first {
                    b'{' | b'[' => self.spec.infer == Infer::Json,
                    b'"' => false,
                    // Longer than any literal: only a number can still match, and only the
                    // new text needs looking at (no quadratic rescans of long digit runs).
                    _ if t.len().saturating_sub(s.len()) > 16 => {
                        let mut tail_ws = self.v_tail_ws;
                        let ok = s.bytes().all(|b| {
                            if b.is_ascii_whitespace() {
                                tail_ws = true;
                                true
                            } else {
                                !tail_ws && (b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
                            }
                        });
                        self.v_tail_ws = tail_ws;
                        ok
                    }
                    _ => {
                        let body = t.trim_end();
                        self.v_tail_ws = body.len() < t.len();
                        scalar_prefix(body)
                    }
                };
                if keep && matches!(first, b'{' | b'[') {
                    self.vmode = VMode::InferContainer;
                } else if !keep {
                    self.vmode = VMode::Str;
                    self.put(out, "\"");
                    let held = std::mem::take(&mut self.v_held);
                    self.str_push(out, &held);
                }
            }
        }
    }

    fn str_push(&mut self, out: &mut Emitter, s: &str) {
        let mut buf = String::new();
        if !self.spec.trim {
            json::escape_into(&mut buf, s);
            self.put(out, &buf);
            return;
        }
        let s = if self.v_started { s } else { s.trim_start() };
        if s.is_empty() {
            return;
        }
        self.v_started = true;
        let body = s.trim_end();
        if body.is_empty() {
            self.v_ws.push_str(s);
            return;
        }
        json::escape_into(&mut buf, &self.v_ws);
        json::escape_into(&mut buf, body);
        self.v_ws.clear();
        self.v_ws.push_str(&s[body.len()..]);
        self.put(out, &buf);
    }

    fn end_value(&mut self, out: &mut Emitter) {
        if std::mem::take(&mut self.v_drop) {
            self.v_ent.clear();
            self.v_held.clear();
            self.vmode = VMode::Str;
            return;
        }
        let ent = std::mem::take(&mut self.v_ent);
        self.value_decoded(out, &ent);
        match self.vmode {
            VMode::Str => {
                self.v_ws.clear();
                self.put(out, "\"");
            }
            VMode::Hold | VMode::InferContainer | VMode::Infer => {
                let text = std::mem::take(&mut self.v_held);
                let t = text.trim();
                let typed = match self.vmode {
                    VMode::Infer => infer_scalar(t),
                    VMode::Hold => self.read_json(out, t).map(|v| self.coerce_typed(out, v)),
                    _ => self.read_json(out, t),
                };
                let v = typed.unwrap_or_else(|| {
                    let mut s = String::from("\"");
                    json::escape_into(&mut s, if self.spec.trim { t } else { &text });
                    s.push('"');
                    s
                });
                self.put(out, &v);
            }
        }
        self.vmode = VMode::Str;
    }

    /// A schema-typed value (compact JSON) made to fit its property's schema (enum spelling,
    /// a lone value where an array is wanted, ...), with the same rules as streamed JSON
    /// arguments.
    fn coerce_typed(&self, out: &mut Emitter, v: String) -> String {
        let Some(root) = out.args_schema(&self.call_name) else {
            return v;
        };
        let key = self.v_key.as_str();
        let Some(prop) = root.try_project(|n, _| n.get("properties")?.get(key)) else {
            return v;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&v) else {
            return v;
        };
        let path = crate::args::pointer_push("", &self.v_key);
        let (c, repairs) = crate::schema::coerce_in(&value, &prop, &root, &path);
        if repairs.is_empty() {
            return v;
        }
        let start = self.v_start;
        out.diags(repairs.into_iter().map(|mut r| {
            r.start = start;
            r.end = start;
            r
        }));
        c.to_string()
    }

    /// Reads a complete value as JSON (Python literals and the milder repairs allowed).
    fn read_json(&self, out: &mut Emitter, t: &str) -> Option<String> {
        if let Some(v) = infer_scalar(t) {
            return Some(v);
        }
        let (v, repairs, consumed) = json::rewrite(t, Dialect::Json, self.lenient)?;
        if !t[consumed..].trim().is_empty() || repairs.iter().any(|r| HARSH_REPAIRS.contains(&r.kind)) {
            return None;
        }
        let base = self.v_start;
        out.diags(repairs.into_iter().map(|mut r| {
            r.start += base;
            r.end += base;
            r
        }));
        Some(v)
    }

    // ----- the JSON body ---------------------------------------------------------------------

    fn body_write(&mut self, out: &mut Emitter) {
        let mut s = self.body.w.take();
        out.diags(self.body.w.take_diags());
        if self.body_first && s.starts_with('{') {
            s.remove(0);
            self.body_first = false;
        }
        if !s.is_empty() {
            out.args(&s);
        }
    }

    /// Ends a JSON body: closes what is open; the arguments object is then complete.
    fn body_end(&mut self, out: &mut Emitter, finish: bool) {
        if let Some(mut sc) = self.scanner.take() {
            let at = sc.offset();
            let ok = sc.is_done() || (finish && sc.finish(&mut self.body));
            out.diags(sc.repairs.drain(..));
            self.body_write(out);
            if !ok {
                let tail = self.body.close_tail();
                out.args(&tail);
                out.diags(self.body.w.take_diags());
                out.diag(
                    "truncated_arguments",
                    at,
                    at,
                    "invalid JSON cut a call's arguments short",
                );
            }
        }
        self.body = BodySink::default();
        // Nothing written: the `{` from the call start is still open.
        self.args_closed = !self.body_first;
    }
}

/// Repairs that mean the text was not really JSON: such a value stays a string.
const HARSH_REPAIRS: &[&str] = &[
    "truncated",
    "invalid_json",
    "bare_string",
    "missing_colon",
    "missing_comma",
    "unescaped_quote",
    "mismatched_bracket",
    "missing_value",
];

const LITERALS: &[(&str, &str)] = &[
    ("true", "true"),
    ("false", "false"),
    ("null", "null"),
    ("True", "true"),
    ("False", "false"),
    ("None", "null"),
];

/// Could `t` (no surrounding space) still grow into a JSON/Python scalar literal or number?
fn scalar_prefix(t: &str) -> bool {
    LITERALS.iter().any(|(l, _)| l.starts_with(t))
        || t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// A complete schema-less scalar: a literal or a number in strict JSON syntax (`007` and
/// `2024-12-25` stay strings).
fn infer_scalar(t: &str) -> Option<String> {
    if let Some((_, v)) = LITERALS.iter().find(|(l, _)| *l == t) {
        return Some(v.to_string());
    }
    // Integers must fit 64 bits and other numbers a finite double: longer digit runs
    // (ids, card numbers) would lose precision in clients, so they stay strings.
    let fits = if t.contains(['.', 'e', 'E']) {
        t.parse::<f64>().is_ok_and(f64::is_finite)
    } else {
        t.parse::<i64>().is_ok() || t.parse::<u64>().is_ok()
    };
    json::normalize_number(t).filter(|n| n == t && fits)
}

/// Length of a trailing `&…` that may still become an entity.
fn partial_entity_len(s: &str) -> usize {
    let Some(amp) = s.rfind('&') else { return 0 };
    let tail = &s[amp + 1..];
    if tail.len() < 10 && tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#') {
        s.len() - amp
    } else {
        0
    }
}

/// Decodes the five named XML entities (and numeric ones when `numeric`).
fn decode_entities(s: &str, numeric: bool) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let after = &rest[p..];
        let semi = after.find(';').filter(|&i| i <= 10);
        let decoded = semi.and_then(|i| {
            let name = &after[1..i];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ if numeric && (name.starts_with("#x") || name.starts_with("#X")) => {
                    u32::from_str_radix(&name[2..], 16).ok().and_then(char::from_u32)
                }
                _ if numeric && name.starts_with('#') => name[1..].parse::<u32>().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, i + 1))
        });
        match decoded {
            Some((c, n)) => {
                out.push(c);
                rest = &after[n..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses ` k="v" k2='v2' k3=v3` (must be empty or start with a space). Values are
/// entity-decoded.
fn parse_attrs(s: &str) -> Option<Vec<(String, String)>> {
    let s = s.strip_suffix('/').unwrap_or(s);
    if !s.is_empty() && !s.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Some(attrs);
        }
        let ks = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = s[ks..i].to_string();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            attrs.push((key, String::new()));
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            let q = b[i];
            let vs = i + 1;
            let mut j = vs;
            while j < b.len() && b[j] != q {
                j += 1;
            }
            i = (j + 1).min(b.len());
            &s[vs..j]
        } else {
            let vs = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            &s[vs..i]
        };
        attrs.push((key, decode_entities(value, true)));
    }
}

/// A GLM name: an identifier-like word (no spaces, no JSON punctuation).
fn line_name_ok(n: &str) -> bool {
    !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || "{}[]()\"',;=<>".contains(c))
}

impl Family for Xml {
    fn feed(&mut self, input: &str, eof: bool, out: &mut Emitter) -> usize {
        let spec = self.spec;
        let mut pos = 0;
        loop {
            match self.state {
                State::Prose => match self.prose.scan(input, pos, eof, out) {
                    ProseStep::Trigger { at, len, .. } => {
                        self.tag_start = out.base + at;
                        self.open_section(&input[at..at + len]);
                        pos = at + len;
                    }
                    ProseStep::BareJson { at } => {
                        self.prose.note_content();
                        pos = at;
                    }
                    ProseStep::Wait { consumed } => return consumed,
                },
                State::Between => {
                    let hit = self.m.between.find(input, pos, eof);
                    let upto = match hit {
                        Hit::Found { at, .. } | Hit::Partial { at } => at,
                        Hit::None => input.len(),
                    };
                    let text = &input[pos..upto];
                    if self.committed {
                        // After a call, text between calls that is not markup is content;
                        // the whitespace just before it goes with it.
                        if self.stray_open {
                            self.content(out, text);
                        } else if text.contains(|c: char| !c.is_whitespace()) {
                            let mut gap = std::mem::take(&mut self.gap);
                            gap.push_str(text);
                            self.content(out, &gap);
                            self.raw.clear();
                            self.stray_open = true;
                        } else {
                            self.gap.push_str(text);
                        }
                        pos = upto;
                        match hit {
                            Hit::Found { .. } => {
                                self.stray_open = false;
                                self.gap.clear();
                            }
                            Hit::Partial { at } => return at,
                            Hit::None => {
                                if eof {
                                    self.end_section(out, out.base + pos);
                                    continue;
                                }
                                return pos;
                            }
                        }
                    } else if let Some(k) = text.find(|c: char| !c.is_whitespace()) {
                        // Text that is not a call: the section is content.
                        self.eat(&text[..k]);
                        pos += k;
                        out.diag(
                            "not_a_call",
                            out.base + pos,
                            out.base + pos,
                            "text in a tool-call section that is not a call was kept as content",
                        );
                        self.not_a_call(out);
                        continue;
                    }
                    if !self.committed {
                        self.eat(text);
                    }
                    pos = upto;
                    match hit {
                        Hit::Found { at, len, kind } => {
                            self.eat(&input[at..at + len]);
                            pos = at + len;
                            match kind {
                                K::CallOpen => {
                                    self.tag_start = out.base + at;
                                    self.reset_tag();
                                    self.state = State::CallTag;
                                }
                                K::SectionClose => self.end_section(out, out.base + at),
                                _ => {}
                            }
                            if self.raw.len() > MAX_RAW {
                                self.not_a_call(out);
                            }
                        }
                        Hit::Partial { at } => return at,
                        Hit::None => {
                            if eof {
                                self.end_section(out, out.base + pos);
                                continue;
                            }
                            if self.raw.len() > MAX_RAW {
                                self.not_a_call(out);
                                continue;
                            }
                            return pos;
                        }
                    }
                }
                State::CallTag => {
                    let Some(tag) = spec.call else {
                        self.state = State::Passthrough;
                        continue;
                    };
                    let quotes = matches!(tag.name, NameIn::Attr(_));
                    let mut consumed = pos;
                    match self.scan_tag(input, pos, eof, tag.end, quotes, &mut consumed) {
                        Ok(Some(next)) => {
                            self.eat(&input[pos..next]);
                            pos = next;
                            let name = self.call_tag_name(&tag);
                            let ok = match name {
                                Some(n) => self.start_call(out, &n, out.base + pos),
                                None => {
                                    out.diag(
                                        "missing_name",
                                        self.tag_start,
                                        out.base + pos,
                                        "a call tag without a usable name was kept as content",
                                    );
                                    false
                                }
                            };
                            if !ok {
                                self.not_a_call(out);
                            }
                        }
                        Ok(None) => {
                            self.eat(&input[pos..consumed]);
                            return consumed;
                        }
                        Err(()) => {
                            self.eat(&input[pos..consumed]);
                            pos = consumed;
                            out.diag(
                                "not_a_call",
                                self.tag_start,
                                out.base + pos,
                                "an unfinished or overlong call tag was kept as content",
                            );
                            self.not_a_call(out);
                        }
                    }
                }
                State::CallName => {
                    // GLM: optional spaces, then the name up to a newline or `<`.
                    let b = input.as_bytes();
                    let mut i = pos;
                    if self.tag.is_empty() {
                        while i < b.len() && b[i].is_ascii_whitespace() {
                            i += 1;
                        }
                        self.eat(&input[pos..i]);
                        pos = i;
                    }
                    while i < b.len() && b[i] != b'\n' && b[i] != b'<' {
                        i += 1;
                    }
                    self.tag.push_str(&input[pos..i]);
                    self.eat(&input[pos..i]);
                    pos = i;
                    if self.tag.len() > MAX_TAG {
                        self.not_a_call(out);
                        continue;
                    }
                    if i == b.len() {
                        if eof {
                            self.not_a_call(out);
                            continue;
                        }
                        return pos;
                    }
                    if b[i] == b'\n' {
                        self.eat("\n");
                        pos += 1;
                    }
                    let name = self.tag.trim().to_string();
                    self.tag.clear();
                    let ok = line_name_ok(&name) && self.start_call(out, &name, out.base + pos);
                    if !ok {
                        if !line_name_ok(&name) {
                            out.diag(
                                "missing_name",
                                self.tag_start,
                                out.base + pos,
                                "a tool-call tag without a usable name was kept as content",
                            );
                        }
                        self.not_a_call(out);
                    }
                }
                State::InCall => {
                    let hit = self.m.in_call.find(input, pos, eof);
                    let upto = match hit {
                        Hit::Found { at, .. } | Hit::Partial { at } => at,
                        Hit::None => input.len(),
                    };
                    let text = &input[pos..upto];
                    if let Some(k) = text.find(|c: char| !c.is_whitespace()) {
                        if !self.body_seen && spec.json_body && self.n_params == 0 && text[k..].starts_with('{') {
                            self.body_seen = true;
                            self.scanner =
                                Some(Box::new(Scanner::new(Dialect::Json, self.lenient, out.base + pos + k)));
                            self.body = BodySink {
                                w: ArgsWriter::new(out.args_schema(&self.call_name)),
                                ..BodySink::default()
                            };
                            self.body_first = true;
                            self.state = State::JsonBody;
                            pos += k;
                            continue;
                        }
                        self.body_seen = true;
                        if !self.junk_noted {
                            self.junk_noted = true;
                            out.diag(
                                "stray_text",
                                out.base + pos + k,
                                out.base + pos + k,
                                "text inside a call that is not a parameter was ignored",
                            );
                        }
                    }
                    pos = upto;
                    match hit {
                        Hit::Found { at, len, kind } => {
                            pos = at + len;
                            match kind {
                                K::ParamOpen => {
                                    self.body_seen = true;
                                    self.tag_start = out.base + at;
                                    self.reset_tag();
                                    self.state = State::ParamTag;
                                }
                                K::CallClose => {
                                    self.finish_call(out);
                                    self.state = State::Between;
                                }
                                _ => {
                                    // Section close (GLM's call close).
                                    self.finish_call(out);
                                    self.end_section(out, out.base + at);
                                }
                            }
                        }
                        Hit::Partial { at } => return at,
                        Hit::None => {
                            if eof {
                                let at = out.base + pos;
                                out.diag("unclosed_call", at, at, "the output ended inside a call; it was closed");
                                self.finish_call(out);
                                self.end_section(out, at);
                                continue;
                            }
                            return pos;
                        }
                    }
                }
                State::ParamTag => {
                    let quotes = matches!(spec.param.name, NameIn::Attr(_));
                    let mut consumed = pos;
                    match self.scan_tag(input, pos, eof, spec.param.end, quotes, &mut consumed) {
                        Ok(Some(next)) => {
                            pos = next;
                            let at = out.base + pos;
                            let parsed = match spec.param.name {
                                NameIn::Whole => Some((self.tag.trim().to_string(), None)),
                                NameIn::Attr(keys) => parse_attrs(&self.tag).and_then(|attrs| {
                                    let key = keys
                                        .iter()
                                        .find_map(|k| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()))?;
                                    let kind = match spec.type_attr {
                                        TypeAttr::None => None,
                                        TypeAttr::StringFlag(a) => {
                                            attrs.iter().find(|(n, _)| n == a).and_then(|(_, v)| match v.trim() {
                                                "true" => Some(ValueKind::String),
                                                "false" => Some(ValueKind::Typed),
                                                _ => None,
                                            })
                                        }
                                        TypeAttr::TypeName(a) => attrs.iter().find(|(n, _)| n == a).map(|(_, v)| {
                                            if v.trim() == "string" {
                                                ValueKind::String
                                            } else {
                                                ValueKind::Typed
                                            }
                                        }),
                                    };
                                    Some((key, kind))
                                }),
                            };
                            self.reset_tag();
                            match parsed {
                                Some((key, kind)) => {
                                    self.begin_value(out, &key, kind, at);
                                    self.state = if spec.value_open.is_some() {
                                        State::BeforeValue
                                    } else {
                                        State::Value
                                    };
                                }
                                None => {
                                    out.diag(
                                        "stray_text",
                                        self.tag_start,
                                        at,
                                        "a parameter tag without a name was ignored",
                                    );
                                    self.state = State::InCall;
                                }
                            }
                        }
                        Ok(None) => return consumed,
                        Err(()) => {
                            pos = consumed;
                            self.reset_tag();
                            out.diag(
                                "truncated_arguments",
                                self.tag_start,
                                out.base + pos,
                                "an unfinished parameter tag was dropped",
                            );
                            self.state = State::InCall;
                        }
                    }
                }
                State::BeforeValue => {
                    let b = input.as_bytes();
                    let mut i = pos;
                    while i < b.len() && b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    let open = spec.value_open.unwrap_or("");
                    match crate::marker::starts_with_marker(input, i, open, eof) {
                        None => return pos,
                        Some(true) => {
                            pos = i + open.len();
                            self.state = State::Value;
                        }
                        Some(false) => {
                            if i == b.len() && !eof {
                                return pos;
                            }
                            if i < b.len() {
                                out.diag(
                                    "missing_value_open",
                                    out.base + i,
                                    out.base + i,
                                    "a value without its opening tag was read",
                                );
                            }
                            pos = i;
                            self.state = State::Value;
                        }
                    }
                }
                State::Value => {
                    let hit = self.m.value_end.find(input, pos, eof);
                    match hit {
                        Hit::Found { at, len, kind } => {
                            self.value_text(out, &input[pos..at]);
                            self.end_value(out);
                            self.state = State::InCall;
                            if kind == K::ParamClose {
                                pos = at + len;
                            } else {
                                out.diag(
                                    "unclosed_value",
                                    out.base + at,
                                    out.base + at,
                                    "a value's closing tag was missing",
                                );
                                pos = at;
                            }
                        }
                        Hit::Partial { at } => {
                            self.value_text(out, &input[pos..at]);
                            return at;
                        }
                        Hit::None => {
                            self.value_text(out, &input[pos..]);
                            pos = input.len();
                            if eof {
                                out.diag(
                                    "truncated_arguments",
                                    out.base + pos,
                                    out.base + pos,
                                    "the output ended inside a value",
                                );
                                self.end_value(out);
                                self.state = State::InCall;
                                continue;
                            }
                            return pos;
                        }
                    }
                }
                State::JsonBody => {
                    let hit = self.m.body_end.find(input, pos, eof);
                    let (upto, ended) = match hit {
                        Hit::Found { at, .. } => (at, true),
                        Hit::Partial { at } => (at, false),
                        Hit::None => (input.len(), eof),
                    };
                    let Some(mut sc) = self.scanner.take() else {
                        self.state = State::InCall;
                        continue;
                    };
                    let progress = sc.feed(&input[pos..upto], &mut self.body);
                    self.scanner = Some(sc);
                    match progress {
                        Progress::Done { consumed } => {
                            self.body_end(out, false);
                            pos += consumed;
                            self.state = State::InCall;
                        }
                        Progress::Partial { consumed } => {
                            self.body_write(out);
                            if ended {
                                self.body_end(out, true);
                                pos = upto;
                                self.state = State::InCall;
                            } else {
                                return pos + consumed;
                            }
                        }
                        Progress::Error { consumed } => {
                            self.body_end(out, false);
                            pos += consumed;
                            self.state = State::InCall;
                        }
                    }
                }
                State::Passthrough => match self.m.pass.find(input, pos, eof) {
                    Hit::Found { at, len, kind } => {
                        if kind == K::SectionClose {
                            self.content(out, &input[pos..at + len]);
                            pos = at + len;
                        } else {
                            self.content(out, &input[pos..at]);
                            pos = at;
                        }
                        self.raw.clear();
                        self.state = State::Prose;
                    }
                    Hit::Partial { at } => {
                        self.content(out, &input[pos..at]);
                        return at;
                    }
                    Hit::None => {
                        self.content(out, &input[pos..]);
                        return input.len();
                    }
                },
                State::SkipCall => match self.m.skip.find(input, pos, eof) {
                    Hit::Found { at, len, kind } => match kind {
                        K::CallClose => {
                            self.content(out, &input[pos..at + len]);
                            pos = at + len;
                            self.gap.clear();
                            self.stray_open = false;
                            self.state = State::Between;
                        }
                        K::SectionClose => {
                            self.content(out, &input[pos..at]);
                            pos = at + len;
                            self.end_section(out, out.base + at);
                        }
                        _ => {
                            self.content(out, &input[pos..at]);
                            pos = at;
                            self.state = State::Prose;
                        }
                    },
                    Hit::Partial { at } => {
                        self.content(out, &input[pos..at]);
                        return at;
                    }
                    Hit::None => {
                        self.content(out, &input[pos..]);
                        return input.len();
                    }
                },
            }
        }
    }
}

/// The data of each XML-ish format.
pub mod specs {
    use super::{Infer, NameIn, Tag, TypeAttr, XmlSpec};

    const QWEN_CALL: Tag = Tag {
        opens: &["<function="],
        end: ">",
        name: NameIn::Whole,
        closes: &["</function>"],
    };
    const QWEN_PARAM: Tag = Tag {
        opens: &["<parameter="],
        end: ">",
        name: NameIn::Whole,
        closes: &["</parameter>"],
    };

    fn qwen_like(sections: &'static [(&'static str, &'static str)]) -> XmlSpec {
        XmlSpec {
            sections,
            call: Some(QWEN_CALL),
            fillers: &[],
            param: QWEN_PARAM,
            value_open: None,
            type_attr: TypeAttr::None,
            trim: true,
            entities: false,
            infer: Infer::Json,
            json_body: false,
        }
    }

    /// `<tool_call>\n<function=NAME>\n<parameter=k>\nv\n</parameter>\n</function>\n</tool_call>`.
    pub fn qwen3_xml() -> XmlSpec {
        qwen_like(&[("<tool_call>", "</tool_call>")])
    }

    /// qwen3_xml inside `<seed:tool_call>`.
    pub fn seed_oss() -> XmlSpec {
        qwen_like(&[("<seed:tool_call>", "</seed:tool_call>")])
    }

    /// `<tool_call>NAME\n<arg_key>k</arg_key>\n<arg_value>v</arg_value>\n</tool_call>`
    /// (GLM-4.5/4.6), or the same without newlines (GLM-4.7/5).
    pub fn glm() -> XmlSpec {
        XmlSpec {
            sections: &[("<tool_call>", "</tool_call>")],
            call: None,
            fillers: &[],
            param: Tag {
                opens: &["<arg_key>"],
                end: "</arg_key>",
                name: NameIn::Whole,
                closes: &["</arg_value>"],
            },
            value_open: Some("<arg_value>"),
            type_attr: TypeAttr::None,
            trim: true,
            entities: false,
            infer: Infer::Json,
            json_body: false,
        }
    }

    /// `<minimax:tool_call>\n<invoke name="N">\n<parameter name="k">v</parameter>\n</invoke>\n</minimax:tool_call>`.
    pub fn minimax_m2() -> XmlSpec {
        XmlSpec {
            sections: &[("<minimax:tool_call>", "</minimax:tool_call>")],
            call: Some(Tag {
                opens: &["<invoke"],
                end: ">",
                name: NameIn::Attr(&["name"]),
                closes: &["</invoke>"],
            }),
            fillers: &[],
            param: Tag {
                opens: &["<parameter"],
                end: ">",
                name: NameIn::Attr(&["name"]),
                closes: &["</parameter>"],
            },
            value_open: None,
            type_attr: TypeAttr::None,
            trim: false,
            entities: true,
            infer: Infer::Scalars,
            json_body: false,
        }
    }

    /// `<｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name="N">…`.
    pub fn step3() -> XmlSpec {
        XmlSpec {
            sections: &[("<｜tool_calls_begin｜>", "<｜tool_calls_end｜>")],
            call: Some(Tag {
                opens: &["<steptml:invoke"],
                end: ">",
                name: NameIn::Attr(&["name"]),
                closes: &["</steptml:invoke>"],
            }),
            fillers: &["<｜tool_call_begin｜>", "function<｜tool_sep｜>", "<｜tool_call_end｜>"],
            param: Tag {
                opens: &["<steptml:parameter"],
                end: ">",
                name: NameIn::Attr(&["name"]),
                closes: &["</steptml:parameter>"],
            },
            value_open: None,
            type_attr: TypeAttr::None,
            trim: true,
            entities: false,
            infer: Infer::Json,
            json_body: false,
        }
    }

    /// `<｜DSML｜function_calls>` (V3.2), `<｜DSML｜tool_calls>` (V4), `<｜DSML｜ calls>` (V4.1),
    /// holding `<｜DSML｜invoke name="N">` calls with `string="true|false"` parameters or a
    /// JSON body.
    pub fn deepseek_dsml() -> XmlSpec {
        XmlSpec {
            sections: &[
                ("<｜DSML｜function_calls>", "</｜DSML｜function_calls>"),
                ("<｜DSML｜tool_calls>", "</｜DSML｜tool_calls>"),
                ("<｜DSML｜ calls>", "</｜DSML｜ calls>"),
            ],
            call: Some(Tag {
                opens: &["<｜DSML｜invoke", "<｜DSML｜ invoke"],
                end: ">",
                name: NameIn::Attr(&["name"]),
                closes: &["</｜DSML｜invoke>", "</｜DSML｜ invoke>"],
            }),
            fillers: &[],
            param: Tag {
                opens: &["<｜DSML｜parameter", "<｜DSML｜ parameter"],
                end: ">",
                name: NameIn::Attr(&["name"]),
                closes: &["</｜DSML｜parameter>", "</｜DSML｜ parameter>"],
            },
            value_open: None,
            type_attr: TypeAttr::StringFlag("string"),
            trim: true,
            entities: false,
            infer: Infer::Json,
            json_body: true,
        }
    }

    /// XTML: `<|open|>tools<|sep|><|open|>call tool="N" index="1"<|sep|><|open|>argument key="k"
    /// type="T"<|sep|>v<|close|>argument<|sep|><|close|>call<|sep|><|close|>tools<|sep|>`.
    pub fn kimi_k3() -> XmlSpec {
        XmlSpec {
            sections: &[("<|open|>tools<|sep|>", "<|close|>tools<|sep|>")],
            call: Some(Tag {
                opens: &["<|open|>call"],
                end: "<|sep|>",
                name: NameIn::Attr(&["tool", "name"]),
                closes: &["<|close|>call<|sep|>"],
            }),
            fillers: &[],
            param: Tag {
                opens: &["<|open|>argument"],
                end: "<|sep|>",
                name: NameIn::Attr(&["key", "name"]),
                closes: &["<|close|>argument<|sep|>"],
            },
            value_open: None,
            type_attr: TypeAttr::TypeName("type"),
            trim: false,
            entities: false,
            infer: Infer::Json,
            json_body: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::families::test_support::{self, calls, normalize, one, opts, stream};

    use crate::event::Event;
    use crate::parser::StreamParser;

    use crate::ParseResult;

    /// Parses whole and in many chunkings; all must agree, and the argument fragments
    /// must concatenate to each call's arguments. Returns the whole result.
    fn check_with(format: Option<&str>, tools: Option<&str>, text: &str) -> ParseResult {
        let whole = test_support::check(format, tools, text);
        let (ref_events, _) = stream(text, opts(format, tools), usize::MAX);
        for (i, call) in whole.tool_calls.iter().enumerate() {
            let args: String = ref_events
                .iter()
                .filter_map(|e| match e {
                    Event::ToolCallArgs { index, text } if *index == i => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(args, call.arguments, "fragments of call {i}");
            let v: serde_json::Value = serde_json::from_str(&call.arguments).expect("arguments are JSON");
            assert!(v.is_object(), "arguments are an object: {}", call.arguments);
        }
        whole
    }

    fn check(format: &str, text: &str) -> ParseResult {
        check_with(Some(format), None, text)
    }

    const WEATHER_TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"},"days":{"type":"integer"},"zip":{"type":"string"}}}}}]"#;

    // seed_oss: the examples of formats.md and of vLLM's Seed-OSS tests.

    #[test]
    fn seed_oss_formats_md_example() {
        let r = check("seed_oss", "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n</function>\n</seed:tool_call>");
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"Paris"}"#));
        assert_eq!(r.content, None);
    }

    #[test]
    fn seed_oss_plain_text() {
        let r = check("seed_oss", "This is a test response without any tool calls");
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            r.content.as_deref(),
            Some("This is a test response without any tool calls")
        );
    }

    #[test]
    fn seed_oss_with_schema_and_budget_reflections() {
        let text = "<seed:think>The user's current thinking budget is 512.</seed:cot_budget_reflect>\nLet me analyze the question.\n<seed:cot_budget_reflect>I have used 131 tokens, and there are 381 tokens remaining for use.</seed:cot_budget_reflect>\n The unit parameter can be omitted since it's optional.</seed:think>\n<seed:tool_call>\n<function=get_weather>\n<parameter=location>Barcelona, Spain</parameter>\n</function>\n</seed:tool_call>";
        let r = check_with(Some("seed_oss"), Some(WEATHER_TOOLS), text);
        assert_eq!(calls(&r), one("get_weather", r#"{"location":"Barcelona, Spain"}"#));
        assert_eq!(r.content, None);
        let reasoning = r.reasoning.expect("reasoning");
        assert!(reasoning.starts_with("The user's current thinking budget is 512."));
        assert!(reasoning.ends_with("since it's optional."));
    }

    #[test]
    fn seed_oss_markup_inside_reasoning_is_not_a_call() {
        let text = "<seed:think>\nThe format is <seed:tool_call>\n<function=get_weather>\n<parameter=location>Barcelona, Spain</parameter>\n<parameter=unit>celsius</parameter>\n</function>\n</seed:tool_call>. Let me go with that.</seed:think><seed:tool_call>\n<function=get_weather>\n<parameter=location>Barcelona, Spain</parameter>\n<parameter=unit>celsius</parameter>\n</function>\n</seed:tool_call>";
        let r = check_with(Some("seed_oss"), Some(WEATHER_TOOLS), text);
        assert_eq!(
            calls(&r),
            one("get_weather", r#"{"location":"Barcelona, Spain","unit":"celsius"}"#)
        );
        assert!(r.reasoning.expect("reasoning").contains("<function=get_weather>"));
    }

    #[test]
    fn seed_oss_two_calls_and_text_between() {
        let text = "Checking both.\n<seed:tool_call>\n<function=get_weather>\n<parameter=location>Paris</parameter>\n<parameter=days>3</parameter>\n</function>\n</seed:tool_call>\nand\n<seed:tool_call>\n<function=get_weather>\n<parameter=location>Rome</parameter>\n</function>\n</seed:tool_call>";
        let r = check_with(Some("seed_oss"), Some(WEATHER_TOOLS), text);
        assert_eq!(
            calls(&r),
            vec![
                (
                    "get_weather".to_string(),
                    r#"{"location":"Paris","days":3}"#.to_string()
                ),
                ("get_weather".to_string(), r#"{"location":"Rome"}"#.to_string()),
            ]
        );
        assert_eq!(r.content.as_deref(), Some("Checking both.\n\nand"));
    }

    // Value typing.

    #[test]
    fn schema_decides_string_or_number() {
        let text = "<tool_call>\n<function=get_weather>\n<parameter=zip>\n02139\n</parameter>\n<parameter=days>\n007\n</parameter>\n</function>\n</tool_call>";
        let r = check_with(Some("qwen3_xml"), Some(WEATHER_TOOLS), text);
        assert_eq!(calls(&r), one("get_weather", r#"{"zip":"02139","days":7}"#));
        // Without a schema only strict JSON numbers become numbers.
        let r = check("qwen3_xml", text);
        assert_eq!(calls(&r), one("get_weather", r#"{"zip":"02139","days":"007"}"#));
    }

    #[test]
    fn long_numbers_and_literal_lookalikes() {
        let digits = "1".repeat(3000);
        let text = format!("<tool_call>\n<function=f>\n<parameter=a>\n{digits}\n</parameter>\n<parameter=b>  tru{digits}</parameter>\n<parameter=c>{digits} 1</parameter>\n<parameter=d>  {digits}x</parameter>\n</function>\n</tool_call>");
        let r = check("qwen3_xml", &text);
        // Too long for a 64-bit integer: kept as a string.
        let want = format!(r#"{{"a":"{digits}","b":"tru{digits}","c":"{digits} 1","d":"{digits}x"}}"#);
        assert_eq!(calls(&r), one("f", &want));
    }

    #[test]
    fn schemaless_inference() {
        let text = "<tool_call>\n<function=f>\n<parameter=a>-1.5e3</parameter>\n<parameter=b>nullable</parameter>\n<parameter=c>[1, 'x',]</parameter>\n<parameter=d>{not json</parameter>\n<parameter=e>\"quoted\"</parameter>\n<parameter=f>True</parameter>\n<parameter=g>2024-12-25</parameter>\n</function>\n</tool_call>";
        let r = check("qwen3_xml", text);
        assert_eq!(
            calls(&r),
            one(
                "f",
                r#"{"a":-1.5e3,"b":"nullable","c":[1,"x"],"d":"{not json","e":"\"quoted\"","f":true,"g":"2024-12-25"}"#
            )
        );
    }

    #[test]
    fn string_values_stream_before_they_end() {
        let mut p = StreamParser::new(opts(Some("qwen3_xml"), None)).expect("parser");
        let mut events = p
            .feed("<tool_call>\n<function=write>\n<parameter=text>\nHello wor")
            .expect("feed");
        events.extend(p.feed("ld\n  ").expect("feed"));
        let events = normalize(events);
        assert!(matches!(&events[0], Event::ToolCallStart { name, .. } if name == "write"));
        assert_eq!(
            events[1],
            Event::ToolCallArgs {
                index: 0,
                text: "{\"text\":\"Hello world".into()
            }
        );
        let rest = normalize(p.feed("</parameter>\n</function>\n</tool_call>").expect("feed"));
        assert_eq!(
            rest[0],
            Event::ToolCallArgs {
                index: 0,
                text: "\"}".into()
            }
        );
    }

    #[test]
    fn the_call_starts_when_the_name_is_complete() {
        let mut p = StreamParser::new(opts(Some("minimax_m2"), None)).expect("parser");
        let events = p.feed("<minimax:tool_call>\n<invoke name=\"search\"").expect("feed");
        assert!(events.iter().all(|e| !matches!(e, Event::ToolCallStart { .. })));
        let events = p.feed(">\n<param").expect("feed");
        assert!(matches!(&events[0], Event::ToolCallStart { name, .. } if name == "search"));
    }

    #[test]
    fn minimax_entities_and_no_trim() {
        let text = "<minimax:tool_call>\n<invoke name=\"p\">\n<parameter name=\"code\"> if (a &amp;&amp; b) &lt;x&gt; &#60; &bogus; & </parameter>\n<parameter name=\"n\">3</parameter>\n<parameter name=\"obj\">{\"a\": 1}</parameter>\n</invoke>\n</minimax:tool_call>";
        let r = check("minimax_m2", text);
        assert_eq!(
            calls(&r),
            one(
                "p",
                r#"{"code":" if (a && b) <x> &#60; &bogus; & ","n":3,"obj":"{\"a\": 1}"}"#
            )
        );
    }

    // Markup that is not a call.

    #[test]
    fn unknown_tool_stays_content() {
        let text = "<tool_call>\n<function=launch>\n<parameter=x>1</parameter>\n</function>\n</tool_call>";
        let r = check_with(Some("qwen3_xml"), Some(WEATHER_TOOLS), text);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(text));
        assert!(r.diagnostics.iter().any(|d| d.kind == "unknown_tool"));
    }

    #[test]
    fn unknown_tool_after_a_known_one_in_the_same_section() {
        let tools = r#"[{"name":"search"}]"#;
        let text = "<minimax:tool_call>\n<invoke name=\"search\">\n<parameter name=\"q\">a</parameter>\n</invoke>\n<invoke name=\"nope\">\n<parameter name=\"q\">b</parameter>\n</invoke>\n<invoke name=\"search\">\n<parameter name=\"q\">c</parameter>\n</invoke>\n</minimax:tool_call>";
        let r = check_with(Some("minimax_m2"), Some(tools), text);
        assert_eq!(
            calls(&r),
            vec![
                ("search".to_string(), r#"{"q":"a"}"#.to_string()),
                ("search".to_string(), r#"{"q":"c"}"#.to_string())
            ]
        );
        assert_eq!(
            r.content.as_deref(),
            Some("<invoke name=\"nope\">\n<parameter name=\"q\">b</parameter>\n</invoke>")
        );
    }

    #[test]
    fn glm_prose_after_the_marker_is_content() {
        let text = "Use <tool_call> tags to call tools.\nDone.";
        let r = check("glm45", text);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(text));
    }

    #[test]
    fn a_bare_opener_at_the_end_is_dropped() {
        let r = check("qwen3_xml", "hi there<tool_call>\n");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some("hi there"));
    }

    #[test]
    fn hostile_long_name_is_content() {
        let text = format!("<tool_call>\n<function={}", "a".repeat(5000));
        let r = check("qwen3_xml", &text);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(text.as_str()));
        let text = format!("<tool_call>{}", "b".repeat(5000));
        let r = check("glm47", &text);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(text.as_str()));
    }

    #[test]
    fn truncated_call_is_closed() {
        let r = check("glm47", "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Par");
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"Par"}"#));
        let r = check(
            "kimi_k3",
            "<|open|>tools<|sep|><|open|>call tool=\"f\"<|sep|><|open|>argument key=\"n\" type=\"number\"<|sep|>4",
        );
        assert_eq!(calls(&r), one("f", r#"{"n":4}"#));
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let r = check("glm45", "<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>1</arg_value>\n<arg_key>a</arg_key>\n<arg_value>2</arg_value>\n</tool_call>");
        assert_eq!(calls(&r), one("f", r#"{"a":1,"a":2}"#));
        assert!(r.diagnostics.iter().any(|d| d.kind == "duplicate_key"));
    }

    // Format specifics.

    #[test]
    fn dsml_json_body_and_v41_tags() {
        let r = check("deepseek_dsml", "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n{\"a\": [1, {\"b\": \"x\"}], \"c\": true,}\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>");
        assert_eq!(calls(&r), one("f", r#"{"a":[1,{"b":"x"}],"c":true}"#));
        let r = check("deepseek_dsml", "ok\n\n<｜DSML｜ calls>\n<｜DSML｜ invoke name=\"f\">\n<｜DSML｜ parameter name=\"n\" string=\"false\">[1]</｜DSML｜ parameter>\n<｜DSML｜ parameter name=\"s\" string=\"true\">[1]</｜DSML｜ parameter>\n</｜DSML｜ invoke>\n</｜DSML｜ calls>");
        assert_eq!(calls(&r), one("f", r#"{"n":[1],"s":"[1]"}"#));
        assert_eq!(r.content.as_deref(), Some("ok"));
        // A cut JSON body is closed.
        let r = check(
            "deepseek_dsml",
            "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n{\"a\": [1, {\"b\": \"x",
        );
        assert_eq!(calls(&r), one("f", r#"{"a":[1,{"b":"x"}]}"#));
    }

    #[test]
    fn step3_fillers_between_calls() {
        let text = "<｜tool_calls_begin｜>\n<｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name=\"a\">\n<steptml:parameter name=\"x\">1</steptml:parameter>\n</steptml:invoke><｜tool_call_end｜>\n<｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name=\"b\">\n</steptml:invoke><｜tool_call_end｜>\n<｜tool_calls_end｜>";
        let r = check("step3", text);
        assert_eq!(
            calls(&r),
            vec![
                ("a".to_string(), r#"{"x":1}"#.to_string()),
                ("b".to_string(), "{}".to_string())
            ]
        );
        assert_eq!(r.content, None);
    }

    #[test]
    fn kimi_types_and_attribute_entities() {
        let text = "<|open|>think<|sep|>hmm<|close|>think<|sep|><|open|>response<|sep|>Sure.<|close|>response<|sep|><|open|>tools<|sep|><|open|>call tool=\"a&amp;b\" index=\"1\"<|sep|><|open|>argument key=\"q&quot;\" type=\"string\"<|sep|> 1 <|close|>argument<|sep|><|open|>argument key=\"o\" type=\"object\"<|sep|>{\"k\": [1]}<|close|>argument<|sep|><|open|>argument key=\"u\"<|sep|>2<|close|>argument<|sep|><|close|>call<|sep|><|close|>tools<|sep|><|close|>message<|sep|>";
        let r = check("kimi_k3", text);
        assert_eq!(calls(&r), one("a&b", r#"{"q\"":" 1 ","o":{"k":[1]},"u":"2"}"#));
        assert_eq!(r.content.as_deref(), Some("Sure."));
        assert_eq!(r.reasoning.as_deref(), Some("hmm"));
    }

    // Auto-detection among the formats that share `<tool_call>`.

    #[test]
    fn auto_tells_hermes_qwen_and_glm_apart() {
        let cases = [
            ("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>", "hermes"),
            ("<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>", "qwen3_xml"),
            ("<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>1</arg_value>\n</tool_call>", "glm45"),
            ("<tool_call>f<arg_key>a</arg_key><arg_value>1</arg_value></tool_call>", "glm47"),
            ("<minimax:tool_call>\n<invoke name=\"f\">\n<parameter name=\"a\">1</parameter>\n</invoke>\n</minimax:tool_call>", "minimax_m2"),
            ("<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"false\">1</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>", "deepseek_dsml"),
            ("<seed:tool_call>\n<function=f>\n<parameter=a>1</parameter>\n</function>\n</seed:tool_call>", "seed_oss"),
            ("<｜tool_calls_begin｜>\n<｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name=\"f\">\n<steptml:parameter name=\"a\">1</steptml:parameter>\n</steptml:invoke><｜tool_call_end｜>\n<｜tool_calls_end｜>", "step3"),
            ("<|open|>tools<|sep|><|open|>call tool=\"f\" index=\"1\"<|sep|><|open|>argument key=\"a\" type=\"integer\"<|sep|>1<|close|>argument<|sep|><|close|>call<|sep|><|close|>tools<|sep|>", "kimi_k3"),
        ];
        for (text, format) in cases {
            let r = check_with(None, None, &format!("Let me check.\n{text}"));
            assert_eq!(r.format, Some(format), "{text:?}");
            assert_eq!(calls(&r), one("f", r#"{"a":1}"#), "{text:?}");
            assert_eq!(r.content.as_deref(), Some("Let me check."));
        }
    }

    #[test]
    fn odd_markup_is_read_the_same_whatever_the_chunking() {
        let long = "x".repeat(700);
        let texts = [
            ("qwen3_xml", "<tool_call>\n<function=f>\njunk here\n<parameter=a>1</parameter>\nmore junk<parameter=b>x</parameter></function></tool_call>".to_string()),
            ("qwen3_xml", format!("<tool_call>\n<function=f>\n<parameter={long}>1</parameter>\n<parameter=b>2</parameter>\n</function>\n</tool_call>")),
            ("qwen3_xml", "<tool_call>\n<function=f>\n<parameter=a>1</parameter>\n</function>\ntext inside\n<function=g>\n</function>\n</tool_call> after".to_string()),
            ("qwen3_xml", "<tool_call>\n<tool_call>\n<function=f>\n</function>\n</tool_call>".to_string()),
            ("minimax_m2", format!("<minimax:tool_call>\n<invoke name=\"{long}\">\n</invoke>\n</minimax:tool_call>")),
            ("minimax_m2", "<minimax:tool_call>\n<invoke name=\"a>b\" x=\'1\'>\n<parameter name=\"p\">&amp</parameter>\n<parameter name=\"q\">&#x41;&quot</parameter>\n</invoke>\n</minimax:tool_call>".to_string()),
            ("deepseek_dsml", "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n{\"a\": [1, 2}}\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>".to_string()),
            ("deepseek_dsml", "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n{\"a\": /* c */ 1} trailing\n<｜DSML｜parameter name=\"b\" string=\"true\">x</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>".to_string()),
            ("glm47", "<tool_call>f<arg_key>a</arg_key>  <arg_value> 1 </arg_value><arg_key>b</arg_key>x<arg_key>c</arg_key></tool_call>".to_string()),
            ("glm45", "<tool_call>\n  f  \n<arg_key>a</arg_key>\n<arg_value>{\"k\": [1, 2]</arg_value>\n</tool_call>".to_string()),
            ("step3", "<｜tool_calls_begin｜>\n<｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name=\"a\"></steptml:invoke><｜tool_call_end｜>\nstray<｜tool_calls_end｜>".to_string()),
            ("kimi_k3", "<|open|>tools<|sep|><|open|>call tool=\"f\"<|sep|><|open|>argument key=\"a\" type=\"array\"<|sep|>[1,<|close|>argument<|sep|><|close|>call<|sep|>".to_string()),
        ];
        for (format, text) in &texts {
            let r = check(format, text);
            for c in &r.tool_calls {
                let v: serde_json::Value = serde_json::from_str(&c.arguments).expect("JSON");
                assert!(v.is_object());
            }
        }
    }

    #[test]
    fn stray_and_overlong_markup() {
        let r = check(
            "qwen3_xml",
            "<tool_call>\n<function=f>\njunk\n<parameter=a>1</parameter>\n</function>\n</tool_call>",
        );
        assert_eq!(calls(&r), one("f", r#"{"a":1}"#));
        assert!(r.diagnostics.iter().any(|d| d.kind == "stray_text"));
        let long = "k".repeat(600);
        let r = check("qwen3_xml", &format!("<tool_call>\n<function=f>\n<parameter={long}>1</parameter>\n<parameter=b>2</parameter>\n</function>\n</tool_call>"));
        assert_eq!(calls(&r), one("f", r#"{"b":2}"#));
        let r = check(
            "minimax_m2",
            "<minimax:tool_call>\n<invoke name=\"a>b\">\n</invoke>\n</minimax:tool_call>",
        );
        assert_eq!(calls(&r), one("a>b", "{}"));
    }
}

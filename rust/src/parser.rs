//! The streaming parser: feeds any chunking through a format's state machine, and the
//! auto-detector that picks the format from the markers (and the model id).
//!
//! The whole-text [`parse`] is the streaming path fed once, so the two cannot drift apart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::emit::{random_seed, Emitter};
use crate::event::{Event, ParseResult};
use crate::families::{Family, Prose, ProseSpec, ProseStep};
use crate::formats::{self, After, Format, FORMATS};
use crate::native::NativeCall;
use crate::tools::ToolSet;

/// Largest input a parser accepts while holding it back undecided (bytes). Beyond this
/// the held text is released as content: hostile endless marker prefixes cannot grow memory.
pub const MAX_PENDING: usize = 1 << 20;

/// Parser options.
#[derive(Debug, Clone)]
pub struct Options {
    /// A format name, or `None`/`"auto"` to detect it.
    pub format: Option<String>,
    /// The model id, used by auto-detection.
    pub model: Option<String>,
    pub tools: Option<Arc<ToolSet>>,
    /// Mend broken JSON (on by default).
    pub repair: bool,
    /// The output starts inside a reasoning block (thinking templates that open it in the prompt).
    pub in_reasoning: bool,
    /// Seed for generated call ids (random when `None`).
    pub id_seed: Option<u64>,
    /// Coerce arguments to the declared tools' schemas while streaming (on by default).
    pub coerce: bool,
    /// Validate each finished call's arguments against its tool's schema, recording
    /// violations as `schema_violation` diagnostics (on by default; needs `tools`).
    pub validate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: None,
            model: None,
            tools: None,
            repair: true,
            in_reasoning: false,
            id_seed: None,
            coerce: true,
            validate: true,
        }
    }
}

/// Errors raised before parsing starts, or when a finished parser is fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    UnknownFormat { name: String, valid: Vec<&'static str> },
    Finished,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::UnknownFormat { name, valid } => {
                write!(f, "unknown format {name:?}; valid formats: auto, {}", valid.join(", "))
            }
            ParseError::Finished => f.write_str("the parser is finished; create a new one"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Incremental parser. Feed deltas, then finish; see the crate docs for the contract.
pub struct StreamParser {
    family: Box<dyn Family>,
    pending: String,
    offset: usize,
    out: Emitter,
    fixed_format: Option<&'static str>,
    finished: bool,
    /// Mend broken JSON (native calls' arguments too).
    lenient: bool,
    /// The open structured call (see [`StreamParser::call_start`]).
    native: Option<NativeCall>,
    /// Structured-call input that arrived while a call written as text was open.
    queued: Vec<NativeInput>,
    /// The last byte consumed (the one before `pending`).
    last_byte: Option<u8>,
}

/// Structured-call input held until a text call closes.
#[derive(Debug)]
enum NativeInput {
    Start { name: String, id: Option<String> },
    Args(String),
    End,
}

impl std::fmt::Debug for StreamParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamParser")
            .field("offset", &self.offset)
            .field("finished", &self.finished)
            .finish()
    }
}

impl StreamParser {
    pub fn new(opts: Options) -> Result<Self, ParseError> {
        let seed = opts.id_seed.unwrap_or_else(random_seed);
        let mut out = Emitter::new(opts.tools.clone(), seed);
        out.set_coerce(opts.coerce);
        out.set_validate(opts.validate);
        let (family, fixed): (Box<dyn Family>, Option<&'static str>) = match opts.format.as_deref() {
            None | Some("auto") | Some("") => {
                let preferred = opts.model.as_deref().and_then(formats::for_model);
                (Box::new(Auto::new(preferred, opts.in_reasoning, opts.repair)), None)
            }
            Some(name) => {
                let f = formats::by_name(name).ok_or_else(|| ParseError::UnknownFormat {
                    name: name.to_string(),
                    valid: FORMATS.iter().map(|f| f.name).collect(),
                })?;
                (f.build(opts.in_reasoning, opts.repair), Some(f.name))
            }
        };
        Ok(StreamParser {
            family,
            pending: String::new(),
            offset: 0,
            out,
            fixed_format: fixed,
            finished: false,
            lenient: opts.repair,
            native: None,
            queued: Vec::new(),
            last_byte: None,
        })
    }

    /// Feeds a delta; returns the events it completes.
    pub fn feed(&mut self, delta: &str) -> Result<Vec<Event>, ParseError> {
        let mut events = Vec::new();
        self.feed_into(delta, &mut events)?;
        Ok(events)
    }

    /// Like [`StreamParser::feed`], but appends the events to `events`, so that a caller
    /// feeding many small deltas can reuse one buffer.
    pub fn feed_into(&mut self, delta: &str, events: &mut Vec<Event>) -> Result<(), ParseError> {
        if self.finished {
            return Err(ParseError::Finished);
        }
        if delta.is_empty() {
            return Ok(());
        }
        if self.native.is_some() {
            // Text while a structured call is open waits for it to end.
            self.pending.push_str(delta);
            return Ok(());
        }
        if self.pending.is_empty() {
            // Nothing held back: the family reads the delta itself, and only what it leaves
            // is copied (usually nothing).
            let n = feed_family(&mut *self.family, &mut self.out, self.offset, self.last_byte, delta);
            self.advance(delta, n);
            self.pending.push_str(&delta[n..]);
        } else {
            self.pending.push_str(delta);
            self.run_family();
        }
        if self.pending.len() > MAX_PENDING {
            // Nothing decidable for a megabyte: treat it as the end of output.
            self.out.diag(
                "held_back_limit",
                self.offset,
                self.offset + self.pending.len(),
                "undecidable text over the hold-back limit was flushed",
            );
            events.append(&mut self.finish()?);
            return Ok(());
        }
        self.drain_queued();
        self.out.move_events(events);
        Ok(())
    }

    fn run_family(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let n = feed_family(&mut *self.family, &mut self.out, self.offset, self.last_byte, &pending);
        self.advance(&pending, n);
        self.pending = pending;
        self.pending.drain(..n);
    }

    /// Notes that the first `n` bytes of `input` were consumed.
    fn advance(&mut self, input: &str, n: usize) {
        if n > 0 {
            self.last_byte = Some(input.as_bytes()[n - 1]);
        }
        self.offset += n;
    }

    /// Starts a call the backend already structured (an OpenAI `tool_calls` delta with a
    /// name), ending any open structured call. Its arguments, fed with
    /// [`StreamParser::call_args`], are mended like a text call's (repair, coercion,
    /// validation); the events share the text calls' index sequence. With tools declared,
    /// an undeclared name is kept as content with an `unknown_tool` diagnostic.
    pub fn call_start(&mut self, name: &str, id: Option<&str>) -> Result<Vec<Event>, ParseError> {
        self.native_input(NativeInput::Start {
            name: name.to_string(),
            id: id.map(str::to_string),
        })
    }

    /// Feeds a fragment of the open structured call's arguments (ignored when none is open).
    pub fn call_args(&mut self, fragment: &str) -> Result<Vec<Event>, ParseError> {
        let mut events = Vec::new();
        self.call_args_into(fragment, &mut events)?;
        Ok(events)
    }

    /// Like [`StreamParser::call_args`], but appends the events to `events`.
    pub fn call_args_into(&mut self, fragment: &str, events: &mut Vec<Event>) -> Result<(), ParseError> {
        if fragment.is_empty() {
            return Ok(());
        }
        if self.finished {
            return Err(ParseError::Finished);
        }
        if self.must_queue_native() {
            self.queued.push(NativeInput::Args(fragment.to_string()));
        } else if let Some(open) = self.native.as_mut() {
            open.args(fragment, &mut self.out);
        }
        self.out.move_events(events);
        Ok(())
    }

    /// Ends the open structured call (arguments that broke off are closed).
    pub fn call_end(&mut self) -> Result<Vec<Event>, ParseError> {
        self.native_input(NativeInput::End)
    }

    fn native_input(&mut self, input: NativeInput) -> Result<Vec<Event>, ParseError> {
        if self.finished {
            return Err(ParseError::Finished);
        }
        if self.must_queue_native() {
            self.queued.push(input);
        } else {
            self.apply_native(input);
        }
        Ok(self.out.take_events())
    }

    /// A call written as text is open (or structured input already waits for one):
    /// structured calls follow it, never interleave.
    fn must_queue_native(&self) -> bool {
        self.native.is_none() && (self.out.in_call() || !self.queued.is_empty())
    }

    fn apply_native(&mut self, input: NativeInput) {
        match input {
            NativeInput::Start { name, id } => {
                if let Some(open) = self.native.take() {
                    open.end(&mut self.out);
                }
                self.native = Some(NativeCall::start(&name, id.as_deref(), self.lenient, &mut self.out));
            }
            NativeInput::Args(fragment) => {
                if let Some(open) = self.native.as_mut() {
                    open.args(&fragment, &mut self.out);
                }
            }
            NativeInput::End => {
                if let Some(open) = self.native.take() {
                    open.end(&mut self.out);
                    if !self.pending.is_empty() && !self.finished {
                        self.run_family();
                    }
                }
            }
        }
    }

    /// Applies structured-call input held while a text call was open, once it has closed.
    fn drain_queued(&mut self) {
        if self.queued.is_empty() || (self.native.is_none() && self.out.in_call()) {
            return;
        }
        for input in std::mem::take(&mut self.queued) {
            self.apply_native(input);
        }
    }

    /// Ends the output: flushes held text and closes an open call.
    pub fn finish(&mut self) -> Result<Vec<Event>, ParseError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        if let Some(open) = self.native.take() {
            open.end(&mut self.out);
        }
        self.out.base = self.offset;
        self.out.before = self.last_byte;
        let n = self.family.feed(&self.pending, true, &mut self.out);
        debug_assert_eq!(n, self.pending.len(), "families consume everything at eof");
        self.offset += self.pending.len();
        self.pending.clear();
        if self.out.in_call() {
            self.out.end_call();
        }
        for input in std::mem::take(&mut self.queued) {
            self.apply_native(input);
        }
        if let Some(open) = self.native.take() {
            open.end(&mut self.out);
        }
        self.out.finish();
        self.out.validate_ended();
        Ok(self.out.take_events())
    }

    /// Validates the calls finished so far against their tools' schemas, once each (the
    /// end of the output does it; [`StreamParser::result`] does it for itself when asked
    /// before). Calling it before asking for results mid-stream saves repeating that work.
    pub fn validate_ended(&mut self) {
        self.out.validate_ended();
    }

    /// The result so far (complete after [`StreamParser::finish`]).
    pub fn result(&self) -> ParseResult {
        self.out.result(self.fixed_format.or(self.out.format))
    }
}

/// Feeds `input` (which starts at byte `offset` of the output, after `before`) to the
/// family; returns how many bytes it consumed.
fn feed_family(family: &mut dyn Family, out: &mut Emitter, offset: usize, before: Option<u8>, input: &str) -> usize {
    out.base = offset;
    out.before = before;
    family.feed(input, false, out)
}

/// Parses a whole output: the streaming parser fed once.
pub fn parse(text: &str, opts: Options) -> Result<ParseResult, ParseError> {
    let mut p = StreamParser::new(opts)?;
    p.out.set_record_events(false);
    p.out.set_arguments_hint(text.len());
    p.feed(text)?;
    p.finish()?;
    let format = p.fixed_format.or(p.out.format);
    Ok(p.out.into_result(format))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/') || b >= 0x80
}

impl After {
    /// Does `rest` (the text after a trigger) fit? `None`: need more input.
    pub fn accepts(self, rest: &str, eof: bool) -> Option<bool> {
        let b = rest.as_bytes();
        let ws = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
        let need = |ok: bool| {
            if ok {
                Some(true)
            } else if eof {
                Some(false)
            } else {
                None
            }
        };
        match self {
            After::Any => Some(true),
            After::Json | After::JsonArray | After::JsonObject => match b.get(ws) {
                None => need(false),
                Some(&c) => Some(match self {
                    After::JsonArray => c == b'[',
                    After::JsonObject => c == b'{',
                    _ => c == b'{' || c == b'[',
                }),
            },
            After::PythonList => {
                if b.get(ws).is_none() {
                    return need(false);
                }
                if b[ws] != b'[' {
                    return Some(false);
                }
                let mut i = ws + 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'-')) {
                    i += 1;
                }
                if i == b.len() {
                    return if i - start > 256 { Some(false) } else { need(false) };
                }
                Some(i > start && b[i] == b'(')
            }
            After::Literal(lit) => {
                let r = &b[ws..];
                if r.len() >= lit.len() {
                    Some(r.starts_with(lit.as_bytes()))
                } else if lit.as_bytes().starts_with(r) {
                    need(false)
                } else {
                    Some(false)
                }
            }
            After::Name | After::NameThen(_) => {
                let mut i = ws;
                while i < b.len() && is_ident_byte(b[i]) {
                    i += 1;
                }
                if i == b.len() {
                    return if i > 256 { Some(false) } else { need(false) };
                }
                if i == ws {
                    return Some(false);
                }
                match self {
                    After::Name => Some(matches!(b[i], b'\n' | b'<' | b'\r' | b' ')),
                    After::NameThen(markers) => {
                        let r = &rest[i..];
                        for m in markers {
                            if r.starts_with(m) {
                                return Some(true);
                            }
                            if m.starts_with(r) && !eof {
                                return None;
                            }
                        }
                        Some(false)
                    }
                    _ => unreachable!(),
                }
            }
            After::Then(lits, inner) => {
                let r = &rest[ws..];
                let mut wait = false;
                for lit in lits {
                    if let Some(after) = r.strip_prefix(lit) {
                        return inner.accepts(after, eof);
                    }
                    if r.len() < lit.len() && lit.starts_with(r) && !eof {
                        wait = true;
                    }
                }
                if wait {
                    None
                } else {
                    Some(false)
                }
            }
            After::AnyOf(rules) => {
                let mut wait = false;
                for rule in rules {
                    match rule.accepts(rest, eof) {
                        Some(true) => return Some(true),
                        None => wait = true,
                        Some(false) => {}
                    }
                }
                if wait {
                    None
                } else {
                    Some(false)
                }
            }
        }
    }
}

/// Auto-detection: reads prose with the markers of every format, and hands the output
/// to the first format whose trigger (and what follows it) matches.
struct Auto {
    prose: Prose,
    /// Per trigger marker (by prose index): the formats it may start, in priority order;
    /// and the formats a bare `{`/`[` at the start may be.
    tables: Arc<AutoTables>,
    inner: Option<Box<dyn Family>>,
    in_reasoning: bool,
    lenient: bool,
}

/// Detection tables for one preferred format (or none), built once and shared.
struct AutoTables {
    spec: ProseSpec,
    candidates: Vec<Vec<&'static Format>>,
    bare: Vec<&'static Format>,
}

impl AutoTables {
    fn build(preferred: Option<&'static Format>) -> Self {
        let mut spec = ProseSpec::default();
        let mut candidates: Vec<Vec<&'static Format>> = Vec::new();
        let mut bare = Vec::new();
        let order = preferred
            .into_iter()
            .chain(FORMATS.iter().filter(|f| Some(f.name) != preferred.map(|p| p.name)));
        for f in order {
            let p = &f.prose;
            for t in &p.triggers {
                match spec.triggers.iter().position(|x| x == t) {
                    Some(i) => candidates[i].push(f),
                    None => {
                        spec.triggers.push(t);
                        candidates.push(vec![f]);
                    }
                }
            }
            for r in &p.reasoning {
                if !spec.reasoning.contains(r) {
                    spec.reasoning.push(*r);
                }
            }
            for s in &p.strip {
                if !spec.strip.contains(s) {
                    spec.strip.push(s);
                }
            }
            if p.bare_json_at_start && (f.auto_bare || Some(f.name) == preferred.map(|p| p.name)) {
                bare.push(f);
            }
        }
        // Stricter shapes first: `[f(x=1)]` is pythonic before it is a JSON array.
        bare.sort_by_key(|f| f.after != After::PythonList);
        spec.bare_json_at_start = !bare.is_empty();
        AutoTables { spec, candidates, bare }
    }

    fn get(preferred: Option<&'static Format>) -> Arc<AutoTables> {
        static CACHE: OnceLock<Mutex<HashMap<Option<&'static str>, Arc<AutoTables>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(preferred.map(|f| f.name))
            .or_insert_with(|| Arc::new(AutoTables::build(preferred)))
            .clone()
    }
}

impl Auto {
    fn new(preferred: Option<&'static Format>, in_reasoning: bool, lenient: bool) -> Self {
        let tables = AutoTables::get(preferred);
        // Start inside a reasoning block only if the preferred format has one (the first
        // reasoning pair of the tables is the preferred format's).
        let in_reasoning = in_reasoning && preferred.is_none_or(|p| !p.prose.reasoning.is_empty());
        Auto {
            prose: Prose::new(&tables.spec, in_reasoning),
            tables,
            inner: None,
            in_reasoning,
            lenient,
        }
    }

    /// Picks a format among `formats` for the text after a trigger. `Err(())`: need more input.
    fn choose(formats: &[&'static Format], rest: &str, eof: bool) -> Result<Option<&'static Format>, ()> {
        for f in formats {
            match f.after.accepts(rest, eof) {
                None => return Err(()),
                Some(true) => return Ok(Some(f)),
                Some(false) => {}
            }
        }
        Ok(None)
    }

    fn hand_over(&mut self, f: &'static Format, input: &str, at: usize, eof: bool, out: &mut Emitter) -> usize {
        out.format = Some(f.name);
        let mut inner = f.build(false, self.lenient);
        let _ = self.in_reasoning;
        let (base, before) = (out.base, out.before);
        out.base = base + at;
        if at > 0 {
            out.before = Some(input.as_bytes()[at - 1]);
        }
        let n = inner.feed(&input[at..], eof, out);
        out.base = base;
        out.before = before;
        self.inner = Some(inner);
        at + n
    }
}

impl Family for Auto {
    fn feed(&mut self, input: &str, eof: bool, out: &mut Emitter) -> usize {
        if let Some(inner) = self.inner.as_mut() {
            return inner.feed(input, eof, out);
        }
        let mut pos = 0;
        loop {
            match self.prose.scan(input, pos, eof, out) {
                ProseStep::Wait { consumed } => return consumed,
                ProseStep::Trigger { at, len, index } => {
                    let rest = &input[at + len..];
                    match Self::choose(&self.tables.candidates[index], rest, eof) {
                        Err(()) => return at,
                        Ok(Some(f)) => return self.hand_over(f, input, at, eof, out),
                        Ok(None) => {
                            // The marker is just text here.
                            out.text(crate::emit::Channel::Content, &input[at..at + len]);
                            self.prose.note_content();
                            pos = at + len;
                        }
                    }
                }
                ProseStep::BareJson { at } => {
                    let bare = self.tables.bare.clone();
                    let mut chosen = None;
                    for f in bare {
                        let rule = if f.after == After::PythonList {
                            After::PythonList
                        } else {
                            After::Json
                        };
                        match rule.accepts(&input[at..], eof) {
                            None => return at,
                            Some(true) => {
                                chosen = Some(f);
                                break;
                            }
                            Some(false) => {}
                        }
                    }
                    match chosen {
                        Some(f) => return self.hand_over(f, input, at, eof, out),
                        None => {
                            self.prose.note_content();
                            pos = at;
                        }
                    }
                }
            }
        }
    }
}

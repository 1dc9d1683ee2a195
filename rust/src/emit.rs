//! The emitter: the one place where events are produced and the result is accumulated.
//!
//! Families report what they recognised (text, call start, argument fragments, call end);
//! the emitter applies the cross-format policies: whitespace around markup, tool-name
//! resolution against the declared tools, id generation, event coalescing.

use std::sync::Arc;

use crate::event::{Diagnostic, Event, ParseResult, ToolCall};
use crate::tools::{Tool, ToolSet};
use crate::validate::{self, Checked};

/// Which text channel a piece of prose belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Content,
    Reasoning,
}

/// How generated call ids look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdStyle {
    /// `call_` followed by 24 alphanumerics (OpenAI style).
    OpenAi,
    /// 9 alphanumerics (Mistral templates reject anything else).
    Mistral9,
}

/// Deterministic id generator (splitmix64 over a seed).
#[derive(Debug, Clone)]
struct IdGen {
    state: u64,
}

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl IdGen {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Appends `n` random alphanumerics to `s`.
    fn push_alnum(&mut self, s: &mut String, n: usize) {
        let mut left = n;
        while left > 0 {
            let mut r = self.next_u64();
            for _ in 0..left.min(10) {
                s.push(ALNUM[(r % 62) as usize] as char);
                r /= 62;
                left -= 1;
            }
        }
    }
}

/// A random seed from the process's hash randomness (no extra dependency).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// The most a call's arguments buffer is given up front by [`Emitter::set_arguments_hint`].
pub const MAX_ARGUMENTS_HINT: usize = 64 * 1024;

/// Collects events and the accumulated result. See the module docs.
#[derive(Debug)]
pub struct Emitter {
    /// Events produced since the last [`Emitter::take_events`].
    events: Vec<Event>,
    content: String,
    reasoning: String,
    calls: Vec<ToolCall>,
    diagnostics: Vec<Diagnostic>,
    /// Per channel: trailing whitespace held back (dropped at the end of output).
    held: [String; 2],
    /// Per channel: non-space text was seen (leading whitespace is dropped until then).
    started: [bool; 2],
    tools: Option<Arc<ToolSet>>,
    ids: IdGen,
    id_style: IdStyle,
    open_call: Option<usize>,
    /// Absolute byte offset of the input the current family is reading (for spans).
    pub base: usize,
    /// The byte just before that input (`None` at the start of the output).
    pub before: Option<u8>,
    /// The format auto-detection settled on.
    pub format: Option<&'static str>,
    /// Keep events (off for whole parses, which only need the result).
    record_events: bool,
    /// Capacity each call's arguments start with (see [`Emitter::set_arguments_hint`]).
    arguments_hint: usize,
    /// Coerce arguments to the declared tools' schemas (on by default).
    coerce: bool,
    /// Validate finished calls against the declared tools' schemas (on by default).
    validate: bool,
    /// Span of the last accepted call header (opening markup to the end of the name).
    name_span: Option<(usize, usize)>,
    /// Per call, the span of its header, for its validation diagnostics.
    call_spans: Vec<(usize, usize)>,
    /// Per call, the length its arguments had when they were found valid as they were
    /// written ([`Emitter::args_object_rest`]); validation skips a call still that long.
    valid_len: Vec<Option<usize>>,
    /// How many calls (from the first) were validated: calls are validated when the output
    /// ends or the result is asked for, not inside the feed that ends them.
    validated: usize,
}

impl Emitter {
    pub fn new(tools: Option<Arc<ToolSet>>, seed: u64) -> Self {
        Emitter {
            events: Vec::new(),
            content: String::new(),
            reasoning: String::new(),
            calls: Vec::new(),
            diagnostics: Vec::new(),
            held: [String::new(), String::new()],
            started: [false, false],
            tools,
            ids: IdGen { state: seed },
            id_style: IdStyle::OpenAi,
            open_call: None,
            base: 0,
            before: None,
            format: None,
            record_events: true,
            arguments_hint: 0,
            coerce: true,
            validate: true,
            name_span: None,
            call_spans: Vec::new(),
            valid_len: Vec::new(),
            validated: 0,
        }
    }

    /// Whether to keep events (a whole parse needs only the result).
    pub fn set_record_events(&mut self, on: bool) {
        self.record_events = on;
    }

    /// Lets each call's arguments start with room for `bytes` (capped at
    /// [`MAX_ARGUMENTS_HINT`]) and gives back what is unused when the call ends: a whole
    /// parse passes its text's length, so a long argument is not copied as its buffer doubles.
    pub fn set_arguments_hint(&mut self, bytes: usize) {
        self.arguments_hint = bytes.min(MAX_ARGUMENTS_HINT);
    }

    /// Whether finished calls are validated against the declared tools' schemas.
    pub fn set_validate(&mut self, on: bool) {
        self.validate = on;
    }

    /// Whether arguments are coerced to the declared tools' schemas.
    pub fn set_coerce(&mut self, on: bool) {
        self.coerce = on;
    }

    /// The parameters schema arguments of the tool `name` are coerced to: `None` when
    /// coercion is off or the tool is not declared.
    pub fn args_schema(&self, name: &str) -> Option<crate::schema_ref::SchemaRef> {
        if !self.coerce {
            return None;
        }
        self.tool(name).map(|t| t.parameters.clone())
    }

    /// A fresh arguments writer for a call to `name` (coercing when it has a schema).
    pub fn args_writer(&self, name: &str) -> crate::args::ArgsWriter {
        crate::args::ArgsWriter::new(self.args_schema(name))
    }

    /// Sets how generated ids look (per format).
    pub fn set_id_style(&mut self, style: IdStyle) {
        self.id_style = style;
    }

    /// The declared tools, if any were given.
    pub fn tools(&self) -> Option<&ToolSet> {
        self.tools.as_deref()
    }

    /// The declared tool called `name` (resolved leniently), if tools were given.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.as_deref()?.resolve(name)
    }

    fn push_text_event(&mut self, channel: Channel, s: &str) {
        if s.is_empty() {
            return;
        }
        match channel {
            Channel::Content => {
                self.content.push_str(s);
                if !self.record_events {
                    return;
                }
                if let Some(Event::Content(last)) = self.events.last_mut() {
                    last.push_str(s);
                } else {
                    self.events.push(Event::Content(s.into()));
                }
            }
            Channel::Reasoning => {
                self.reasoning.push_str(s);
                if !self.record_events {
                    return;
                }
                if let Some(Event::Reasoning(last)) = self.events.last_mut() {
                    last.push_str(s);
                } else {
                    self.events.push(Event::Reasoning(s.into()));
                }
            }
        }
    }

    /// Prose text, emitted as soon as it arrives, except whitespace: each channel's text
    /// is trimmed at its very start and very end, so whitespace is held back until more
    /// text of the same channel follows.
    pub fn text(&mut self, channel: Channel, s: &str) {
        let ch = channel as usize;
        let s = if self.started[ch] { s } else { s.trim_start() };
        if s.is_empty() {
            return;
        }
        self.started[ch] = true;
        let body = s.trim_end();
        if body.is_empty() {
            self.held[ch].push_str(s);
            return;
        }
        if !self.held[ch].is_empty() {
            let ws = std::mem::take(&mut self.held[ch]);
            self.push_text_event(channel, &ws);
        }
        self.push_text_event(channel, body);
        self.held[ch].push_str(&s[body.len()..]);
    }

    /// Records a diagnostic at absolute offsets.
    pub fn diag(&mut self, kind: &'static str, start: usize, end: usize, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            kind,
            start,
            end,
            message: message.into(),
        });
    }

    /// Records many diagnostics.
    pub fn diags(&mut self, items: impl IntoIterator<Item = Diagnostic>) {
        self.diagnostics.extend(items);
    }

    /// Decides whether a call named `name` may be emitted. With declared tools, returns the
    /// declared spelling (or `None`, after recording a diagnostic); without, any non-empty
    /// name is accepted as written.
    pub fn accept_name(&mut self, name: &str, start: usize, end: usize) -> Option<String> {
        let name = name.trim();
        self.name_span = Some((start, end));
        let Some(tools) = self.tools.as_deref() else {
            return Some(name.to_string());
        };
        match tools.resolve(name) {
            Some(t) => {
                let declared = t.name.clone();
                if declared != name {
                    self.diag(
                        "tool_name_resolved",
                        start,
                        end,
                        format!("tool name {name:?} resolved to {declared:?}"),
                    );
                }
                Some(declared)
            }
            None => {
                self.name_span = None;
                let names = tools.names().join(", ");
                self.diag(
                    "unknown_tool",
                    start,
                    end,
                    format!("{name:?} is not a declared tool (declared: {names}); kept as content"),
                );
                None
            }
        }
    }

    /// Starts a call and returns its index. `id` is the model-written id, if any.
    pub fn start_call(&mut self, name: &str, id: Option<&str>) -> usize {
        let index = self.calls.len();
        let id = match id {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => match self.id_style {
                IdStyle::OpenAi => {
                    let mut id = String::with_capacity(29);
                    id.push_str("call_");
                    self.ids.push_alnum(&mut id, 24);
                    id
                }
                IdStyle::Mistral9 => {
                    let mut id = String::with_capacity(9);
                    self.ids.push_alnum(&mut id, 9);
                    id
                }
            },
        };
        if self.record_events {
            self.events.push(Event::ToolCallStart {
                index,
                id: id.clone(),
                name: name.to_string(),
            });
        }
        self.calls.push(ToolCall {
            id,
            name: name.to_string(),
            arguments: String::with_capacity(self.arguments_hint),
        });
        self.open_call = Some(index);
        self.call_spans.push(self.name_span.take().unwrap_or((0, 0)));
        self.valid_len.push(None);
        index
    }

    /// Appends an argument fragment to the open call.
    pub fn args(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let Some(index) = self.open_call else { return };
        self.calls[index].arguments.push_str(s);
        if self.record_events {
            self.push_args_event(index, s);
        }
    }

    /// Records an argument fragment of call `index` as an event (joined to the last event
    /// when that is a fragment of the same call).
    #[inline(always)]
    fn push_args_event(&mut self, index: usize, s: &str) {
        if let Some(Event::ToolCallArgs { index: i, text }) = self.events.last_mut() {
            if *i == index {
                text.push_str(s);
                return;
            }
        }
        self.events.push(Event::ToolCallArgs { index, text: s.into() });
    }

    /// Writes the rest of the open call's arguments object in one piece, from `text`, the
    /// model output just after the object's `{` (which is written already): the fast path of
    /// a call whose arguments arrived whole. Returns how many bytes of `text` were read
    /// (through the closing `}`), or `None`, having written nothing, when the object must be
    /// read token by token instead: it is not complete in `text`, not plain JSON (anything
    /// the scanner would mend), or its tool's schema might coerce it (the schema is outside
    /// the quick check's subset, or the arguments are not certainly valid against it).
    /// Arguments found valid here are not validated again. Values nested more than
    /// `max_depth` levels below the object are refused.
    pub fn args_object_rest(&mut self, text: &str, max_depth: usize) -> Option<usize> {
        self.write_args_object(text, false, max_depth)
    }

    /// [`Emitter::args_object_rest`] for arguments of which nothing is written yet: `text`
    /// starts with the object's `{`.
    pub fn args_object(&mut self, text: &str, max_depth: usize) -> Option<usize> {
        let rest = text.strip_prefix('{')?;
        self.write_args_object(rest, true, max_depth).map(|n| n + 1)
    }

    /// Writes `{` when `open`, then the rest of an arguments object (see
    /// [`Emitter::args_object_rest`]).
    fn write_args_object(&mut self, text: &str, open: bool, max_depth: usize) -> Option<usize> {
        use crate::quick_check::{compact_object_rest, Plan};
        let index = self.open_call?;
        let mut buf = std::mem::take(&mut self.calls[index].arguments);
        let old_len = buf.len();
        if open {
            buf.push('{');
        }
        let tools = self.tools.clone();
        let mut compact = |plan: &Plan, coerced: bool| {
            let (b, read) = compact_object_rest(text, plan, coerced, max_depth, std::mem::take(&mut buf));
            buf = b;
            read
        };
        // (read, whether the schema's plan accepted the arguments)
        let (read, checked) = match tools.as_deref() {
            // (Calls are only started under declared names when tools are given.)
            Some(tools) => tools.with_plan(&self.calls[index].name, |plan| match plan {
                Some(plan) => (compact(plan, self.coerce), true),
                // Without a plan, only arguments that are not coerced can be written as read.
                None if !self.coerce => (compact(&Plan::Any, false), false),
                None => (None, false),
            }),
            None => (compact(&Plan::Any, false), false),
        };
        if read.is_none() {
            buf.truncate(old_len);
        }
        self.calls[index].arguments = buf;
        let read = read?;
        if checked {
            self.valid_len[index] = Some(self.calls[index].arguments.len());
        }
        if self.record_events {
            let text = self.calls[index].arguments[old_len..].to_string();
            self.push_args_event(index, &text);
        }
        Some(read)
    }

    /// Ends the open call. Its arguments are validated later, by
    /// [`Emitter::validate_ended`] (see [`Emitter::set_validate`]).
    pub fn end_call(&mut self) {
        if let Some(index) = self.open_call.take() {
            if self.arguments_hint > 0 {
                self.calls[index].arguments.shrink_to_fit();
            }
            if self.record_events {
                self.events.push(Event::ToolCallEnd { index });
            }
        }
    }

    /// The calls that are finished: all but an open last one.
    fn ended_calls(&self) -> usize {
        self.open_call.unwrap_or(self.calls.len())
    }

    /// Validates the finished calls not validated yet, recording their diagnostics. Done
    /// once per call, when the output ends or the result is asked for: a feed that ends a
    /// call stays as cheap as any other, and the result is the same.
    pub fn validate_ended(&mut self) {
        let ended = self.ended_calls();
        for index in self.validated..ended {
            let found = self.violations(index);
            self.diagnostics.extend(found);
        }
        self.validated = ended;
    }

    /// Checks a finished call's arguments against its tool's schema: one
    /// `schema_violation` diagnostic per violation (at the call header's span). Never
    /// changes the arguments.
    fn violations(&self, index: usize) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if !(self.validate && validate::ENABLED) {
            return out;
        }
        let Some(tools) = self.tools.as_deref() else { return out };
        let call = &self.calls[index];
        if self.valid_len[index] == Some(call.arguments.len()) {
            return out;
        }
        let name = &call.name;
        // Not JSON: nothing to validate (families always write JSON).
        let Some(checked) = tools.check_text(name, &call.arguments) else {
            return out;
        };
        let (start, end) = self.call_spans.get(index).copied().unwrap_or((0, 0));
        let mut diag = |kind, message: String| {
            out.push(Diagnostic {
                kind,
                start,
                end,
                message,
            })
        };
        match checked {
            Checked::Valid => {}
            Checked::Violations { found, total } => {
                for v in &found {
                    diag(validate::SCHEMA_VIOLATION, validate::violation_message(name, v));
                }
                if total > found.len() {
                    diag(
                        validate::VIOLATIONS_TRUNCATED,
                        format!("{} more schema violations in {name} arguments not reported", total - found.len()),
                    );
                }
            }
            Checked::InvalidSchema(why) => diag(
                validate::INVALID_SCHEMA,
                format!("the parameters schema of {name} is not a valid JSON Schema ({why}); its arguments were not validated"),
            ),
        }
        out
    }

    /// True while a call is open.
    pub fn in_call(&self) -> bool {
        self.open_call.is_some()
    }

    /// Number of calls started so far.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Takes the events produced since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Moves the events produced since the last call to `dst`. Both buffers' allocations
    /// are kept for the next events.
    pub fn move_events(&mut self, dst: &mut Vec<Event>) {
        if dst.is_empty() {
            // The usual case (the caller empties its buffer after each feed): trade the
            // buffers instead of moving the events.
            std::mem::swap(dst, &mut self.events);
        } else {
            dst.append(&mut self.events);
        }
    }

    /// End of output: drops held whitespace.
    pub fn finish(&mut self) {
        self.held = [String::new(), String::new()];
    }

    /// The result, consuming the emitter (no copies).
    pub fn into_result(mut self, format: Option<&'static str>) -> ParseResult {
        self.validate_ended();
        let mut diagnostics = self.diagnostics;
        diagnostics.sort_by(|a, b| (a.start, a.end, a.kind, &a.message).cmp(&(b.start, b.end, b.kind, &b.message)));
        ParseResult {
            content: (!self.content.is_empty()).then_some(self.content),
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
            tool_calls: self.calls,
            format,
            diagnostics,
        }
    }

    /// The result so far (finished calls not validated yet are validated for it, without
    /// being marked: [`Emitter::validate_ended`] first saves repeating that).
    pub fn result(&self, format: Option<&'static str>) -> ParseResult {
        ParseResult {
            content: (!self.content.is_empty()).then(|| self.content.clone()),
            reasoning: (!self.reasoning.is_empty()).then(|| self.reasoning.clone()),
            tool_calls: self.calls.clone(),
            format,
            diagnostics: {
                // Canonical order, whatever the chunking made the families report first.
                let mut d = self.diagnostics.clone();
                for index in self.validated..self.ended_calls() {
                    d.extend(self.violations(index));
                }
                d.sort_by(|a, b| (a.start, a.end, a.kind, &a.message).cmp(&(b.start, b.end, b.kind, &b.message)));
                d
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_trimmed_at_its_ends_only() {
        let mut e = Emitter::new(None, 1);
        e.text(Channel::Content, "\n  Hello ");
        e.text(Channel::Reasoning, " hmm ");
        e.text(Channel::Content, " world \n");
        e.text(Channel::Content, "\n");
        e.finish();
        let r = e.result(None);
        assert_eq!(r.content.as_deref(), Some("Hello  world"));
        assert_eq!(r.reasoning.as_deref(), Some("hmm"));
    }

    #[test]
    fn ids_are_unique_and_styled() {
        let mut e = Emitter::new(None, 7);
        e.set_id_style(IdStyle::Mistral9);
        e.start_call("a", None);
        e.end_call();
        e.start_call("b", None);
        e.end_call();
        let r = e.result(None);
        assert_eq!(r.tool_calls[0].id.len(), 9);
        assert_ne!(r.tool_calls[0].id, r.tool_calls[1].id);
        assert!(r.tool_calls[0].id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    /// The arguments of a call are written whole where they are plain JSON that coercion
    /// would leave alone, and are then known valid; otherwise nothing is written.
    #[cfg(feature = "validate")]
    #[test]
    fn arguments_object_rest_is_written_whole_or_not_at_all() {
        let tools = ToolSet::from_json_str(
            r#"[{"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}},
                "required": ["n"]}}]"#,
        )
        .expect("tools");
        let mut e = Emitter::new(Some(Arc::new(tools)), 1);
        e.start_call("f", None);
        e.args("{");
        // Coercion would change these, or the scanner would mend them: not written.
        for text in [r#""n": "1"} tail"#, r#""n": 1,} tail"#, r#""n": 1"#, r#"} tail"#] {
            assert_eq!(e.args_object_rest(text, 64), None, "{text}");
            assert_eq!(e.calls[0].arguments, "{");
            assert_eq!(e.valid_len[0], None);
        }
        let text = " \"n\" : 12 } tail";
        assert_eq!(e.args_object_rest(text, 64), Some(text.len() - " tail".len()));
        assert_eq!(e.calls[0].arguments, r#"{"n":12}"#);
        assert_eq!(e.valid_len[0], Some(8));
        e.end_call();
        let events = e.take_events();
        let args: String = events
            .iter()
            .filter_map(|ev| match ev {
                Event::ToolCallArgs { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, r#"{"n":12}"#);
        e.finish();
        assert!(e.result(None).diagnostics.is_empty());
    }
}

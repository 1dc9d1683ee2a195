//! OpenAI Harmony (gpt-oss): a sequence of messages
//! `<|start|>ROLE<|channel|>CHANNEL [to=RECIPIENT] [<|constrain|>json]<|message|>BODY<|end|>`.
//!
//! * A message with a recipient `functions.NAME` (in the role header or after the channel) is
//!   a call; its body is the JSON arguments, read by the shared [`Scanner`] and streamed. It
//!   ends with `<|call|>`. `<|constrain|>json` may be absent or written ` json`.
//! * The `analysis` channel is reasoning; `final` and `commentary` (preambles) are content.
//! * The output may start directly at `<|channel|>` (the prompt ended with
//!   `<|start|>assistant`). Text outside messages is content.
//!
//! A call starts when its first body byte shows a JSON object. A call to an undeclared tool
//! (tools given) or with a body that is not an object stays content, header included.

use crate::args::ArgsWriter;
use crate::emit::{Channel, Emitter};
use crate::families::{Family, Prose, ProseSpec, ProseStep};
use crate::json::{Dialect, Progress, Scanner, Token, TokenSink};
use crate::marker::{Find, MarkerSet};

/// Data of the harmony format (the format has no variants; the struct keeps the registry
/// uniform).
#[derive(Debug, Clone, Default)]
pub struct HarmonySpec {}

const START: &str = "<|start|>";
const CHANNEL: &str = "<|channel|>";
const MESSAGE: &str = "<|message|>";
/// Tokens that end a header; the first three end a message and are consumed.
const ENDS: &[&str] = &["<|end|>", "<|call|>", "<|return|>", START, CHANNEL, MESSAGE];
/// Tokens that end a body: a message end, or a new message.
const BODY_ENDS: &[&str] = &["<|end|>", "<|call|>", "<|return|>", START, CHANNEL];
/// Longest header (role, channel, recipient, constraint) read before it is judged broken.
const MAX_HEADER: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prose,
    /// Reading a header up to `<|message|>`.
    Header,
    /// A text body going to a channel.
    Text(Channel),
    /// A call's body: waiting for its first non-space byte.
    CallStart,
    /// Reading a call's JSON arguments.
    Call,
    /// The arguments are complete: the rest of the body is dropped.
    Skip,
    /// A message that is not a usable call: its text is content.
    Passthrough,
}

/// A JSON sink that records what is open, to close it if the body breaks off.
#[derive(Debug, Default)]
struct Args {
    w: ArgsWriter,
    closers: Vec<u8>,
    in_string: bool,
    after_key: bool,
}

impl TokenSink for Args {
    fn token(&mut self, tok: Token<'_>, at: usize) {
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

/// The harmony state machine.
pub struct Harmony {
    prose: Prose,
    header_ends: MarkerSet,
    body_ends: MarkerSet,
    lenient: bool,
    state: State,
    /// The raw header (from its opening token through `<|message|>`).
    header: String,
    /// The header began at `<|channel|>` (no role part).
    from_channel: bool,
    header_start: usize,
    /// The call's name (when the message has a recipient).
    name: String,
    scanner: Option<Box<Scanner>>,
    args: Args,
    /// Span of text dropped after a call's arguments (reported once per message).
    junk: Option<(usize, usize)>,
}

/// What a header says about its message body.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Text(Channel),
    Call(String),
}

/// Reads a header (without its opening token when `from_channel`).
fn parse_header(header: &str, from_channel: bool) -> Kind {
    let h = header.strip_suffix(MESSAGE).unwrap_or(header);
    let h = h.strip_prefix(START).or_else(|| h.strip_prefix(CHANNEL)).unwrap_or(h);
    let channel_part = if from_channel {
        Some(h)
    } else {
        h.split_once(CHANNEL).map(|(_, c)| c)
    };
    let channel: String = channel_part
        .map(|c| {
            c.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .unwrap_or_default();
    let recipient = h.find("to=").map(|k| {
        let r = &h[k + 3..];
        let end = r.find(|c: char| c.is_whitespace() || c == '<').unwrap_or(r.len());
        &r[..end]
    });
    if let Some(r) = recipient {
        let name = r.strip_prefix("functions.").unwrap_or(r);
        if !name.is_empty() && !matches!(name, "assistant" | "user" | "system" | "developer") {
            return Kind::Call(name.to_string());
        }
    }
    if channel == "analysis" {
        Kind::Text(Channel::Reasoning)
    } else {
        Kind::Text(Channel::Content)
    }
}

impl Harmony {
    /// `in_reasoning` is ignored: the analysis channel is always written in the output.
    pub fn new(_spec: &'static HarmonySpec, prose: &ProseSpec, _in_reasoning: bool, lenient: bool) -> Self {
        Harmony {
            prose: Prose::new(prose, false),
            header_ends: MarkerSet::new(ENDS),
            body_ends: MarkerSet::new(BODY_ENDS),
            lenient,
            state: State::Prose,
            header: String::new(),
            from_channel: false,
            header_start: 0,
            name: String::new(),
            scanner: None,
            args: Args::default(),
            junk: None,
        }
    }

    /// Where the body ends: `(limit, Some((index, len)))` when an end token is found.
    fn body_end(&self, input: &str, pos: usize, eof: bool) -> (usize, Option<(usize, usize)>) {
        Self::find_end(&self.body_ends, input, pos, eof)
    }

    fn find_end(set: &MarkerSet, input: &str, pos: usize, eof: bool) -> (usize, Option<(usize, usize)>) {
        match set.find(input, pos, eof) {
            Find::Found { at, index } => (at, Some((index, ENDS[index].len()))),
            Find::Partial { at } => (at, None),
            Find::None => (input.len(), None),
        }
    }

    /// Closes the open call, completing broken-off JSON.
    fn close_call(&mut self, out: &mut Emitter) {
        if let Some(mut sc) = self.scanner.take() {
            let ok = sc.finish(&mut self.args);
            out.diags(sc.repairs.drain(..));
            if !ok {
                // The writer closes an open string and containers (and writes a held value).
                self.args.w.close_all();
            }
            let s = self.args.w.take();
            out.diags(self.args.w.take_diags());
            if !ok {
                let at = sc.offset();
                out.diag("truncated_arguments", at, at, "the arguments broke off; closed them");
            }
            out.args(&s);
            out.end_call();
        }
        self.args = Args::default();
    }

    /// After a body's end token (or at a new message, or the end of output).
    fn end_message(&mut self, end: Option<(usize, usize)>, at: usize, eof: bool) -> (usize, State) {
        match end {
            // A message end token is consumed; a new header is read as prose.
            Some((index, len)) if index < 3 => (at + len, State::Prose),
            Some(_) => (at, State::Prose),
            None if eof => (at, State::Prose),
            None => (at, self.state),
        }
    }
}

impl Family for Harmony {
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
                        self.header.clear();
                        self.header.push_str(&input[at..at + len]);
                        self.from_channel = &input[at..at + len] == CHANNEL;
                        self.header_start = out.base + at;
                        self.state = State::Header;
                        pos = at + len;
                    }
                },
                State::Header => {
                    // `<|channel|>` is part of a header that began at `<|start|>`.
                    let (mut limit, mut end) = Self::find_end(&self.header_ends, input, pos, eof);
                    let (start_pos, old_len) = (pos, self.header.len());
                    let mut from = pos;
                    while let Some((4, len)) = end {
                        if self.from_channel || self.header.contains(CHANNEL) {
                            break;
                        }
                        self.header.push_str(&input[from..limit + len]);
                        from = limit + len;
                        (limit, end) = Self::find_end(&self.header_ends, input, from, eof);
                    }
                    self.header.push_str(&input[from..limit]);
                    pos = limit;
                    if self.header.len() > MAX_HEADER {
                        // Cut the header at MAX_HEADER + 1 bytes (the rest is read again as
                        // prose): the same place whatever the chunking.
                        let mut cut = start_pos + (MAX_HEADER + 1).saturating_sub(old_len);
                        while cut < input.len() && !input.is_char_boundary(cut) {
                            cut += 1;
                        }
                        let cut = cut.min(pos);
                        self.header.truncate(old_len + (cut - start_pos));
                        pos = cut;
                        let h = std::mem::take(&mut self.header);
                        out.diag(
                            "malformed_header",
                            self.header_start,
                            out.base + pos,
                            "an over-long message header was kept as content",
                        );
                        out.text(Channel::Content, &h);
                        self.prose.note_content();
                        self.state = State::Prose;
                        continue;
                    }
                    match end {
                        Some((5, len)) => {
                            self.header.push_str(MESSAGE);
                            pos += len;
                            match parse_header(&self.header, self.from_channel) {
                                Kind::Text(ch) => {
                                    self.header.clear();
                                    self.state = State::Text(ch);
                                }
                                Kind::Call(name) => {
                                    self.name = name;
                                    self.state = State::CallStart;
                                }
                            }
                        }
                        Some(_) => {
                            // A header with no body: markup, dropped.
                            out.diag(
                                "malformed_header",
                                self.header_start,
                                out.base + pos,
                                "a message header without a body was dropped",
                            );
                            self.header.clear();
                            self.state = State::Prose;
                        }
                        None if eof => {
                            out.diag(
                                "truncated",
                                self.header_start,
                                out.base + pos,
                                "the output ended inside a message header",
                            );
                            self.header.clear();
                            self.state = State::Prose;
                        }
                        None => return pos,
                    }
                }
                State::Text(ch) => {
                    let (limit, end) = self.body_end(input, pos, eof);
                    out.text(ch, &input[pos..limit]);
                    if ch == Channel::Content && !input[pos..limit].trim().is_empty() {
                        self.prose.note_content();
                    }
                    let (next, state) = self.end_message(end, limit, eof);
                    self.state = state;
                    if state == State::Text(ch) {
                        return limit;
                    }
                    pos = next;
                }
                State::CallStart => {
                    let mut i = pos;
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    // Kept with the header: both are content if this is no call.
                    self.header.push_str(&input[pos..i]);
                    pos = i;
                    if i >= bytes.len() && !eof {
                        return i;
                    }
                    let name = std::mem::take(&mut self.name);
                    let accepted = if bytes.get(i) == Some(&b'{') {
                        out.accept_name(&name, self.header_start, out.base + i)
                    } else {
                        out.diag(
                            "not_a_call",
                            self.header_start,
                            out.base + i,
                            "a message to a tool without a JSON object body was kept as content",
                        );
                        None
                    };
                    match accepted {
                        Some(declared) => {
                            out.start_call(&declared, None);
                            self.header.clear();
                            self.args = Args {
                                w: ArgsWriter::new(out.args_schema(&declared)),
                                ..Args::default()
                            };
                            self.scanner = Some(Box::new(Scanner::new(Dialect::Json, self.lenient, out.base + i)));
                            self.state = State::Call;
                            pos = i;
                        }
                        None => {
                            let h = std::mem::take(&mut self.header);
                            out.text(Channel::Content, &h);
                            self.prose.note_content();
                            self.state = State::Passthrough;
                        }
                    }
                }
                State::Call => {
                    let (limit, end) = self.body_end(input, pos, eof);
                    let Some(mut sc) = self.scanner.take() else {
                        self.state = State::Skip;
                        continue;
                    };
                    // Arguments that are here whole and plain are written in one piece (see
                    // `Emitter::args_object`); otherwise the scanner reads them.
                    if sc.is_pristine() {
                        if let Some(n) = out.args_object(&input[pos..limit], crate::families::ARGS_WHOLE_MAX_DEPTH) {
                            out.end_call();
                            self.args = Args::default();
                            self.state = State::Skip;
                            pos += n;
                            continue;
                        }
                    }
                    let progress = sc.feed(&input[pos..limit], &mut self.args);
                    out.diags(sc.repairs.drain(..));
                    let s = self.args.w.take();
                    out.args(&s);
                    out.diags(self.args.w.take_diags());
                    match progress {
                        Progress::Done { consumed } | Progress::Error { consumed } => {
                            self.scanner = Some(sc);
                            self.close_call(out);
                            self.state = State::Skip;
                            pos += consumed;
                        }
                        Progress::Partial { consumed } => {
                            self.scanner = Some(sc);
                            if end.is_none() && !eof {
                                return pos + consumed;
                            }
                            // The body ended inside the JSON: close it (truncation repair).
                            self.close_call(out);
                            let (next, state) = self.end_message(end, limit, eof);
                            self.state = state;
                            pos = next;
                        }
                    }
                }
                State::Skip => {
                    let (limit, end) = self.body_end(input, pos, eof);
                    let text = &input[pos..limit];
                    let trimmed = text.trim_start();
                    if !trimmed.trim_end().is_empty() {
                        let start = out.base + limit - trimmed.len();
                        let stop = out.base + pos + text.trim_end().len();
                        self.junk = Some(self.junk.map_or((start, stop), |(a, _)| (a, stop)));
                    }
                    let (next, state) = self.end_message(end, limit, eof);
                    self.state = state;
                    if state == State::Skip {
                        return limit;
                    }
                    if let Some((a, b)) = self.junk.take() {
                        out.diag("trailing_text", a, b, "text after a call's arguments was dropped");
                    }
                    pos = next;
                }
                State::Passthrough => {
                    let (limit, end) = self.body_end(input, pos, eof);
                    let (next, state) = self.end_message(end, limit, eof);
                    out.text(Channel::Content, &input[pos..next.max(limit)]);
                    self.state = state;
                    if state == State::Passthrough {
                        return limit;
                    }
                    pos = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::families::test_support::{calls, check, one};

    use super::{parse_header, Kind};
    use crate::emit::Channel;

    #[test]
    fn headers() {
        let call = |n: &str| Kind::Call(n.to_string());
        assert_eq!(
            parse_header(
                "<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>",
                false
            ),
            call("f")
        );
        assert_eq!(
            parse_header(
                "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>",
                false
            ),
            call("f")
        );
        assert_eq!(
            parse_header("<|channel|>analysis<|message|>", true),
            Kind::Text(Channel::Reasoning)
        );
        assert_eq!(
            parse_header("<|channel|>final<|message|>", true),
            Kind::Text(Channel::Content)
        );
        assert_eq!(
            parse_header("<|start|>assistant<|channel|>commentary<|message|>", false),
            Kind::Text(Channel::Content)
        );
        assert_eq!(
            parse_header("<|channel|>commentary to=browser.search<|message|>", true),
            call("browser.search")
        );
    }

    #[test]
    fn formats_md_example() {
        let r = check(
            Some("harmony"),
            None,
            r#"<|start|>assistant<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"city":"Beijing"}<|call|>"#,
        );
        assert_eq!(calls(&r), one("get_weather", r#"{"city":"Beijing"}"#));
        assert_eq!(r.content, None);
    }

    /// Arguments that arrive whole are written in one piece where they are plain JSON that
    /// coercion would leave alone; whatever the path, the result is the token-by-token one.
    #[test]
    fn arguments_read_whole_come_out_as_read_token_by_token() {
        let tools = r#"[{"type": "function", "function": {"name": "w", "parameters": {"type": "object",
            "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}, "required": ["n"]}}}]"#;
        for args in [
            r#"{"n": 1, "s": "a \"b\" \u00e9 \/ \ud83c\udf38"}"#,
            r#"{"n": "7"}"#,
            r#"{"s": "no n"}"#,
            r#"{"n": 1,}"#,
            r#"{"n": 1} trailing junk"#,
            r#"{"n": 1"#,
        ] {
            let text = format!("<|channel|>commentary to=functions.w<|message|>{args}<|call|>after");
            for tools in [Some(tools), None] {
                let r = check(Some("harmony"), tools, &text);
                assert_eq!(r.tool_calls.len(), 1, "{text}");
            }
        }
    }

    #[test]
    fn full_turn() {
        let text = concat!(
            "<|channel|>analysis<|message|>Need weather.<|end|>",
            "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\", \"days\": [1, 2]}<|call|>",
            "<|start|>assistant<|channel|>commentary to=functions.ping <|constrain|>json<|message|>{}<|call|>",
            "<|start|>assistant<|channel|>final<|message|>Done.<|return|>"
        );
        let r = check(Some("harmony"), None, text);
        assert_eq!(
            calls(&r),
            vec![
                ("get_weather".into(), r#"{"city":"Paris","days":[1,2]}"#.into()),
                ("ping".into(), "{}".into())
            ]
        );
        assert_eq!(r.content.as_deref(), Some("Done."));
        assert_eq!(r.reasoning.as_deref(), Some("Need weather."));
    }

    #[test]
    fn broken_and_rejected_calls() {
        // Truncated arguments are closed.
        let r = check(
            Some("harmony"),
            None,
            "<|channel|>commentary to=functions.f<|message|>{\"a\": [1, \"x",
        );
        assert_eq!(calls(&r), one("f", r#"{"a":[1,"x"]}"#));
        // Arguments cut by the end token are closed too; a new message follows.
        let r = check(
            Some("harmony"),
            None,
            "<|channel|>commentary to=functions.f<|message|>{\"a\": 1<|call|><|channel|>final<|message|>ok",
        );
        assert_eq!(calls(&r), one("f", r#"{"a":1}"#));
        assert_eq!(r.content.as_deref(), Some("ok"));
        // An undeclared tool stays content, header included.
        let tools = r#"[{"type":"function","function":{"name":"get_weather","parameters":{}}}]"#;
        let text = "<|channel|>commentary to=functions.nope<|message|>{\"a\":1}<|call|>";
        let r = check(Some("harmony"), Some(tools), text);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content.as_deref(), Some(text));
        // A non-JSON body to a tool is content too.
        let r = check(
            Some("harmony"),
            None,
            "<|channel|>commentary to=python<|message|>print(1)<|call|>",
        );
        assert!(r.tool_calls.is_empty());
        assert_eq!(
            r.content.as_deref(),
            Some("<|channel|>commentary to=python<|message|>print(1)<|call|>")
        );
    }

    #[test]
    fn auto_detects_harmony() {
        let r = check(
            None,
            None,
            "Sure. <|start|>assistant<|channel|>commentary to=functions.f<|constrain|>json<|message|>{\"x\":1}<|call|>",
        );
        assert_eq!(r.format, Some("harmony"));
        assert_eq!(calls(&r), one("f", r#"{"x":1}"#));
        assert_eq!(r.content.as_deref(), Some("Sure."));
        let r = check(Some("harmony"), None, "<|start|>assistant<|channel|>com");
        assert!(r.tool_calls.is_empty());
    }

    #[test]
    fn long_header_cap_is_chunk_independent() {
        for n in [500, 510, 520, 700] {
            for text in [
                format!(
                    "<|channel|>commentary to=functions.f {}<|message|>{{}}<|call|>",
                    "h".repeat(n)
                ),
                format!("<|start|>assistant{}é<|channel|>final<|message|>hi", "h".repeat(n)),
            ] {
                let r = check(Some("harmony"), None, &text);
                for d in &r.diagnostics {
                    assert!(d.start <= d.end && d.end <= text.len(), "{d:?}");
                }
            }
        }
    }
}

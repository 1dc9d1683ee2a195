//! Calls the backend already structured: OpenAI-style `tool_calls` deltas (a name, then
//! argument fragments) mended the same way as calls written as text.
//!
//! A server that parses tool calls itself still hands over broken or mistyped arguments,
//! names in the wrong case, or arguments re-sent twice. [`NativeCall`] runs such a call's
//! argument fragments through the lenient scanner and the schema-coercing writer, so the
//! events a client sees are the same as for a call the core parsed from text. Diagnostic
//! spans of a native call are byte offsets within that call's arguments text.

use crate::args::ArgsWriter;
use crate::emit::{Channel, Emitter};
use crate::json::{Dialect, Progress, Scanner, Token, TokenSink};

/// Largest arguments text held back undecided (bytes); beyond it the call is closed.
const MAX_HELD: usize = 1 << 20;

/// The token sink of a native call: the coercing writer.
#[derive(Debug, Default)]
struct Sink {
    w: ArgsWriter,
}

impl TokenSink for Sink {
    fn token(&mut self, tok: Token<'_>, at: usize) {
        self.w.token(tok, at);
    }
}

/// What happens to a native call's fragments.
#[derive(Debug)]
enum Mode {
    /// A declared (or, without tools, any) call: fragments are mended into its arguments.
    Call {
        scanner: Scanner,
        sink: Box<Sink>,
        /// Fragment text the scanner has not consumed yet.
        held: String,
        /// Bytes of arguments text seen so far (for spans).
        seen: usize,
        /// Text after the complete arguments (dropped, reported once at the end).
        trailing: bool,
    },
    /// An undeclared tool: the call is kept as content (`name` and its raw arguments).
    Rejected { name: String, raw: String },
}

/// One structured call being mended. See the module docs.
#[derive(Debug)]
pub struct NativeCall {
    mode: Mode,
}

impl NativeCall {
    /// Starts a call to `name` (with the backend's `id`, if any): emits its start event,
    /// or, when tools are declared and `name` is not one of them, records an
    /// `unknown_tool` diagnostic and keeps the call as content.
    pub fn start(name: &str, id: Option<&str>, lenient: bool, out: &mut Emitter) -> NativeCall {
        let mode = match out.accept_name(name, 0, 0) {
            Some(declared) => {
                let sink = Box::new(Sink {
                    w: out.args_writer(&declared),
                });
                out.start_call(&declared, id);
                Mode::Call {
                    scanner: Scanner::new(Dialect::Json, lenient, 0),
                    sink,
                    held: String::new(),
                    seen: 0,
                    trailing: false,
                }
            }
            None => Mode::Rejected {
                name: name.trim().to_string(),
                raw: String::new(),
            },
        };
        NativeCall { mode }
    }

    /// Feeds a fragment of the call's arguments text.
    pub fn args(&mut self, fragment: &str, out: &mut Emitter) {
        match &mut self.mode {
            Mode::Rejected { raw, .. } => raw.push_str(fragment),
            Mode::Call {
                scanner,
                sink,
                held,
                seen,
                trailing,
            } => {
                *seen += fragment.len();
                if scanner.is_done() {
                    *trailing |= !fragment.trim().is_empty();
                    return;
                }
                held.push_str(fragment);
                let progress = scanner.feed(held, sink.as_mut());
                out.diags(scanner.repairs.drain(..));
                let consumed = match progress {
                    Progress::Partial { consumed } => consumed,
                    Progress::Done { consumed } | Progress::Error { consumed } => {
                        *trailing |= !held[consumed..].trim().is_empty();
                        held.len()
                    }
                };
                held.drain(..consumed);
                out.args(&sink.w.take());
                out.diags(sink.w.take_diags());
                if held.len() > MAX_HELD {
                    out.diag(
                        "held_back_limit",
                        *seen - held.len(),
                        *seen,
                        "undecidable arguments text over the hold-back limit was dropped",
                    );
                    held.clear();
                }
            }
        }
    }

    /// Ends the call: closes truncated arguments (empty arguments become `{}`) and emits
    /// its end event, or, for a rejected call, its text as content.
    pub fn end(self, out: &mut Emitter) {
        match self.mode {
            Mode::Rejected { name, raw } => {
                let args = if raw.trim().is_empty() { "{}" } else { raw.trim() };
                let mut text = String::from("{\"name\":\"");
                crate::json::escape_into(&mut text, &name);
                text.push_str("\",\"arguments\":");
                text.push_str(args);
                text.push('}');
                out.text(Channel::Content, &text);
            }
            Mode::Call {
                mut scanner,
                mut sink,
                seen,
                trailing,
                ..
            } => {
                if scanner.is_pristine() {
                    sink.w.close_all();
                    let s = sink.w.take();
                    out.args(if s.is_empty() { "{}" } else { &s });
                } else {
                    let ok = scanner.finish(sink.as_mut());
                    out.diags(scanner.repairs.drain(..));
                    if !ok {
                        sink.w.close_all();
                        out.diag(
                            "truncated_arguments",
                            seen,
                            seen,
                            "the arguments broke off; closed them",
                        );
                    }
                    out.args(&sink.w.take());
                    out.diags(sink.w.take_diags());
                }
                if trailing {
                    out.diag(
                        "trailing_text",
                        0,
                        seen,
                        "text after the call's complete arguments (e.g. arguments sent twice) was dropped",
                    );
                }
                out.end_call();
            }
        }
    }
}

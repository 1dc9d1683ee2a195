//! Public result types: streaming events, tool calls, diagnostics, the parse result.

/// One mend or notice, with the byte span of the model output it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Short machine-readable kind, e.g. `trailing_comma`, `unknown_tool`.
    pub kind: &'static str,
    /// Byte offset in the model output where the span starts.
    pub start: usize,
    /// Byte offset where the span ends (exclusive).
    pub end: usize,
    /// Human-readable explanation.
    pub message: String,
}

/// What was noticed or mended while parsing (an alias kept for readability at call sites).
pub type Diagnostic = Repair;

/// Text of an event: fragments up to 24 bytes (most argument and content deltas) are kept
/// inline, without a heap allocation.
pub type Text = compact_str::CompactString;

/// A streaming event. Text fragments of one kind may be split differently for different
/// chunkings; concatenated, they are always the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Text the user should see.
    Content(Text),
    /// Reasoning ("thinking") text.
    Reasoning(Text),
    /// A tool call begins; its name is complete.
    ToolCallStart { index: usize, id: String, name: String },
    /// A fragment of a call's arguments (compact JSON text).
    ToolCallArgs { index: usize, text: Text },
    /// A call's arguments are complete.
    ToolCallEnd { index: usize },
}

impl Event {
    /// The event kind as the Python API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Content(_) => "content",
            Event::Reasoning(_) => "reasoning",
            Event::ToolCallStart { .. } => "tool_call_start",
            Event::ToolCallArgs { .. } => "tool_call_args",
            Event::ToolCallEnd { .. } => "tool_call_end",
        }
    }

    /// The text of content, reasoning and argument events.
    pub fn text(&self) -> Option<&str> {
        match self {
            Event::Content(t) | Event::Reasoning(t) | Event::ToolCallArgs { text: t, .. } => Some(t),
            Event::ToolCallStart { .. } | Event::ToolCallEnd { .. } => None,
        }
    }

    /// The call index of tool-call events.
    pub fn index(&self) -> Option<usize> {
        match self {
            Event::ToolCallStart { index, .. } | Event::ToolCallArgs { index, .. } | Event::ToolCallEnd { index } => {
                Some(*index)
            }
            Event::Content(_) | Event::Reasoning(_) => None,
        }
    }
}

/// A finished tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// Compact JSON object text.
    pub arguments: String,
}

/// The outcome of a whole parse (or of a finished stream).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParseResult {
    pub content: Option<String>,
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// The format used or detected; `None` when auto-detection found no tool-call markup.
    pub format: Option<&'static str>,
    pub diagnostics: Vec<Diagnostic>,
}

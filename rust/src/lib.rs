//! toolmend-core: turns raw local-LLM output into OpenAI-style tool calls, streaming.
//!
//! * [`parser::StreamParser`] reads any chunking of a model's output and yields
//!   [`event::Event`]s; [`parser::parse`] is the same machine fed once.
//! * [`json`] is the incremental, lenient JSON scanner all JSON-argument formats share.
//! * [`formats`] is the registry: each format is data for one of the [`families`].
//!
//! The crate knows nothing of HTTP or Python.

pub mod args;
pub mod emit;
pub mod event;
pub mod families;
pub mod formats;
pub mod json;
pub mod marker;
pub mod native;
pub mod parser;
mod quick_check;
pub mod repair;
pub mod schema;
pub mod schema_ref;
pub mod tools;
pub mod validate;

pub use event::{Diagnostic, Event, ParseResult, Repair, Text, ToolCall};
pub use parser::{parse, Options, ParseError, StreamParser};
pub use repair::{repair_json, RepairError, RepairResult};
pub use tools::ToolSet;

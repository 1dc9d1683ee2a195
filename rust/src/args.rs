//! Streaming schema coercion: a [`TokenSink`] that writes a call's arguments as compact
//! JSON (like [`JsonWriter`]) while making them fit the tool's parameters schema, in the
//! same single pass that streams them.
//!
//! The writer follows the schema path as tokens flow (`$ref`/`$defs`, nested objects,
//! `items`, `anyOf`/`oneOf` branches) and:
//! * streams a string unchanged where the schema accepts a string (no enum);
//! * holds a value whose coercion depends on its whole text (a string where a number,
//!   boolean or null is wanted, an enum value, a union that the first token cannot
//!   decide) until it is complete, then writes it coerced by [`schema::coerce_in`];
//! * wraps a lone value in `[...]` where an array is wanted;
//! * decodes a JSON-encoded string where an object or array is wanted, streaming it through
//!   a nested lenient [`Scanner`];
//! * drops properties that `additionalProperties: false` forbids, and fills a missing
//!   required property that has a `default` at the end of its object.
//!
//! Output is never retracted: what is written is final. Each change is a diagnostic.

use serde_json::{Map, Value};

use crate::event::Repair;
use crate::json::{Dialect, JsonWriter, Progress, Scanner, Token, TokenSink};
use crate::schema::{coerce_in, resolve, type_names};
use crate::schema_ref::SchemaRef;

/// How deep unions are followed before a value is held whole instead.
const MAX_UNION_HOPS: usize = 16;

/// A token with owned text (recorded while the schema is not known yet).
#[derive(Debug, Clone)]
enum OwnedToken {
    BeginObject,
    EndObject,
    BeginArray,
    EndArray,
    Key(String),
    BeginString,
    StringPart(String),
    EndString,
    Number(String),
    Bool(bool),
    Null,
}

impl OwnedToken {
    fn of(tok: &Token<'_>) -> Self {
        match tok {
            Token::BeginObject => OwnedToken::BeginObject,
            Token::EndObject => OwnedToken::EndObject,
            Token::BeginArray => OwnedToken::BeginArray,
            Token::EndArray => OwnedToken::EndArray,
            Token::Key(k) => OwnedToken::Key((*k).to_string()),
            Token::BeginString => OwnedToken::BeginString,
            Token::StringPart(s) => OwnedToken::StringPart((*s).to_string()),
            Token::EndString => OwnedToken::EndString,
            Token::Number(n) => OwnedToken::Number((*n).to_string()),
            Token::Bool(b) => OwnedToken::Bool(*b),
            Token::Null => OwnedToken::Null,
        }
    }

    fn as_token(&self) -> Token<'_> {
        match self {
            OwnedToken::BeginObject => Token::BeginObject,
            OwnedToken::EndObject => Token::EndObject,
            OwnedToken::BeginArray => Token::BeginArray,
            OwnedToken::EndArray => Token::EndArray,
            OwnedToken::Key(k) => Token::Key(k),
            OwnedToken::BeginString => Token::BeginString,
            OwnedToken::StringPart(s) => Token::StringPart(s),
            OwnedToken::EndString => Token::EndString,
            OwnedToken::Number(n) => Token::Number(n),
            OwnedToken::Bool(b) => Token::Bool(*b),
            OwnedToken::Null => Token::Null,
        }
    }
}

/// Builds a [`Value`] from tokens (for held values).
#[derive(Debug, Default)]
struct Builder {
    stack: Vec<(Value, Option<String>)>,
    key: Option<String>,
    string: Option<String>,
    done: Option<Value>,
}

impl Builder {
    fn put(&mut self, v: Value) {
        match self.stack.last_mut() {
            None => self.done = Some(v),
            Some((Value::Array(items), _)) => items.push(v),
            Some((Value::Object(map), _)) => {
                if let Some(k) = self.key.take() {
                    map.insert(k, v);
                }
            }
            Some(_) => {}
        }
    }

    fn token(&mut self, tok: &Token<'_>) {
        if self.done.is_some() {
            return;
        }
        match tok {
            Token::BeginObject => {
                let k = self.key.take();
                self.stack.push((Value::Object(Map::new()), k));
            }
            Token::BeginArray => {
                let k = self.key.take();
                self.stack.push((Value::Array(Vec::new()), k));
            }
            Token::EndObject | Token::EndArray => {
                if let Some((v, k)) = self.stack.pop() {
                    self.key = k;
                    self.put(v);
                }
            }
            Token::Key(k) => self.key = Some((*k).to_string()),
            Token::BeginString => self.string = Some(String::new()),
            Token::StringPart(s) => {
                if let Some(buf) = self.string.as_mut() {
                    buf.push_str(s);
                }
            }
            Token::EndString => {
                let s = self.string.take().unwrap_or_default();
                self.put(Value::String(s));
            }
            Token::Number(n) => {
                let v = serde_json::from_str::<Value>(n).unwrap_or_else(|_| Value::String((*n).to_string()));
                self.put(v);
            }
            Token::Bool(b) => self.put(Value::Bool(*b)),
            Token::Null => self.put(Value::Null),
        }
    }

    /// Closes whatever is open (the output was cut short) and returns the value.
    fn close(&mut self) -> Option<Value> {
        if self.string.is_some() {
            self.token(&Token::EndString);
        }
        while self.done.is_none() && !self.stack.is_empty() {
            self.token(&Token::EndObject);
        }
        self.done.take()
    }
}

/// Writes `v` to `w` as tokens.
fn emit_value(w: &mut JsonWriter, v: &Value) {
    match v {
        Value::Null => w.token(Token::Null, 0),
        Value::Bool(b) => w.token(Token::Bool(*b), 0),
        Value::Number(n) => w.token(Token::Number(&n.to_string()), 0),
        Value::String(s) => {
            w.token(Token::BeginString, 0);
            w.token(Token::StringPart(s), 0);
            w.token(Token::EndString, 0);
        }
        Value::Array(items) => {
            w.token(Token::BeginArray, 0);
            for it in items {
                emit_value(w, it);
            }
            w.token(Token::EndArray, 0);
        }
        Value::Object(map) => {
            w.token(Token::BeginObject, 0);
            for (k, it) in map {
                w.token(Token::Key(k), 0);
                emit_value(w, it);
            }
            w.token(Token::EndObject, 0);
        }
    }
}

/// True when `root` (a parameters schema) forbids the property `key`
/// (`additionalProperties: false` and `key` not among its properties).
pub fn forbids(root: &Value, key: &str) -> bool {
    let schema = resolve(root, root, 0);
    schema.get("additionalProperties") == Some(&Value::Bool(false))
        && schema.get("properties").and_then(|p| p.get(key)).is_none()
}

/// Required properties of `root` (a parameters schema) missing from `seen` that declare a
/// `default`: `(key, default, diagnostic message)`, in `required` order.
pub fn missing_defaults(root: &Value, seen: &[String]) -> Vec<(String, Value, String)> {
    let schema = resolve(root, root, 0);
    let (Some(Value::Array(req)), Some(props)) = (
        schema.get("required"),
        schema.get("properties").and_then(Value::as_object),
    ) else {
        return Vec::new();
    };
    req.iter()
        .filter_map(Value::as_str)
        .filter(|k| !seen.iter().any(|s| s == k))
        .filter_map(|k| {
            let d = props.get(k).map(|p| resolve(p, root, 0))?.get("default")?;
            let msg = format!(
                "{}: missing required property filled with its default {d}",
                pointer_push("", k)
            );
            Some((k.to_string(), d.clone(), msg))
        })
        .collect()
}

/// `path` (a JSON pointer) extended by the object key `key`, escaped as RFC 6901 asks.
pub(crate) fn pointer_push(path: &str, key: &str) -> String {
    let mut p = String::with_capacity(path.len() + key.len() + 1);
    p.push_str(path);
    p.push('/');
    if key.contains(['~', '/']) {
        p.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        p.push_str(key);
    }
    p
}

/// What the next value of an object is for.
#[derive(Debug)]
enum Slot {
    Schema(Option<SchemaRef>),
    /// A property `additionalProperties: false` forbids: skip its value.
    Drop,
}

#[derive(Debug)]
enum Frame {
    Object {
        schema: Option<SchemaRef>,
        path: String,
        seen: Vec<String>,
        slot: Slot,
        slot_path: String,
    },
    Array {
        items: Option<SchemaRef>,
        path: String,
        index: usize,
    },
    /// A string being streamed as it arrives.
    Str,
    /// An array written around a lone value; `items` is the schema of that value.
    Wrap { items: Option<SchemaRef>, path: String },
    /// A string whose decoded JSON is being written; `schema` is for the decoded value.
    Decode {
        schema: SchemaRef,
        path: String,
        start: usize,
    },
}

/// A value held until it is complete.
#[derive(Debug)]
struct Hold {
    b: Builder,
    schema: SchemaRef,
    path: String,
    start: usize,
}

/// A string where an object/array is wanted, held until its first non-space character
/// says whether it is JSON-encoded.
#[derive(Debug)]
struct Sniff {
    buf: String,
    schema: SchemaRef,
    path: String,
    start: usize,
}

#[derive(Debug)]
struct Decoder {
    sc: Scanner,
    pending: String,
    finished: bool,
}

/// Streaming, schema-coercing arguments writer. See the module docs.
#[derive(Debug)]
pub struct ArgsWriter {
    /// Output produced so far and not yet taken.
    pub out: String,
    w: JsonWriter,
    /// The parameters schema; `None`: write tokens as they are.
    root: Option<SchemaRef>,
    /// Tokens recorded while the schema is not known yet (see [`ArgsWriter::deferred`]).
    recorded: Option<Vec<(OwnedToken, usize)>>,
    frames: Vec<Frame>,
    /// Boxed, as `decoder`: rarely used, and the writer lives in every call's state.
    hold: Option<Box<Hold>>,
    /// Depth of a skipped (dropped) value being read.
    skip: Option<usize>,
    sniff: Option<Sniff>,
    decoder: Option<Box<Decoder>>,
    /// A decoder is running (its tokens are arriving).
    decoding: bool,
    /// The top-level value has started.
    started: bool,
    /// Schema and path of the top-level value when it is one property (not the root).
    top: Option<(Option<SchemaRef>, String)>,
    /// What coercion changed (spans in the model output where known).
    pub diags: Vec<Repair>,
}

impl Default for ArgsWriter {
    fn default() -> Self {
        ArgsWriter::new(None)
    }
}

impl ArgsWriter {
    /// A writer coercing to `schema` (the tool's parameters), or writing tokens as they are
    /// when `None`.
    pub fn new(schema: Option<SchemaRef>) -> Self {
        ArgsWriter {
            out: String::new(),
            w: JsonWriter::new(),
            root: schema,
            recorded: None,
            frames: Vec::new(),
            hold: None,
            skip: None,
            sniff: None,
            decoder: None,
            decoding: false,
            started: false,
            top: None,
            diags: Vec::new(),
        }
    }

    /// A writer for the value of one property `key` of arguments whose schema is `root`
    /// (formats that write the arguments object themselves, one value at a time).
    pub fn for_property(root: Option<SchemaRef>, key: &str) -> Self {
        let schema = root.as_ref().and_then(|r| {
            r.try_project(|n, root| {
                let props = resolve(n, root, 0);
                match props.get("properties").and_then(|p| p.get(key)) {
                    Some(s) => Some(s),
                    None => props.get("additionalProperties").filter(|a| a.is_object()),
                }
            })
        });
        let mut w = ArgsWriter::new(root);
        w.top = Some((schema, pointer_push("", key)));
        w
    }

    /// A writer whose schema becomes known later (the tool name may follow the arguments):
    /// tokens are written as they are and recorded; [`ArgsWriter::set_schema`] re-writes
    /// them coerced. Only for output not yet taken.
    pub fn deferred() -> Self {
        let mut w = ArgsWriter::new(None);
        w.recorded = Some(Vec::new());
        w
    }

    /// Sets the schema of a [`ArgsWriter::deferred`] writer: the recorded tokens are written
    /// again, coerced (replacing `out`). No effect on a writer that was not deferred.
    pub fn set_schema(&mut self, schema: Option<SchemaRef>) {
        let Some(tokens) = self.recorded.take() else { return };
        if schema.is_none() {
            return;
        }
        *self = ArgsWriter::new(schema);
        for (t, at) in &tokens {
            self.token(t.as_token(), *at);
        }
    }

    /// True while a string value is written through as it arrives, with nothing held, sniffed,
    /// decoded, skipped, recorded or waiting to be taken: then string text that needs no
    /// escaping comes out unchanged, and a caller may write it to the arguments itself.
    pub fn streams_string(&self) -> bool {
        self.takes_escaped() && self.out.is_empty() && self.w.out.is_empty() && self.diags.is_empty()
    }

    /// Takes the output produced since the last call.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// True when repairs or coercions wait to be taken.
    pub fn has_diags(&self) -> bool {
        !self.diags.is_empty()
    }

    /// Takes the diagnostics recorded so far.
    pub fn take_diags(&mut self) -> Vec<Repair> {
        std::mem::take(&mut self.diags)
    }

    /// Depth of open containers in the output.
    pub fn depth(&self) -> usize {
        self.w.depth()
    }

    /// The value was cut short: writes any held value and closes everything open (filling
    /// defaults of open objects), so `out` ends a complete value.
    pub fn close_all(&mut self) {
        self.recorded = None;
        self.flush_pending(usize::MAX);
        while let Some(frame) = self.frames.last() {
            match frame {
                Frame::Str => self.end_string(),
                Frame::Object { .. } => self.end_object(0),
                Frame::Array { .. } => self.end_array(),
                Frame::Wrap { .. } => {
                    self.frames.pop();
                    self.w.token(Token::EndArray, 0);
                }
                Frame::Decode { .. } => {
                    self.frames.pop();
                }
            }
        }
        // A key left without a value, or closers of containers opened outside frames.
        let closers = self.w.closers();
        self.sync();
        self.out.push_str(&closers);
    }

    fn sync(&mut self) {
        if !self.w.out.is_empty() {
            if self.out.is_empty() {
                std::mem::swap(&mut self.out, &mut self.w.out);
            } else {
                self.out.push_str(&self.w.out);
                self.w.out.clear();
            }
        }
    }

    fn note(&mut self, kind: &'static str, start: usize, end: usize, message: String) {
        self.diags.push(Repair {
            kind,
            start,
            end: end.max(start),
            message,
        });
    }

    /// Completes any held, sniffed or decoding value (end of output).
    fn flush_pending(&mut self, at: usize) {
        let at = if at == usize::MAX { 0 } else { at };
        if self.decoder.is_some() && !self.decoding {
            self.decode_end(at);
        }
        if self.skip.is_some() {
            self.skip = None;
        }
        if let Some(s) = self.sniff.take() {
            let mut b = Builder::default();
            b.token(&Token::BeginString);
            b.token(&Token::StringPart(&s.buf));
            self.hold = Some(Box::new(Hold {
                b,
                schema: s.schema,
                path: s.path,
                start: s.start,
            }));
        }
        if let Some(mut h) = self.hold.take() {
            let v = h.b.close();
            self.finish_hold(&h, v, at);
        }
    }

    /// The schema and path for the value about to start.
    fn next_slot(&mut self) -> (Slot, String) {
        match self.frames.last_mut() {
            None => match &self.top {
                Some((s, p)) => (Slot::Schema(s.clone()), p.clone()),
                None => (Slot::Schema(self.root.clone()), String::new()),
            },
            Some(Frame::Object { slot, slot_path, .. }) => {
                (std::mem::replace(slot, Slot::Schema(None)), std::mem::take(slot_path))
            }
            // Paths only serve diagnostics, which need a schema: below none, they stay empty.
            Some(Frame::Array { items, path, index }) => {
                let p = if items.is_some() {
                    format!("{path}/{index}")
                } else {
                    String::new()
                };
                *index += 1;
                (Slot::Schema(items.clone()), p)
            }
            Some(Frame::Wrap { items, path }) => {
                let p = if items.is_some() {
                    format!("{path}/0")
                } else {
                    String::new()
                };
                (Slot::Schema(items.clone()), p)
            }
            Some(Frame::Decode { schema, path, .. }) => (Slot::Schema(Some(schema.clone())), path.clone()),
            Some(Frame::Str) => (Slot::Schema(None), String::new()),
        }
    }

    /// A value (written or dropped) ended.
    fn value_done(&mut self) {
        while let Some(Frame::Wrap { .. }) = self.frames.last() {
            self.frames.pop();
            self.w.token(Token::EndArray, 0);
        }
    }

    fn end_string(&mut self) {
        self.frames.pop();
        self.w.token(Token::EndString, 0);
        self.value_done();
    }

    fn end_array(&mut self) {
        self.frames.pop();
        self.w.token(Token::EndArray, 0);
        self.value_done();
    }

    /// Ends an object (`at`: offset of its closer, 0 when unknown).
    fn end_object(&mut self, at: usize) {
        if let Some(Frame::Object { schema, path, seen, .. }) = self.frames.pop() {
            if let (Some(schema), Some(root)) = (schema.as_ref(), self.root.as_ref()) {
                let props = schema.get("properties").and_then(Value::as_object);
                if let (Some(Value::Array(req)), Some(props)) = (schema.get("required"), props) {
                    for k in req.iter().filter_map(Value::as_str) {
                        if seen.iter().any(|s| s == k) {
                            continue;
                        }
                        let Some(default) = props.get(k).map(|p| resolve(p, root, 0)).and_then(|p| p.get("default"))
                        else {
                            continue;
                        };
                        self.w.token(Token::Key(k), 0);
                        emit_value(&mut self.w, default);
                        let p = pointer_push(&path, k);
                        self.diags.push(Repair {
                            kind: "default_filled",
                            start: at,
                            end: at,
                            message: format!("{p}: missing required property filled with its default {default}"),
                        });
                    }
                }
            }
        }
        self.w.token(Token::EndObject, 0);
        self.value_done();
    }

    fn finish_hold(&mut self, h: &Hold, v: Option<Value>, at: usize) {
        let Some(v) = v else {
            self.value_done();
            return;
        };
        let (c, repairs) = match self.root.as_ref() {
            Some(root) => coerce_in(&v, &h.schema, root, &h.path),
            None => (v, Vec::new()),
        };
        for r in repairs {
            self.note(r.kind, h.start, at, r.message);
        }
        emit_value(&mut self.w, &c);
        self.value_done();
    }

    /// A value starts with `tok` (a begin token or a scalar).
    fn begin_value(&mut self, tok: &Token<'_>, at: usize) {
        let (slot, path) = self.next_slot();
        let schema = match slot {
            Slot::Drop => {
                self.skip = Some(0);
                self.skip_token(tok);
                return;
            }
            Slot::Schema(s) => s,
        };
        if self.frames.is_empty() && self.top.is_none() {
            // The arguments object itself: always an object, whatever the schema says.
            if let (Token::BeginObject, Some(schema), Some(_)) = (tok, schema.as_ref(), self.root.as_ref()) {
                let s = schema.project(|n, root| resolve(n, root, 0));
                self.frames.push(Frame::Object {
                    schema: Some(s),
                    path,
                    seen: Vec::new(),
                    slot: Slot::Schema(None),
                    slot_path: String::new(),
                });
                self.w.token(Token::BeginObject, at);
                return;
            }
            return self.pass(tok, path);
        }
        self.begin_with(tok, at, schema, path, 0);
    }

    fn pass(&mut self, tok: &Token<'_>, path: String) {
        match tok {
            Token::BeginObject => self.frames.push(Frame::Object {
                schema: None,
                path,
                seen: Vec::new(),
                slot: Slot::Schema(None),
                slot_path: String::new(),
            }),
            Token::BeginArray => self.frames.push(Frame::Array {
                items: None,
                path,
                index: 0,
            }),
            Token::BeginString => self.frames.push(Frame::Str),
            _ => {}
        }
        self.w.token(tok.clone(), 0);
        if matches!(tok, Token::Number(_) | Token::Bool(_) | Token::Null) {
            self.value_done();
        }
    }

    fn hold_start(&mut self, tok: &Token<'_>, at: usize, schema: SchemaRef, path: String) {
        let mut b = Builder::default();
        b.token(tok);
        let h = Hold {
            b,
            schema,
            path,
            start: at,
        };
        if let Some(v) = h.b.done.clone() {
            self.finish_hold(&h, Some(v), at);
        } else {
            self.hold = Some(Box::new(h));
        }
    }

    fn begin_with(&mut self, tok: &Token<'_>, at: usize, schema: Option<SchemaRef>, path: String, hops: usize) {
        let (Some(schema), Some(_)) = (schema, self.root.as_ref()) else {
            return self.pass(tok, path);
        };
        if hops > MAX_UNION_HOPS {
            return self.pass(tok, path);
        }
        let s = schema.project(|n, root| resolve(n, root, 0));
        let is_scalar = matches!(tok, Token::Number(_) | Token::Bool(_) | Token::Null);
        if is_scalar {
            return self.hold_start(tok, at, s, path);
        }
        if s.get("anyOf").or_else(|| s.get("oneOf")).is_some_and(Value::is_array) {
            if hops >= MAX_UNION_HOPS {
                return self.hold_start(tok, at, s, path);
            }
            let want = match tok {
                Token::BeginObject => "object",
                Token::BeginArray => "array",
                _ => "string",
            };
            let branches = s.project_all(|n, root| {
                let options = n.get("anyOf").or_else(|| n.get("oneOf")).and_then(Value::as_array);
                options.into_iter().flatten().map(|o| resolve(o, root, 0)).collect()
            });
            if want == "string" {
                // A string that fits a plain string branch stays as it is.
                let plain = branches.iter().any(|b| {
                    let t = type_names(b);
                    t.contains(&"string")
                        && b.get("enum").is_none()
                        && b.get("anyOf").is_none()
                        && b.get("oneOf").is_none()
                });
                if plain {
                    return self.pass(tok, path);
                }
                return self.hold_start(tok, at, s, path);
            }
            let fitting: Vec<&SchemaRef> = branches
                .iter()
                .filter(|b| {
                    let t = type_names(b);
                    t.contains(&want) || (t.is_empty() && b.get("anyOf").is_none() && b.get("oneOf").is_none())
                })
                .collect();
            if fitting.len() == 1 && fitting[0].get("allOf").is_none() {
                let b = fitting[0].clone();
                return self.begin_with(tok, at, Some(b), path, hops + 1);
            }
            return self.hold_start(tok, at, s, path);
        }
        if s.get("allOf").is_some() {
            return self.hold_start(tok, at, s, path);
        }
        let types = type_names(&s);
        let any = types.is_empty();
        let wants = |t: &str| types.contains(&t);
        match tok {
            Token::BeginString => {
                if any || wants("string") {
                    if s.get("enum").is_some() {
                        self.hold_start(tok, at, s, path)
                    } else {
                        self.pass(tok, path)
                    }
                } else if wants("object") || wants("array") {
                    self.sniff = Some(Sniff {
                        buf: String::new(),
                        schema: s,
                        path,
                        start: at,
                    });
                } else {
                    self.hold_start(tok, at, s, path)
                }
            }
            Token::BeginObject => {
                if any || wants("object") {
                    self.frames.push(Frame::Object {
                        schema: Some(s),
                        path,
                        seen: Vec::new(),
                        slot: Slot::Schema(None),
                        slot_path: String::new(),
                    });
                    self.w.token(Token::BeginObject, 0);
                } else if wants("array") {
                    let items = self.wrap(at, &s, path.clone());
                    self.begin_with(tok, at, items, format!("{path}/0"), hops + 1);
                } else {
                    self.pass(tok, path);
                }
            }
            Token::BeginArray => {
                if any || wants("array") {
                    let items = s.try_project(|n, _| n.get("items").filter(|i| i.is_object()));
                    self.frames.push(Frame::Array { items, path, index: 0 });
                    self.w.token(Token::BeginArray, 0);
                } else {
                    self.pass(tok, path);
                }
            }
            _ => self.pass(tok, path),
        }
    }

    fn wrap(&mut self, at: usize, s: &SchemaRef, path: String) -> Option<SchemaRef> {
        self.note(
            "wrapped_in_array",
            at,
            at,
            format!(
                "{}: a lone value was wrapped in an array",
                if path.is_empty() { "/" } else { &path }
            ),
        );
        self.w.token(Token::BeginArray, 0);
        let items = s.try_project(|n, _| n.get("items").filter(|i| i.is_object()));
        self.frames.push(Frame::Wrap {
            items: items.clone(),
            path,
        });
        items
    }

    fn skip_token(&mut self, tok: &Token<'_>) {
        let Some(d) = self.skip.as_mut() else { return };
        match tok {
            Token::BeginObject | Token::BeginArray | Token::BeginString => *d += 1,
            Token::EndObject | Token::EndArray | Token::EndString => *d = d.saturating_sub(1),
            Token::Key(_) | Token::StringPart(_) => {}
            Token::Number(_) | Token::Bool(_) | Token::Null => {}
        }
        if *d == 0 && !matches!(tok, Token::Key(_) | Token::StringPart(_)) {
            self.skip = None;
        }
    }

    fn sniff_part(&mut self, part: &str) {
        let Some(sn) = self.sniff.as_mut() else { return };
        sn.buf.push_str(part);
        // What was buffered before is all whitespace: only the new part needs looking at.
        let Some(c) = part.trim_start().chars().next() else {
            return;
        };
        let Some(sn) = self.sniff.take() else { return };
        let types = type_names(&sn.schema);
        let decode =
            !self.decoding && ((c == '{' && types.contains(&"object")) || (c == '[' && types.contains(&"array")));
        if decode {
            self.frames.push(Frame::Decode {
                schema: sn.schema,
                path: sn.path,
                start: sn.start,
            });
            self.decoder = Some(Box::new(Decoder {
                sc: Scanner::new(Dialect::Json, true, sn.start + 1),
                pending: String::new(),
                finished: false,
            }));
            self.decode_feed(&sn.buf);
        } else {
            let mut b = Builder::default();
            b.token(&Token::BeginString);
            b.token(&Token::StringPart(&sn.buf));
            self.hold = Some(Box::new(Hold {
                b,
                schema: sn.schema,
                path: sn.path,
                start: sn.start,
            }));
        }
    }

    fn decode_feed(&mut self, part: &str) {
        let Some(mut d) = self.decoder.take() else { return };
        if !d.finished {
            d.pending.push_str(part);
            self.decoding = true;
            match d.sc.feed(&d.pending, self) {
                Progress::Partial { consumed } => {
                    d.pending.drain(..consumed);
                }
                Progress::Done { .. } | Progress::Error { .. } => {
                    d.pending.clear();
                    d.finished = true;
                }
            }
            self.decoding = false;
        }
        self.decoder = Some(d);
    }

    fn decode_end(&mut self, at: usize) {
        let Some(mut d) = self.decoder.take() else { return };
        self.decoding = true;
        if !d.finished {
            if !d.pending.is_empty() {
                let pending = std::mem::take(&mut d.pending);
                let _ = d.sc.feed(&pending, self);
            }
            if !d.sc.is_done() {
                let _ = d.sc.finish(self);
            }
        }
        self.decoding = false;
        // Whatever the nested value left open (it failed mid-way) is closed here.
        self.flush_inner();
        while let Some(frame) = self.frames.last() {
            match frame {
                Frame::Decode { .. } => break,
                Frame::Str => self.end_string(),
                Frame::Object { .. } => self.end_object(0),
                Frame::Array { .. } => self.end_array(),
                Frame::Wrap { .. } => {
                    self.frames.pop();
                    self.w.token(Token::EndArray, 0);
                }
            }
        }
        if let Some(Frame::Decode { path, start, .. }) = self.frames.pop() {
            let p = if path.is_empty() { "/".to_string() } else { path };
            self.note(
                "decoded_string",
                start,
                at,
                format!("{p}: a JSON-encoded string was decoded"),
            );
        }
        let repairs: Vec<Repair> = d.sc.repairs.drain(..).collect();
        self.diags.extend(repairs);
        self.value_done();
    }

    /// Completes a held value left open inside a decoded string.
    fn flush_inner(&mut self) {
        if let Some(mut h) = self.hold.take() {
            let v = h.b.close();
            let end = h.start;
            self.finish_hold(&h, v, end);
        }
        if self.skip.is_some() {
            self.skip = None;
        }
    }

    fn handle(&mut self, tok: Token<'_>, at: usize) {
        if self.decoder.is_some() && !self.decoding {
            // Tokens of the outer, encoded string (the decoded value is paused).
            match tok {
                Token::StringPart(s) => self.decode_feed(s),
                Token::EndString => self.decode_end(at),
                _ => {}
            }
            return;
        }
        if self.skip.is_some() {
            self.skip_token(&tok);
            return;
        }
        if let Some(h) = self.hold.as_mut() {
            h.b.token(&tok);
            if h.b.done.is_some() {
                if let Some(mut h) = self.hold.take() {
                    let v = h.b.done.take();
                    self.finish_hold(&h, v, at);
                }
            }
            return;
        }
        if self.sniff.is_some() {
            match tok {
                Token::StringPart(s) => self.sniff_part(s),
                Token::EndString => {
                    // Only whitespace: hold it whole.
                    if let Some(sn) = self.sniff.take() {
                        let mut b = Builder::default();
                        b.token(&Token::BeginString);
                        b.token(&Token::StringPart(&sn.buf));
                        b.token(&Token::EndString);
                        let v = b.done.take();
                        let h = Hold {
                            b,
                            schema: sn.schema,
                            path: sn.path,
                            start: sn.start,
                        };
                        self.finish_hold(&h, v, at);
                    }
                }
                _ => {}
            }
            return;
        }
        match tok {
            Token::Key(k) => {
                if let Some(Frame::Object {
                    schema,
                    path,
                    seen,
                    slot,
                    slot_path,
                }) = self.frames.last_mut()
                {
                    // Paths only serve diagnostics, which need a schema.
                    let p = if schema.is_some() {
                        pointer_push(path, k)
                    } else {
                        String::new()
                    };
                    let sub = match schema {
                        None => Slot::Schema(None),
                        Some(s) => match s.try_project(|n, _| n.get("properties")?.get(k)) {
                            Some(ps) => Slot::Schema(Some(ps)),
                            None => match s.get("additionalProperties") {
                                Some(Value::Bool(false)) if self.root.is_some() => Slot::Drop,
                                Some(Value::Object(_)) => {
                                    Slot::Schema(s.try_project(|n, _| n.get("additionalProperties")))
                                }
                                _ => Slot::Schema(None),
                            },
                        },
                    };
                    // Only required keys matter (defaults of missing ones), which also bounds the
                    // list whatever the number of keys.
                    let required = schema
                        .as_ref()
                        .and_then(|s| s.get("required"))
                        .and_then(Value::as_array)
                        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(k)));
                    if required && !seen.iter().any(|s| s == k) {
                        seen.push(k.to_string());
                    }
                    let dropped = matches!(sub, Slot::Drop)
                        .then(|| format!("{p}: not allowed (additionalProperties is false); dropped"));
                    *slot = sub;
                    *slot_path = p;
                    if let Some(message) = dropped {
                        self.note("dropped_property", at, at, message);
                        return;
                    }
                }
                self.w.token(tok, at);
            }
            Token::StringPart(_) => {
                if matches!(self.frames.last(), Some(Frame::Str)) {
                    self.w.token(tok, at);
                }
            }
            Token::EndString => {
                if matches!(self.frames.last(), Some(Frame::Str)) {
                    self.end_string();
                }
            }
            Token::EndObject => {
                if matches!(self.frames.last(), Some(Frame::Object { .. })) {
                    self.end_object(at);
                }
            }
            Token::EndArray => {
                if matches!(self.frames.last(), Some(Frame::Array { .. })) {
                    self.end_array();
                }
            }
            Token::BeginObject
            | Token::BeginArray
            | Token::BeginString
            | Token::Number(_)
            | Token::Bool(_)
            | Token::Null => {
                if self.frames.is_empty() {
                    if self.started {
                        return;
                    }
                    self.started = true;
                }
                self.begin_value(&tok, at);
            }
        }
    }
}

impl TokenSink for ArgsWriter {
    fn token(&mut self, tok: Token<'_>, at: usize) {
        if let Some(rec) = self.recorded.as_mut() {
            rec.push((OwnedToken::of(&tok), at));
        }
        self.handle(tok, at);
        self.sync();
    }

    /// A string written as it arrives (nothing held, decoded, skipped, sniffed or recorded).
    fn takes_escaped(&self) -> bool {
        matches!(self.frames.last(), Some(Frame::Str))
            && self.recorded.is_none()
            && self.decoder.is_none()
            && self.skip.is_none()
            && self.hold.is_none()
            && self.sniff.is_none()
    }

    fn escaped(&mut self, text: &str, at: usize) {
        self.w.escaped(text, at);
        self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Runs `text` through a lenient scanner into an ArgsWriter fed in `chunk`-byte pieces;
    /// returns the fragments and the diagnostic kinds.
    fn run(text: &str, schema: Value, chunk: usize) -> (Vec<String>, Vec<&'static str>) {
        let mut sc = Scanner::new(Dialect::Json, true, 0);
        let mut w = ArgsWriter::new(Some(schema.into()));
        let mut frags = Vec::new();
        let mut pending = String::new();
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            let mut j = (i + chunk).min(bytes.len());
            while !text.is_char_boundary(j) {
                j += 1;
            }
            pending.push_str(&text[i..j]);
            i = j;
            if let Progress::Partial { consumed } | Progress::Done { consumed } = sc.feed(&pending, &mut w) {
                pending.drain(..consumed);
            }
            frags.push(w.take());
        }
        if !sc.is_done() {
            let _ = sc.feed(&pending, &mut w);
            sc.finish(&mut w);
        }
        frags.push(w.take());
        let mut kinds: Vec<&'static str> = w.diags.iter().map(|d| d.kind).collect();
        kinds.sort_unstable();
        (frags, kinds)
    }

    fn coerced(text: &str, schema: Value) -> (Value, Vec<&'static str>) {
        let (whole, kinds) = run(text, schema.clone(), usize::MAX / 2);
        let whole = whole.concat();
        for chunk in [1, 2, 3, 5, 7] {
            let (frags, k) = run(text, schema.clone(), chunk);
            assert_eq!(frags.concat(), whole, "chunk {chunk} of {text}");
            assert_eq!(k, kinds, "chunk {chunk} of {text}");
        }
        let v: Value = serde_json::from_str(&whole).unwrap_or_else(|e| panic!("{whole}: {e}"));
        (v, kinds)
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}, "additionalProperties": false}},
            "properties": {
                "n": {"type": "integer"}, "x": {"type": "number"}, "b": {"type": "boolean"},
                "z": {"type": "string"}, "o": {"type": ["integer", "null"]},
                "l": {"type": "array", "items": {"type": "integer"}},
                "e": {"type": "string", "enum": ["Celsius", "Fahrenheit"]},
                "j": {"type": "object", "properties": {"a": {"type": "integer"}}},
                "ja": {"type": "array", "items": {"type": "integer"}},
                "p": {"$ref": "#/$defs/pt"},
                "pts": {"type": "array", "items": {"$ref": "#/$defs/pt"}},
                "u": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "un": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
                "uo": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/pt"}]},
                "mode": {"type": "string", "default": "fast"},
                "objs": {"type": "array", "items": {"type": "object"}}
            },
            "required": ["mode"]
        })
    }

    #[test]
    fn every_kind() {
        let (v, k) = coerced(
            r#"{"n": "42", "x": "3.5", "b": "true", "z": "02139", "o": "null", "l": "7", "e": "celsius",
               "j": "{\"a\": \"1\"}", "ja": " [1, \"2\"]", "p": {"x": "1.5", "y": 2}, "pts": [{"x": "2"}],
               "u": "12", "un": "5", "uo": {"x": "3"}, "objs": {"k": 1}, "extra": [1, {"q": "s"}]}"#,
            schema(),
        );
        assert_eq!(
            v,
            json!({"n": 42, "x": 3.5, "b": true, "z": "02139", "o": null, "l": [7], "e": "Celsius",
                   "j": {"a": 1}, "ja": [1, 2], "p": {"x": 1.5}, "pts": [{"x": 2}], "u": "12", "un": 5,
                   "uo": {"x": 3}, "objs": [{"k": 1}], "extra": [1, {"q": "s"}], "mode": "fast"})
        );
        for kind in [
            "coerced_number",
            "coerced_boolean",
            "coerced_null",
            "enum_case",
            "wrapped_in_array",
            "decoded_string",
            "dropped_property",
            "default_filled",
        ] {
            assert!(k.contains(&kind), "{kind} missing from {k:?}");
        }
    }

    #[test]
    fn fits_already_and_no_schema() {
        let (v, k) = coerced(r#"{"n": 1, "z": "a\"b", "mode": "slow", "e": "Celsius"}"#, schema());
        assert_eq!(v, json!({"n": 1, "z": "a\"b", "mode": "slow", "e": "Celsius"}));
        assert!(k.is_empty(), "{k:?}");
        let (v, _) = coerced(r#"{"n": "1", "z": [1]}"#, json!({}));
        assert_eq!(v, json!({"n": "1", "z": [1]}));
    }

    #[test]
    fn strings_stream_as_they_arrive() {
        let text = r#"{"z": "hello world", "n": "4"#;
        let (frags, _) = run(text, schema(), 1);
        // The string's text appears before the value ends.
        let joined: String = frags.iter().take_while(|f| !f.contains('4')).cloned().collect();
        assert!(joined.contains("hello world"), "{frags:?}");
        // The held number is written whole.
        assert!(frags.iter().any(|f| f.contains("\"n\":4")), "{frags:?}");
    }

    #[test]
    fn truncated_and_deferred() {
        let (v, _) = coerced(r#"{"n": "7", "j": "{\"a\": \"2"#, schema());
        assert_eq!(v, json!({"n": 7, "j": {"a": 2}, "mode": "fast"}));
        let mut w = ArgsWriter::deferred();
        let mut sc = Scanner::new(Dialect::Json, true, 0);
        let _ = sc.feed(r#"{"n": "3"}"#, &mut w);
        assert_eq!(w.out, r#"{"n":"3"}"#);
        w.set_schema(Some(schema().into()));
        assert_eq!(w.take(), r#"{"n":3,"mode":"fast"}"#);
        let mut w = ArgsWriter::new(Some(schema().into()));
        let _ = Scanner::new(Dialect::Json, true, 0).feed(r#"{"z": "ab", "x": "1"#, &mut w);
        w.close_all();
        let v: Value = serde_json::from_str(&w.take()).unwrap();
        assert_eq!(v, json!({"z": "ab", "x": 1, "mode": "fast"}));
    }

    #[test]
    fn unions_held_when_the_first_token_cannot_decide() {
        let s = json!({"type": "object", "properties": {"v": {"anyOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "boolean"}}, "required": ["b"]}
        ]}, "w": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]}}});
        let (v, k) = coerced(r#"{"v": {"b": "false"}, "w": ["1.5", 2]}"#, s.clone());
        assert_eq!(v, json!({"v": {"b": false}, "w": [1.5, 2]}));
        assert!(k.contains(&"coerced_boolean") && k.contains(&"coerced_number"), "{k:?}");
        // A plain string branch: the string streams unchanged.
        let (v, k) = coerced(r#"{"w": "12"}"#, s);
        assert_eq!(v, json!({"w": "12"}));
        assert!(k.is_empty());
    }

    #[test]
    fn nested_encodings_drops_and_strings() {
        let s = json!({"type": "object", "additionalProperties": false, "properties": {
            "o": {"type": "object", "properties": {"inner": {"type": "object", "properties": {"n": {"type": "integer"}}}}},
            "t": {"type": "string"}
        }});
        // An encoded object inside an encoded object is decoded too (held whole).
        let inner = serde_json::to_string(&json!({"n": "5"}).to_string()).unwrap();
        let outer = serde_json::to_string(&format!("{{\"inner\": {inner}}}")).unwrap();
        let text = format!(r#"{{"drop": {{"a": ["x", {{"b": "}}"}}]}}, "o": {outer}, "t": 7, "gone": "s"}}"#);
        let (v, k) = coerced(&text, s);
        assert_eq!(v, json!({"o": {"inner": {"n": 5}}, "t": "7"}));
        assert_eq!(k.iter().filter(|k| **k == "dropped_property").count(), 2, "{k:?}");
        assert!(k.contains(&"decoded_string") && k.contains(&"coerced_string"), "{k:?}");
    }

    #[test]
    fn hostile_schemas_do_not_loop() {
        for s in [
            json!({"$ref": "#"}),
            json!(true),
            json!({"type": "object", "properties": {"c": {"$ref": "#"}}}),
            json!({"type": "array", "items": {"type": "array", "items": {"$ref": "#/items"}}}),
            json!({"anyOf": [{"$ref": "#"}]}),
        ] {
            let deep = format!("{}{}", r#"{"c": "#.repeat(100), "}".repeat(100));
            let (v, _) = coerced(&deep, s.clone());
            assert!(v.is_object(), "{v}");
            let (v, _) = coerced(r#"{"c": {"c": "1"}}"#, s);
            assert!(v.is_object(), "{v}");
        }
    }
}

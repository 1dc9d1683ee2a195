//! A quick, exact "certainly valid" check of a call's arguments (compact JSON text) against
//! the subset of JSON Schema most tool schemas are written in: `type`, `properties`,
//! `required`, `additionalProperties`, `items` and string `enum`s, plus annotations.
//!
//! It reads the arguments text once, without building a value, and answers `true` only
//! where the full validator would find nothing. Everything else goes to the full validator
//! ([`crate::validate`]), which also writes the messages: a schema with any other keyword
//! (compiled to no plan at all), a violation, and instances the subset does not model
//! exactly (an integer written with a fraction or exponent, an escaped key or enum string).
//!
//! [`compact_object_rest`] runs the same reader over model output: it writes a call's
//! arguments in one piece where they arrived whole, are plain JSON and are certainly valid,
//! so that coercion would leave them alone (the envelope family's fast path).
// Built without validation, only the compactor is used (with no plan to check).
#![cfg_attr(not(feature = "validate"), allow(dead_code))]

use serde_json::Value;

/// Keywords that never make an instance invalid here. `$defs`/`definitions` only matter
/// through `$ref`, which plans do not support.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "$schema",
    "$id",
    "$defs",
    "definitions",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Schemas nested deeper than this get no plan; instances nested deeper are not checked here.
const MAX_DEPTH: usize = 64;

const T_NULL: u8 = 1;
const T_BOOL: u8 = 2;
const T_INTEGER: u8 = 4;
const T_NUMBER: u8 = 8;
const T_STRING: u8 = 16;
const T_ARRAY: u8 = 32;
const T_OBJECT: u8 = 64;

/// What a (sub)schema asks of an instance, in the subset this module models.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Anything is valid.
    Any,
    /// No schema at all applies here (a property no schema names, an array without
    /// `items`, anything inside an unconstrained value): anything is valid, and the arguments
    /// writer passes the value through as it is, where a schema, even an unconstrained one,
    /// makes it hold a scalar and rewrite it.
    Absent,
    Node(Box<Node>),
}

#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Allowed types (a `T_*` set); `None` when `type` is absent.
    types: Option<u8>,
    properties: Vec<(String, Plan)>,
    required: Vec<String>,
    additional: Additional,
    items: Option<Plan>,
    enum_strings: Option<Vec<String>>,
}

#[derive(Debug, Default)]
enum Additional {
    #[default]
    Allowed,
    Forbidden,
    Schema(Plan),
}

fn type_bits(name: &str) -> Option<u8> {
    Some(match name {
        "null" => T_NULL,
        "boolean" => T_BOOL,
        "integer" => T_INTEGER,
        // Every integer is a number.
        "number" => T_NUMBER | T_INTEGER,
        "string" => T_STRING,
        "array" => T_ARRAY,
        "object" => T_OBJECT,
        _ => return None,
    })
}

impl Plan {
    /// The plan of `schema`, or `None` when it uses anything outside the modelled subset.
    pub(crate) fn compile(schema: &Value) -> Option<Plan> {
        compile(schema, 0)
    }

    /// True when `args` (JSON text, as the arguments writer produces it) certainly satisfies
    /// the schema; false when it may not, or when this check cannot tell.
    pub(crate) fn accepts(&self, args: &str) -> bool {
        let mut r = Reader::<false>::new(args, String::new(), MAX_DEPTH);
        r.skip_ws();
        if r.i == r.b.len() {
            // No arguments at all are read as `{}`.
            return Reader::<false>::new("{}", String::new(), MAX_DEPTH).value(self, 0);
        }
        let ok = r.value(self, 0);
        r.skip_ws();
        ok && r.i == r.b.len()
    }
}

fn compile(schema: &Value, depth: usize) -> Option<Plan> {
    if depth > MAX_DEPTH {
        return None;
    }
    let map = match schema {
        Value::Bool(true) => return Some(Plan::Any),
        Value::Object(map) => map,
        _ => return None,
    };
    let mut node = Node::default();
    for (key, v) in map {
        match key.as_str() {
            "type" => {
                node.types = Some(match v {
                    Value::String(s) => type_bits(s)?,
                    Value::Array(names) => names
                        .iter()
                        .map(|n| n.as_str().and_then(type_bits))
                        .try_fold(0u8, |acc, b| b.map(|b| acc | b))?,
                    _ => return None,
                });
            }
            "properties" => {
                for (name, sub) in v.as_object()? {
                    node.properties.push((name.clone(), compile(sub, depth + 1)?));
                }
            }
            "required" => {
                for name in v.as_array()? {
                    node.required.push(name.as_str()?.to_string());
                }
            }
            "additionalProperties" => {
                node.additional = match v {
                    Value::Bool(true) => Additional::Allowed,
                    Value::Bool(false) => Additional::Forbidden,
                    Value::Object(_) => Additional::Schema(compile(v, depth + 1)?),
                    _ => return None,
                };
            }
            "items" => node.items = Some(compile(v, depth + 1)?),
            "enum" => {
                let mut names = Vec::new();
                for value in v.as_array()? {
                    names.push(value.as_str()?.to_string());
                }
                node.enum_strings = Some(names);
            }
            k if ANNOTATIONS.contains(&k) => {}
            _ => return None,
        }
    }
    let unconstrained = node.types.is_none()
        && node.properties.is_empty()
        && node.required.is_empty()
        && matches!(node.additional, Additional::Allowed)
        && node.items.is_none()
        && node.enum_strings.is_none();
    Some(if unconstrained {
        Plan::Any
    } else {
        Plan::Node(Box::new(node))
    })
}

/// Reads JSON text and checks it against a plan as it goes. Without `COPY` it reads the
/// arguments text the writer produced; with `COPY` it reads model output and writes the
/// compact form of what it read to `out`, as the scanner and the arguments writer would (see
/// [`compact_object_rest`]). Either way the plan sees the compact text: keys and enum values
/// are compared as the writer writes them.
struct Reader<'a, const COPY: bool> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    out: String,
    /// Values nested deeper than this are not read.
    max_depth: usize,
    /// `COPY`: the arguments writer coerces to a schema (and writes every number it holds
    /// for that as serde_json writes it).
    coerced: bool,
}

impl<'a, const COPY: bool> Reader<'a, COPY> {
    fn new(s: &'a str, out: String, max_depth: usize) -> Self {
        Reader {
            s,
            b: s.as_bytes(),
            i: 0,
            out,
            max_depth,
            coerced: false,
        }
    }

    fn skip_ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    /// Consumes the ASCII byte `c` (after whitespace), writing it.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            if COPY {
                self.out.push(c as char);
            }
            true
        } else {
            false
        }
    }

    /// The compact text of a string read by [`Reader::string`].
    fn text(&self, (start, end): (usize, usize)) -> &[u8] {
        if COPY {
            &self.out.as_bytes()[start..end]
        } else {
            &self.b[start..end]
        }
    }

    /// Reads a string (at its opening quote); returns where its compact text is (between
    /// the quotes; see [`Reader::text`]).
    fn string(&mut self) -> Option<(usize, usize)> {
        if COPY {
            return self.copy_string();
        }
        let b = self.b;
        let start = self.i + 1;
        let mut j = start;
        loop {
            j = crate::json::find_needing_escape_wide(b, j);
            match b.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some((start, j));
                }
                b'\\' => j += 2,
                // A raw control character: not JSON.
                _ => return None,
            }
        }
    }

    /// [`Reader::string`] for model output: plain text and the escapes the writer keeps are
    /// copied as they stand, `\/` and `\u` escapes are decoded and written as the writer
    /// writes the character. Anything the scanner would mend (a raw control character, an
    /// invalid escape, a lone surrogate) is refused.
    fn copy_string(&mut self) -> Option<(usize, usize)> {
        let (s, b) = (self.s, self.b);
        self.out.push('"');
        let start = self.out.len();
        // Text from `run` on is copied as it stands when the next stop comes.
        let mut run = self.i + 1;
        let mut j = run;
        loop {
            j += crate::json::verbatim_prefix_len_wide(&b[j..]);
            match *b.get(j)? {
                b'"' => {
                    self.out.push_str(&s[run..j]);
                    let end = self.out.len();
                    self.out.push('"');
                    self.i = j + 1;
                    return Some((start, end));
                }
                b'\\' => {
                    // An escape that is not written as it stands (or one cut off).
                    let e = *b.get(j + 1)?;
                    self.out.push_str(&s[run..j]);
                    if e == b'/' {
                        self.out.push('/');
                        j += 2;
                    } else if e == b'u' {
                        let (ch, len) = unicode_escape(&b[j..])?;
                        let mut tmp = [0u8; 4];
                        crate::json::escape_into(&mut self.out, ch.encode_utf8(&mut tmp));
                        j += len;
                    } else {
                        return None;
                    }
                    run = j;
                }
                _ => return None,
            }
        }
    }

    /// Whether the compact text of a string holds an escape.
    fn escaped(&self, at: (usize, usize)) -> bool {
        memchr::memchr(b'\\', self.text(at)).is_some()
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            if COPY {
                self.out.push_str(&self.s[self.i - word.len()..self.i]);
            }
            true
        } else {
            false
        }
    }

    /// Reads a number; returns whether it is written as an integer (no fraction, no exponent).
    /// `held`: a schema applies to it (see [`Plan::Absent`]).
    fn number(&mut self, held: bool) -> Option<bool> {
        if COPY {
            return self.copy_number(held);
        }
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i == digits {
            return None;
        }
        let mut integer = true;
        while self.i < self.b.len() && matches!(self.b[self.i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
            integer = false;
            self.i += 1;
        }
        (self.i > start).then_some(integer)
    }

    /// [`Reader::number`] for model output: only a number in JSON's own syntax is read. It is
    /// written as it stands, or, where the writer coerces and a schema applies (`held`: the
    /// writer holds the number), as serde_json writes it, as the writer does.
    fn copy_number(&mut self, held: bool) -> Option<bool> {
        let b = self.b;
        let start = self.i;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        let mut i = start + usize::from(b.get(start) == Some(&b'-'));
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if !digits(&mut i) {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            integer = false;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        let text = &self.s[start..i];
        if crate::json::is_out_of_range(text) {
            // The scanner writes it as null.
            return None;
        }
        self.i = i;
        let digits = i - start - usize::from(b[start] == b'-');
        // Integers of up to 18 digits are i64/u64 values, which serde_json writes as they
        // stand (but `-0`).
        if !(self.coerced && held) || (integer && digits <= 18 && text != "-0") {
            self.out.push_str(text);
            return Some(integer);
        }
        // What the writer writes: serde_json's number (a number serde_json cannot hold, like
        // 1e400, becomes a string there: left to the writer).
        let Ok(Value::Number(n)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        let written = n.to_string();
        self.out.push_str(&written);
        Some(!written.contains(['.', 'e', 'E']))
    }

    /// Reads one value and checks it against `plan`.
    fn value(&mut self, plan: &Plan, depth: usize) -> bool {
        if depth > self.max_depth {
            return false;
        }
        self.skip_ws();
        let node = match plan {
            Plan::Any | Plan::Absent => None,
            Plan::Node(n) => Some(&**n),
        };
        let Some(&c) = self.b.get(self.i) else { return false };
        let kind = match c {
            b'{' => T_OBJECT,
            b'[' => T_ARRAY,
            b'"' => T_STRING,
            b't' | b'f' => T_BOOL,
            b'n' => T_NULL,
            _ => T_NUMBER,
        };
        match c {
            b'{' => {
                self.eat(b'{');
                return self.object(node, depth) && node.is_none_or(|n| n.types.is_none_or(|t| t & T_OBJECT != 0));
            }
            b'[' => {
                self.eat(b'[');
                return self.array(node, depth) && node.is_none_or(|n| n.types.is_none_or(|t| t & T_ARRAY != 0));
            }
            b'"' => {
                let Some(at) = self.string() else {
                    return false;
                };
                let Some(n) = node else { return true };
                if n.types.is_some_and(|t| t & T_STRING == 0) {
                    return false;
                }
                return match &n.enum_strings {
                    None => true,
                    Some(names) => !self.escaped(at) && names.iter().any(|s| s.as_bytes() == self.text(at)),
                };
            }
            b't' => {
                if !self.literal(b"true") {
                    return false;
                }
            }
            b'f' => {
                if !self.literal(b"false") {
                    return false;
                }
            }
            b'n' => {
                if !self.literal(b"null") {
                    return false;
                }
            }
            _ => {
                let held = !matches!(plan, Plan::Absent);
                let Some(integer) = self.number(held) else { return false };
                let Some(n) = node else { return true };
                if n.enum_strings.is_some() {
                    return false;
                }
                return n
                    .types
                    .is_none_or(|t| t & T_NUMBER != 0 || (integer && t & T_INTEGER != 0));
            }
        }
        node.is_none_or(|n| n.enum_strings.is_none() && n.types.is_none_or(|t| t & kind != 0))
    }

    /// Reads an object's members (after `{`) and checks them against `node`.
    fn object(&mut self, node: Option<&Node>, depth: usize) -> bool {
        if node.is_some_and(|n| n.enum_strings.is_some()) {
            return false;
        }
        let mut seen_required = 0usize;
        let mut seen = vec![false; node.map_or(0, |n| n.required.len())];
        if self.eat(b'}') {
            return seen.is_empty();
        }
        loop {
            self.skip_ws();
            if self.b.get(self.i) != Some(&b'"') {
                return false;
            }
            let Some(at) = self.string() else {
                return false;
            };
            if !self.eat(b':') {
                return false;
            }
            let sub = match node {
                None => &Plan::Absent,
                Some(n) => {
                    if self.escaped(at) {
                        return false;
                    }
                    let key = self.text(at);
                    if let Some(k) = n.required.iter().position(|r| r.as_bytes() == key) {
                        if !seen[k] {
                            seen[k] = true;
                            seen_required += 1;
                        }
                    }
                    match n.properties.iter().find(|(name, _)| name.as_bytes() == key) {
                        Some((_, p)) => p,
                        None => match &n.additional {
                            Additional::Allowed => &Plan::Absent,
                            Additional::Forbidden => return false,
                            Additional::Schema(p) => p,
                        },
                    }
                }
            };
            if !self.value(sub, depth + 1) {
                return false;
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}') && seen_required == seen.len();
        }
    }

    /// Reads an array's elements (after `[`) and checks them against `node`'s `items`.
    fn array(&mut self, node: Option<&Node>, depth: usize) -> bool {
        if node.is_some_and(|n| n.enum_strings.is_some()) {
            return false;
        }
        let items = node.and_then(|n| n.items.as_ref()).unwrap_or(&Plan::Absent);
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(items, depth + 1) {
                return false;
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b']');
        }
    }
}

/// Decodes the `\uXXXX` escape at the start of `b` (a surrogate pair as one character);
/// returns the character and the escape's length. `None` for what the scanner would mend:
/// a digit that is not hex, a lone surrogate.
fn unicode_escape(b: &[u8]) -> Option<(char, usize)> {
    let hex4 = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        digits
            .iter()
            .try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
    };
    let code = hex4(2)?;
    match code {
        0xD800..=0xDBFF => {
            if b.get(6..8)? != b"\\u" {
                return None;
            }
            let low = hex4(8)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return None;
            }
            Some((char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))?, 12))
        }
        0xDC00..=0xDFFF => None,
        _ => Some((char::from_u32(code)?, 6)),
    }
}

/// Reads the rest of a JSON object from model output (`text` starts just after its `{`)
/// and appends its compact form after `{`, as the scanner and the arguments writer would
/// write it, to `out`; the plan must accept it. Returns the buffer, and how many bytes of
/// `text` were read (through the closing `}`) or `None` when the object is not complete,
/// not plain JSON (anything the scanner would mend), or not certainly valid against the plan
/// (what the writer might coerce); the buffer's length is then unspecified past its old length.
/// `coerced`: the writer coerces to the schema the plan is of (and writes the numbers it
/// holds as serde_json does); otherwise it writes tokens as they are.
/// Values nested more than `max_depth` levels below the object are refused.
pub(crate) fn compact_object_rest(
    text: &str,
    plan: &Plan,
    coerced: bool,
    max_depth: usize,
    out: String,
) -> (String, Option<usize>) {
    let node = match plan {
        Plan::Any | Plan::Absent => None,
        Plan::Node(n) => Some(&**n),
    };
    let mut r = Reader::<true>::new(text, out, max_depth.min(MAX_DEPTH));
    r.coerced = coerced;
    let ok = r.object(node, 0) && node.is_none_or(|n| n.types.is_none_or(|t| t & T_OBJECT != 0));
    (r.out, ok.then_some(r.i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(schema: Value) -> Plan {
        Plan::compile(&schema).expect("a plan")
    }

    #[test]
    fn schemas_outside_the_subset_get_no_plan() {
        for schema in [
            json!({"type": "string", "pattern": "^a"}),
            json!({"properties": {"n": {"type": "integer", "minimum": 0}}}),
            json!({"anyOf": [{"type": "string"}]}),
            json!({"$ref": "#/$defs/x", "$defs": {"x": {}}}),
            json!({"type": "strange"}),
            json!({"items": [{"type": "string"}]}),
            json!({"enum": ["a", 1]}),
            json!({"type": "string", "format": "date"}),
            json!(false),
        ] {
            assert!(Plan::compile(&schema).is_none(), "{schema}");
        }
    }

    #[test]
    fn accepts_only_what_is_certainly_valid() {
        let p = plan(json!({
            "type": "object",
            "title": "args",
            "properties": {
                "city": {"type": "string", "description": "where"},
                "days": {"type": "integer"},
                "temp": {"type": "number"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "opt": {"type": ["string", "null"]},
                "nested": {"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"]}
            },
            "required": ["city"],
            "additionalProperties": false
        }));
        for ok in [
            r#"{"city":"Paris"}"#,
            r#"{"city":"Paris","days":3,"temp":-1.5e3,"unit":"f","tags":["a","b\"c"],"opt":null}"#,
            r#"{"city":"Par\"is","nested":{"x":true},"temp":2}"#,
            r#"{ "city" : "Zürich" , "days" : -0 }"#,
        ] {
            assert!(p.accepts(ok), "{ok}");
        }
        for not_sure in [
            r#"{}"#,
            r#"{"days":3}"#,
            r#"{"city":1}"#,
            r#"{"city":"x","days":3.0}"#,
            r#"{"city":"x","days":1e2}"#,
            r#"{"city":"x","unit":"k"}"#,
            r#"{"city":"x","unit":"\u0063"}"#,
            r#"{"city":"x","extra":1}"#,
            r#"{"cit\u0079":"x"}"#,
            r#"{"city":"x","tags":["a",2]}"#,
            r#"{"city":"x","opt":false}"#,
            r#"{"city":"x","nested":{}}"#,
            r#"{"city":"x"} trailing"#,
            r#"{"city":"x""#,
            r#"["city"]"#,
            "",
        ] {
            assert!(!p.accepts(not_sure), "{not_sure}");
        }
    }

    #[test]
    fn keywords_apply_to_their_own_types() {
        let p = plan(json!({"properties": {"a": {"type": "integer"}}, "required": ["a"], "items": {"type": "string"}}));
        assert!(p.accepts(r#""text""#));
        assert!(p.accepts(r#"[]"#));
        assert!(p.accepts(r#"["x"]"#));
        assert!(!p.accepts(r#"[1]"#));
        assert!(p.accepts(r#"{"a":1,"b":[{"deep":[null,true]}]}"#));
        assert!(!p.accepts(r#"{"b":1}"#));
        // No arguments at all are `{}`.
        assert!(plan(json!({"type": "object"})).accepts("  "));
        assert!(!plan(json!({"type": "object", "required": ["a"]})).accepts(""));
    }

    /// What the scanner and the arguments writer make of `text` (a JSON object) with
    /// `schema`, and whether they mended or coerced anything.
    fn token_by_token(text: &str, schema: Option<&Value>) -> (String, bool) {
        use crate::args::ArgsWriter;
        use crate::json::{Dialect, Progress, Scanner};
        let mut w = ArgsWriter::new(schema.map(|s| crate::schema_ref::SchemaRef::new(s.clone())));
        let mut sc = Scanner::new(Dialect::Json, true, 0);
        let complete = matches!(sc.feed(text, &mut w), Progress::Done { consumed } if consumed == text.len());
        let changed = !complete || !sc.repairs.is_empty() || w.has_diags();
        (w.take(), changed)
    }

    /// Objects written whole by `compact_object_rest`, or `None`.
    fn whole(text: &str, plan: &Plan) -> Option<String> {
        let rest = text.strip_prefix('{').expect("an object");
        let coerced = !matches!(plan, Plan::Any);
        let (out, read) = compact_object_rest(rest, plan, coerced, MAX_DEPTH, "{".to_string());
        read.map(|n| {
            assert_eq!(n, rest.len(), "{text}");
            out
        })
    }

    /// The fast path writes exactly what the token-by-token path writes, and refuses what
    /// that path mends.
    #[test]
    fn compact_object_rest_writes_what_the_writer_writes() {
        let strings = [
            r#""plain""#,
            r#""esc \" \\ \n \t \b \f \r end""#,
            r#""slash \/ and \u00e9 \u4e2d \u0041""#,
            r#""pair \ud83c\udf38 ok""#,
            r#""controls \u0000 \u001f \u000a \u0022 \u005c \u007f \u2028""#,
            r#""Zürich — 🌸""#,
            r#""""#,
        ];
        let scalars = [
            "0", "-0", "12", "-3.25", "1e5", "1E+5", "2.5e-3", "true", "false", "null",
        ];
        let mut values: Vec<String> = strings.iter().chain(scalars.iter()).map(|v| v.to_string()).collect();
        values.push(format!("[ {} , {} ]", strings[1], scalars[3]));
        values.push(format!(
            "{{ \"in\\u0065r\" : {{ \"x\" : [ ] , \"y\" : {{ }} }} , \"z\" : {} }}",
            strings[3]
        ));
        let mut accepted = 0;
        for v in &values {
            for text in [
                format!("{{\"a\":{v}}}"),
                format!("{{ \"a\" : {v} , \"b\\/\\u00e9\" :\n\t{v} }}"),
                format!("{{\"k\": [{v}, {v}]}}"),
            ] {
                let (slow, changed) = token_by_token(&text, None);
                assert!(!changed, "{text}");
                assert_eq!(whole(&text, &Plan::Any).as_deref(), Some(slow.as_str()), "{text}");
                accepted += 1;
            }
        }
        assert_eq!(accepted, values.len() * 3);
        assert_eq!(whole("{ }", &Plan::Any).as_deref(), Some("{}"));
        // What the scanner mends, or what is not here whole, is left to it.
        for text in [
            "{\"a\":1,}",
            "{'a':1}",
            "{\"a\":\"line\nbreak\"}",
            r#"{"a":"\ud83c alone"}"#,
            r#"{"a":"\udf38"}"#,
            r#"{"a":"\u12g4"}"#,
            r#"{"a":"\x41"}"#,
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":+1}",
            "{\"a\":NaN}",
            "{\"a\":1e400}",
            "{\"a\":-2E+999}",
            "{\"a\":True}",
            "{\"a\":1 /* c */}",
            "{\"a\":1",
            "{\"a\":\"open",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
        ] {
            assert_eq!(whole(text, &Plan::Any), None, "{text}");
        }
        // Nested deeper than allowed: refused.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(3), "]".repeat(3));
        let rest = &deep[1..];
        assert!(compact_object_rest(rest, &Plan::Any, false, 4, String::new())
            .1
            .is_some());
        assert!(compact_object_rest(rest, &Plan::Any, false, 3, String::new())
            .1
            .is_none());
    }

    /// With a schema, only arguments the writer would leave alone are written whole: what
    /// it might coerce (or the quick check cannot vouch for) is left to it.
    #[test]
    fn compact_object_rest_leaves_what_coercion_might_change() {
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer"}, "s": {"type": "string"}, "u": {"enum": ["c", "f"]},
                "l": {"type": "array", "items": {"type": "string"}}, "b": {"type": "boolean"}
            },
            "required": ["n"],
            "additionalProperties": false
        });
        let p = plan(schema.clone());
        for ok in [
            r#"{"n": 1}"#,
            r#"{"n": -2, "s": "x\u00e9", "u": "f", "l": ["a", "b"], "b": true}"#,
            r#"{"s": "\"q\"", "n": 0}"#,
            // An enum value is compared as the writer writes it.
            r#"{"n": 1, "u": "\u0066"}"#,
            r#"{"n": 123456789012345678, "l": ["x"]}"#,
        ] {
            let (slow, changed) = token_by_token(ok, Some(&schema));
            assert!(!changed, "{ok}");
            assert_eq!(whole(ok, &p).as_deref(), Some(slow.as_str()), "{ok}");
        }
        for coerced in [
            r#"{"n": "1"}"#,
            r#"{"n": 1.0}"#,
            r#"{"n": 1, "u": "F"}"#,
            r#"{"n": 1, "l": "a"}"#,
            r#"{"n": 1, "b": "true"}"#,
            r#"{"n": 1, "extra": 2}"#,
            r#"{"s": "x"}"#,
        ] {
            assert_eq!(whole(coerced, &p), None, "{coerced}");
        }
        // Numbers the writer holds (wherever a schema applies, even an unconstrained one) are
        // written as serde_json writes them, as the writer does.
        let open = json!({"type": "object", "properties": {"x": {"description": "any"}}});
        let open_plan = plan(open.clone());
        for n in [
            "0",
            "-12",
            "2.5",
            "-0.001",
            "1e-7",
            "1.5e300",
            "-0",
            "1e5",
            "1E5",
            "2.50",
            "-7.8e-05",
            "1234567890123456789012",
            "1e400",
        ] {
            let text = format!("{{\"x\": {n}}}");
            let (slow, _) = token_by_token(&text, Some(&open));
            let fast = whole(&text, &open_plan);
            if n == "1e400" {
                // serde_json cannot hold it: the writer makes it a string.
                assert_eq!(fast, None, "{text} is written {slow}");
            } else {
                assert_eq!(fast.as_deref(), Some(slow.as_str()), "{text}");
            }
            // Where no schema applies, the writer keeps the number as it stands (one out of
            // any reader's range is mended by the scanner: left to it).
            let free = format!("{{\"x\": {{\"inner\": {n}}}}}");
            let (slow, changed) = token_by_token(&free, Some(&open));
            if n == "1e400" {
                assert!(changed && whole(&free, &open_plan).is_none(), "{free}: {slow}");
            } else {
                assert_eq!(slow, format!("{{\"x\":{{\"inner\":{n}}}}}"));
                assert_eq!(whole(&free, &open_plan), Some(slow), "{free}");
            }
        }
    }

    /// Values the writer holds whole to decide on them (type unions, enums, values of any
    /// type under a schema) come out of the fast path as the writer writes them.
    #[test]
    fn compact_object_rest_matches_held_values() {
        let schema = json!({"type": "object", "properties": {
            "o": {"type": ["object", "null"]}, "a": {"type": ["array", "null"]},
            "s": {"type": ["string", "null"]}, "n": {"type": ["number", "string"]},
            "i": {"type": ["integer", "boolean"]}, "e": {"enum": ["x", "y\"z", "é"]},
            "any": {"description": "anything"}, "t": true,
            "deep": {"type": "object", "properties": {"k": {"type": "array", "items": {"type": ["string", "integer"]}}}},
            "ao": {"type": "array", "items": {"type": ["object", "array"]}}
        }});
        let p = plan(schema.clone());
        let values = [
            r#"{"b": 1, "a": [2, {"c": "d"}], "b": 3}"#,
            r#"{"z": 1, "a": 2}"#,
            r#"[3, "x", null, {"q": [1.5]}]"#,
            r#""text \u00e9 \n""#,
            r#""y\"z""#,
            r#""\u00e9""#,
            "null",
            "true",
            "7",
            "-1.25",
            "[]",
            "{}",
        ];
        let keys = ["o", "a", "s", "n", "i", "e", "any", "t", "other"];
        let mut fast = 0;
        for k in keys {
            for v in values {
                for text in [
                    format!(r#"{{"{k}": {v}}}"#),
                    format!(r#"{{"deep": {{"k": [{v}]}}, "ao": [{v}], "{k}": {v}}}"#),
                ] {
                    let (slow, _) = token_by_token(&text, Some(&schema));
                    if let Some(out) = whole(&text, &p) {
                        fast += 1;
                        assert_eq!(out, slow, "{text}");
                    }
                }
            }
        }
        assert!(fast > 0);
    }

    /// Wherever the quick check says valid, the full validator agrees.
    #[cfg(feature = "validate")]
    #[test]
    fn never_disagrees_with_the_full_validator() {
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer"}, "x": {"type": "number"}, "s": {"type": "string"},
                "e": {"enum": ["a", "b"]}, "l": {"type": "array", "items": {"type": ["integer", "null"]}},
                "o": {"type": "object", "additionalProperties": {"type": "boolean"}}
            },
            "required": ["n"]
        });
        let p = plan(schema.clone());
        let v = jsonschema::validator_for(&schema).expect("schema");
        let values = [
            "1",
            "-2",
            "2.5",
            "1e3",
            "1.0",
            "\"a\"",
            "\"c\"",
            "true",
            "null",
            "[]",
            "[1,null]",
            "[1,\"x\"]",
            "{}",
            "{\"k\":true}",
            "{\"k\":1}",
        ];
        let keys = ["n", "x", "s", "e", "l", "o", "other"];
        let (mut accepted, mut valid) = (0, 0);
        for a in values {
            for b in values {
                for ka in keys {
                    let text = format!("{{\"n\":1,\"{ka}\":{a},\"other\":{b}}}");
                    let value: Value = serde_json::from_str(&text).expect("json");
                    let is_valid = v.is_valid(&value);
                    valid += usize::from(is_valid);
                    if p.accepts(&text) {
                        accepted += 1;
                        assert!(is_valid, "{text}");
                    }
                }
            }
        }
        // Most valid instances are recognised without the full validator.
        assert!(accepted * 10 >= valid * 8, "{accepted} of {valid}");
        assert!(valid < values.len() * values.len() * keys.len());
    }
}

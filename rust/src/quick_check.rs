//! A quick, exact "certainly valid" check of a call's arguments (compact JSON text) against
//! the subset of JSON Schema most tool schemas are written in: `type`, `properties`,
//! `required`, `additionalProperties`, `items` and string `enum`s, plus annotations.
//!
//! It reads the arguments text once, without building a value, and answers `true` only
//! where the full validator would find nothing. Everything else goes to the full validator
//! ([`crate::validate`]), which also writes the messages: a schema with any other keyword
//! (compiled to no plan at all), a violation, and instances the subset does not model
//! exactly (an integer written with a fraction or exponent, an escaped key or enum string).

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
        let mut r = Reader {
            b: args.as_bytes(),
            i: 0,
        };
        r.skip_ws();
        if r.i == r.b.len() {
            // No arguments at all are read as `{}`.
            return Reader { b: b"{}", i: 0 }.value(self, 0);
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

/// Reads JSON text and checks it against a plan as it goes.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn skip_ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Reads a string (at its opening quote); returns its raw text and whether it holds an
    /// escape.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let b = self.b;
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            j = crate::json::find_needing_escape_wide(b, j);
            match b.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some((&b[start..j], escaped));
                }
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                // A raw control character: not JSON.
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// Reads a number; returns whether it is written as an integer (no fraction, no exponent).
    fn number(&mut self) -> Option<bool> {
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

    /// Reads one value and checks it against `plan`.
    fn value(&mut self, plan: &Plan, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.skip_ws();
        let node = match plan {
            Plan::Any => None,
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
                self.i += 1;
                return self.object(node, depth) && node.is_none_or(|n| n.types.is_none_or(|t| t & T_OBJECT != 0));
            }
            b'[' => {
                self.i += 1;
                return self.array(node, depth) && node.is_none_or(|n| n.types.is_none_or(|t| t & T_ARRAY != 0));
            }
            b'"' => {
                let Some((raw, escaped)) = self.string() else {
                    return false;
                };
                let Some(n) = node else { return true };
                if n.types.is_some_and(|t| t & T_STRING == 0) {
                    return false;
                }
                return match &n.enum_strings {
                    None => true,
                    Some(names) => !escaped && names.iter().any(|s| s.as_bytes() == raw),
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
                let Some(integer) = self.number() else { return false };
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
            let Some((key, escaped)) = self.string() else {
                return false;
            };
            if !self.eat(b':') {
                return false;
            }
            let sub = match node {
                None => &Plan::Any,
                Some(n) => {
                    if escaped {
                        return false;
                    }
                    if let Some(k) = n.required.iter().position(|r| r.as_bytes() == key) {
                        if !seen[k] {
                            seen[k] = true;
                            seen_required += 1;
                        }
                    }
                    match n.properties.iter().find(|(name, _)| name.as_bytes() == key) {
                        Some((_, p)) => p,
                        None => match &n.additional {
                            Additional::Allowed => &Plan::Any,
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
        let items = node.and_then(|n| n.items.as_ref()).unwrap_or(&Plan::Any);
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

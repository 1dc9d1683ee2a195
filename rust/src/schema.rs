//! Schema coercion: make arguments fit the tool's JSON Schema the way a careful client
//! would, and never against it.
//!
//! `"42"` becomes 42 where an integer is wanted, `"true"` a boolean, `"null"` null where
//! allowed, a lone value `[value]` where an array is wanted, a JSON-encoded string an
//! object or array where one is wanted, an enum value matched case-insensitively its
//! declared spelling, and a missing required property with a `default` that default.
//! A value that already fits is left alone (`"02139"` stays a string where the schema says
//! string). `$ref`/`$defs`, `anyOf`/`oneOf`/`allOf`, nested objects and arrays are followed;
//! unknown properties are kept unless `additionalProperties` is false.

use serde_json::{Map, Value};

use crate::event::Repair;

/// Maximum `$ref` hops and nesting followed while coercing.
const MAX_DEPTH: usize = 64;

/// Coerces `value` to `schema`; returns the value and what was changed (spans are 0: the
/// value is already parsed; messages carry the JSON pointer).
pub fn coerce(value: &Value, schema: &Value) -> (Value, Vec<Repair>) {
    let mut c = Coercer {
        root: schema,
        repairs: Vec::new(),
    };
    let v = c.value(value, schema, "", 0);
    (v, c.repairs)
}

/// Coerces `value` found at JSON pointer `path` to `schema`, following `$ref`s against
/// `root` (the whole parameters schema). Used by the streaming coercer for held values.
pub fn coerce_in(value: &Value, schema: &Value, root: &Value, path: &str) -> (Value, Vec<Repair>) {
    let mut c = Coercer {
        root,
        repairs: Vec::new(),
    };
    let v = c.value(value, schema, path, 0);
    (v, c.repairs)
}

struct Coercer<'s> {
    root: &'s Value,
    repairs: Vec<Repair>,
}

pub(crate) fn type_names(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Does `v` already satisfy the `type` keyword of `schema` (ignoring other keywords)?
fn fits_type(v: &Value, schema: &Value) -> bool {
    let types = type_names(schema);
    if types.is_empty() {
        return true;
    }
    types.iter().any(|t| match *t {
        "string" => v.is_string(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    })
}

/// Rough check that `v` fits `schema` well enough to pick an `anyOf`/`oneOf` branch.
fn fits(v: &Value, schema: &Value, root: &Value, depth: usize) -> bool {
    let schema = resolve(schema, root, depth);
    if !fits_type(v, schema) {
        return false;
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(v) {
            return false;
        }
    }
    if let (Some(obj), Some(Value::Object(props))) = (v.as_object(), schema.get("properties")) {
        if let Some(Value::Array(req)) = schema.get("required") {
            if req.iter().filter_map(Value::as_str).any(|k| !obj.contains_key(k)) {
                return false;
            }
        }
        if schema.get("additionalProperties") == Some(&Value::Bool(false)) && obj.keys().any(|k| !props.contains_key(k))
        {
            return false;
        }
    }
    true
}

/// Follows a local `$ref` (`#/$defs/X`, `#/definitions/X`, `#`).
pub(crate) fn resolve<'a>(schema: &'a Value, root: &'a Value, depth: usize) -> &'a Value {
    let mut s = schema;
    for _ in 0..MAX_DEPTH.saturating_sub(depth) {
        let Some(Value::String(r)) = s.get("$ref") else {
            return s;
        };
        let Some(path) = r.strip_prefix('#') else { return s };
        match root.pointer(path) {
            Some(target) => s = target,
            None => return s,
        }
    }
    s
}

fn parse_number(s: &str) -> Option<Value> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    let f: f64 = t.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    serde_json::Number::from_f64(f).map(Value::Number)
}

impl Coercer<'_> {
    fn note(&mut self, kind: &'static str, path: &str, message: String) {
        let at = if path.is_empty() { "/" } else { path };
        self.repairs.push(Repair {
            kind,
            start: 0,
            end: 0,
            message: format!("{at}: {message}"),
        });
    }

    fn value(&mut self, v: &Value, schema: &Value, path: &str, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return v.clone();
        }
        let root = self.root;
        let schema = resolve(schema, root, depth);
        // Unions: keep a value that fits a branch; otherwise coerce to the first branch that
        // accepts the coerced value.
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = schema.get(key) {
                if options.iter().any(|o| fits(v, o, root, depth + 1)) {
                    let branch = options
                        .iter()
                        .find(|o| fits(v, o, root, depth + 1))
                        .expect("a fitting branch");
                    return self.value(v, branch, path, depth + 1);
                }
                for o in options {
                    let mut trial = Coercer {
                        root,
                        repairs: Vec::new(),
                    };
                    let c = trial.value(v, o, path, depth + 1);
                    if fits(&c, o, root, depth + 1) {
                        self.repairs.append(&mut trial.repairs);
                        return c;
                    }
                }
                return v.clone();
            }
        }
        if let Some(Value::Array(parts)) = schema.get("allOf") {
            let mut out = v.clone();
            for p in parts {
                out = self.value(&out, p, path, depth + 1);
            }
            return out;
        }
        let v = self.scalar(v, schema, path);
        if let Some(Value::Array(options)) = schema.get("enum") {
            if let Value::String(s) = &v {
                if !options.contains(&v) {
                    let lower = s.to_lowercase();
                    let hits: Vec<&Value> = options
                        .iter()
                        .filter(|o| o.as_str().is_some_and(|x| x.to_lowercase() == lower))
                        .collect();
                    if hits.len() == 1 {
                        self.note("enum_case", path, format!("{s:?} matched the enum value {}", hits[0]));
                        return hits[0].clone();
                    }
                }
            }
        }
        match v {
            Value::Object(obj) => Value::Object(self.object(obj, schema, path, depth)),
            Value::Array(items) => {
                let item_schema = schema.get("items");
                Value::Array(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, it)| match item_schema {
                            Some(s) if s.is_object() => self.value(&it, s, &format!("{path}/{i}"), depth + 1),
                            _ => it,
                        })
                        .collect(),
                )
            }
            other => other,
        }
    }

    /// Type-level coercion of one value (strings to numbers/booleans/null/containers,
    /// lone values to arrays).
    fn scalar(&mut self, v: &Value, schema: &Value, path: &str) -> Value {
        let types = type_names(schema);
        if types.is_empty() || fits_type(v, schema) {
            return v.clone();
        }
        let wants = |t: &str| types.contains(&t);
        if let Value::String(s) = v {
            let t = s.trim();
            if wants("integer") || wants("number") {
                if let Some(n) = parse_number(t) {
                    if wants("number") || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                        let n = if wants("integer") && !wants("number") {
                            n.as_f64().map_or(n.clone(), |f| Value::from(f as i64))
                        } else {
                            n
                        };
                        self.note("coerced_number", path, format!("{s:?} -> {n}"));
                        return n;
                    }
                }
            }
            if wants("boolean") {
                let b = match t.to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                };
                if let Some(b) = b {
                    self.note("coerced_boolean", path, format!("{s:?} -> {b}"));
                    return Value::Bool(b);
                }
            }
            if wants("null") && matches!(t, "null" | "None" | "") {
                self.note("coerced_null", path, format!("{s:?} -> null"));
                return Value::Null;
            }
            if wants("object") || wants("array") {
                if let Ok(parsed) = serde_json::from_str::<Value>(t) {
                    if (parsed.is_object() && wants("object")) || (parsed.is_array() && wants("array")) {
                        self.note("decoded_string", path, "a JSON-encoded string was decoded".into());
                        return parsed;
                    }
                }
            }
        }
        if wants("string") {
            if let Value::Number(n) = v {
                // A number where only a string fits: keep its text (e.g. a zip code).
                self.note("coerced_string", path, format!("{n} -> \"{n}\""));
                return Value::String(n.to_string());
            }
            if let Value::Bool(b) = v {
                self.note("coerced_string", path, format!("{b} -> \"{b}\""));
                return Value::String(b.to_string());
            }
        }
        if wants("array") && !v.is_array() {
            self.note("wrapped_in_array", path, "a lone value was wrapped in an array".into());
            return Value::Array(vec![v.clone()]);
        }
        if (wants("integer") || wants("number")) && v.is_boolean() {
            return v.clone();
        }
        v.clone()
    }

    fn object(&mut self, mut obj: Map<String, Value>, schema: &Value, path: &str, depth: usize) -> Map<String, Value> {
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            let sub = crate::args::pointer_push(path, &k);
            match props.and_then(|p| p.get(&k)) {
                Some(s) => {
                    if let Some(slot) = obj.get_mut(&k) {
                        let new = self.value(&slot.clone(), s, &sub, depth + 1);
                        *slot = new;
                    }
                }
                None => match additional {
                    Some(Value::Bool(false)) => {
                        obj.shift_remove(&k);
                        self.note(
                            "dropped_property",
                            &sub,
                            "not allowed (additionalProperties is false); dropped".into(),
                        );
                    }
                    Some(s @ Value::Object(_)) => {
                        if let Some(slot) = obj.get_mut(&k) {
                            let new = self.value(&slot.clone(), s, &sub, depth + 1);
                            *slot = new;
                        }
                    }
                    _ => {}
                },
            }
        }
        if let (Some(Value::Array(req)), Some(props)) = (schema.get("required"), props) {
            for k in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(k) {
                    if let Some(default) = props
                        .get(k)
                        .map(|p| resolve(p, self.root, depth))
                        .and_then(|p| p.get("default"))
                    {
                        self.note(
                            "default_filled",
                            &format!("{path}/{k}"),
                            format!("missing required property filled with its default {default}"),
                        );
                        obj.insert(k.to_string(), default.clone());
                    }
                }
            }
        }
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(v: Value, s: Value) -> Value {
        coerce(&v, &s).0
    }

    #[test]
    fn scalars() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "integer"}, "x": {"type": "number"}, "b": {"type": "boolean"},
            "z": {"type": "string"}, "o": {"type": ["integer", "null"]}, "l": {"type": "array", "items": {"type": "integer"}},
            "e": {"enum": ["Celsius", "Fahrenheit"]}, "j": {"type": "object"}
        }});
        let got = c(
            json!({"n": "42", "x": "3.5", "b": "true", "z": "02139", "o": "null", "l": "7", "e": "celsius", "j": "{\"a\":1}"}),
            s,
        );
        assert_eq!(
            got,
            json!({"n": 42, "x": 3.5, "b": true, "z": "02139", "o": null, "l": [7], "e": "Celsius", "j": {"a": 1}})
        );
    }

    #[test]
    fn never_against_the_schema() {
        let s = json!({"type": "object", "properties": {"zip": {"type": "string"}, "n": {"type": "integer"}}});
        assert_eq!(
            c(json!({"zip": "02139", "n": "abc"}), s),
            json!({"zip": "02139", "n": "abc"})
        );
    }

    #[test]
    fn refs_unions_defaults_additional() {
        let s = json!({
            "type": "object",
            "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "properties": {
                "p": {"$ref": "#/$defs/pt"},
                "u": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "mode": {"type": "string", "default": "fast"},
                "pts": {"type": "array", "items": {"$ref": "#/$defs/pt"}}
            },
            "required": ["mode"],
            "additionalProperties": false
        });
        let (v, r) = coerce(
            &json!({"p": {"x": "1.5"}, "u": "12", "extra": 1, "pts": [{"x": "2"}]}),
            &s,
        );
        assert_eq!(
            v,
            json!({"p": {"x": 1.5}, "u": "12", "mode": "fast", "pts": [{"x": 2}]})
        );
        assert!(r.iter().any(|d| d.kind == "dropped_property"));
        assert!(r.iter().any(|d| d.kind == "default_filled"));
    }
}

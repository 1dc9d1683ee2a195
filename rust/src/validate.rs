//! Validation of finished tool calls against the declared parameter schemas.
//!
//! Each tool's `parameters` schema is compiled at most once per [`ToolSet`](crate::tools::ToolSet)
//! (lazily, the first time a call to that tool ends, so that a tools list converted for
//! every request costs nothing until a call needs it) and shared by clones of the set.
//! Validation never changes arguments: it reports [`Violation`]s, which the emitter records
//! as `schema_violation` diagnostics whose message starts with the JSON-quoted instance
//! path (see [`violation_path`]).

use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// Whether this build validates (cargo feature `validate`, on by default).
pub const ENABLED: bool = cfg!(feature = "validate");

/// Diagnostic kind of one schema violation.
pub const SCHEMA_VIOLATION: &str = "schema_violation";
/// Diagnostic kind of a declared schema that could not be compiled (its calls go unvalidated).
pub const INVALID_SCHEMA: &str = "invalid_schema";
/// Diagnostic kind of the note that more violations were found than are reported.
pub const VIOLATIONS_TRUNCATED: &str = "schema_violations_truncated";

/// At most this many violations are reported per call (hostile output can make millions).
pub const MAX_VIOLATIONS: usize = 16;
/// Violation messages are cut to about this many bytes (validator messages quote the
/// offending value, which may be large).
pub const MAX_MESSAGE: usize = 400;

/// One way a call's arguments break the tool's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending value in the arguments (`""` for the whole object).
    pub path: String,
    /// The validator's message.
    pub message: String,
}

/// The outcome of compiling one tool's schema.
enum Compiled {
    /// The validator, and the quick check's plan when the schema is in its subset.
    #[cfg(feature = "validate")]
    Ok(Box<jsonschema::Validator>, Option<crate::quick_check::Plan>),
    /// No schema (`"parameters": null`): anything goes.
    Any,
    /// The schema is not a valid JSON Schema (or uses unresolvable references).
    #[cfg_attr(not(feature = "validate"), allow(dead_code))]
    Invalid(String),
}

/// `$ref`s to other documents are never fetched (no network, no files).
#[cfg(feature = "validate")]
struct Offline;

#[cfg(feature = "validate")]
impl jsonschema::Retrieve for Offline {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("external reference {} is not fetched", uri.as_str()).into())
    }
}

/// Built without the `validate` feature: nothing is checked.
#[cfg(not(feature = "validate"))]
fn compile(_schema: &Value) -> Compiled {
    Compiled::Any
}

#[cfg(feature = "validate")]
fn compile(schema: &Value) -> Compiled {
    // `"parameters": null` (as some clients send for tools without arguments) means no
    // schema. `true`, `{}` and other schemas are compiled alike; any other non-object,
    // non-boolean `parameters` is an invalid schema.
    if schema.is_null() {
        return Compiled::Any;
    }
    let built = std::panic::catch_unwind(|| jsonschema::options().with_retriever(Offline).build(schema));
    match built {
        Ok(Ok(v)) => Compiled::Ok(Box::new(v), crate::quick_check::Plan::compile(schema)),
        Ok(Err(e)) => Compiled::Invalid(clip(&e.to_string())),
        Err(_) => Compiled::Invalid("the validator failed on this schema".into()),
    }
}

/// Per-tool compiled validators, filled lazily; clones share them.
#[derive(Clone, Default)]
pub(crate) struct Validators {
    slots: Arc<[OnceLock<Compiled>]>,
}

impl std::fmt::Debug for Validators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let compiled = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("Validators")
            .field("tools", &self.slots.len())
            .field("compiled", &compiled)
            .finish()
    }
}

/// The result of checking one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The arguments fit the schema, or there is nothing to check against.
    Valid,
    /// The violations found (at most [`MAX_VIOLATIONS`]) and how many there were in all.
    Violations { found: Vec<Violation>, total: usize },
    /// The tool's schema is invalid; the message says why. The call was not validated.
    InvalidSchema(String),
}

impl Validators {
    pub(crate) fn new(tools: usize) -> Self {
        Validators {
            slots: (0..tools).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Compiles the validator of every tool now (`schemas` in tool order) instead of on
    /// first use.
    pub(crate) fn compile_all<'a>(&self, schemas: impl Iterator<Item = &'a Value>) {
        for (slot, schema) in self.slots.iter().zip(schemas) {
            slot.get_or_init(|| compile(schema));
        }
    }

    /// Runs `then` on the compiled schema of the tool at `index` (`schema` is its schema).
    fn with_compiled<R>(&self, index: usize, schema: &Value, then: impl FnOnce(&Compiled) -> R) -> R {
        match self.slots.get(index) {
            Some(slot) => then(slot.get_or_init(|| compile(schema))),
            // A tool added to the set after it was built: compile without caching.
            None => then(&compile(schema)),
        }
    }

    /// Checks `arguments` against `schema`, the schema of the tool at `index`.
    pub(crate) fn check(&self, index: usize, schema: &Value, arguments: &Value) -> Checked {
        self.with_compiled(index, schema, |compiled| compiled.check(arguments))
    }

    /// Runs `then` with the quick check's plan of the tool at `index` (`schema` is its
    /// schema): `None` when the schema is outside the plan's subset (or not compiled).
    pub(crate) fn with_plan<R>(
        &self,
        index: usize,
        schema: &Value,
        then: impl FnOnce(Option<&crate::quick_check::Plan>) -> R,
    ) -> R {
        #[cfg(feature = "validate")]
        return self.with_compiled(index, schema, |compiled| match compiled {
            Compiled::Ok(_, plan) => then(plan.as_ref()),
            _ => then(None),
        });
        #[cfg(not(feature = "validate"))]
        {
            let _ = (index, schema);
            then(None)
        }
    }

    /// Checks arguments given as JSON text (empty text is `{}`); `None` when the text is
    /// not JSON. Where the schema is in the quick check's subset and the text passes it, no
    /// value is built at all.
    pub(crate) fn check_text(&self, index: usize, schema: &Value, text: &str) -> Option<Checked> {
        self.with_compiled(index, schema, |compiled| {
            #[cfg(feature = "validate")]
            if let Compiled::Ok(_, Some(plan)) = compiled {
                if plan.accepts(text) {
                    return Some(Checked::Valid);
                }
            }
            Some(compiled.check(&parse_arguments(text)?))
        })
    }
}

impl Compiled {
    /// Checks `arguments` with this compiled schema.
    fn check(&self, arguments: &Value) -> Checked {
        #[cfg(not(feature = "validate"))]
        let _ = arguments;
        match self {
            Compiled::Invalid(msg) => Checked::InvalidSchema(msg.clone()),
            Compiled::Any => Checked::Valid,
            #[cfg(feature = "validate")]
            Compiled::Ok(v, _) => check_with(v, arguments),
        }
    }
}

/// Arguments text as a value: empty text is `{}`; `None` when it is not JSON.
fn parse_arguments(text: &str) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Value::Object(Default::default()));
    }
    serde_json::from_str(text).ok()
}

#[cfg(feature = "validate")]
fn check_with(validator: &jsonschema::Validator, arguments: &Value) -> Checked {
    let run = std::panic::AssertUnwindSafe(|| {
        let mut found = Vec::new();
        if validator.is_valid(arguments) {
            // The common case, without building errors.
            return (found, 0);
        }
        let mut total = 0usize;
        for e in validator.iter_errors(arguments) {
            total += 1;
            if found.len() < MAX_VIOLATIONS {
                found.push(Violation {
                    path: e.instance_path().as_str().to_string(),
                    message: clip(&e.to_string()),
                });
            }
        }
        found.sort_by(|a: &Violation, b: &Violation| (&a.path, &a.message).cmp(&(&b.path, &b.message)));
        (found, total)
    });
    match std::panic::catch_unwind(run) {
        Ok((found, _)) if found.is_empty() => Checked::Valid,
        Ok((found, total)) => Checked::Violations { found, total },
        Err(_) => Checked::InvalidSchema("the validator failed on these arguments".into()),
    }
}

/// Cuts `s` to about [`MAX_MESSAGE`] bytes on a char boundary.
#[cfg_attr(not(feature = "validate"), allow(dead_code))]
fn clip(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The message of a `schema_violation` diagnostic: `at "<pointer>" in <tool> arguments: <message>`.
pub fn violation_message(tool: &str, v: &Violation) -> String {
    let path = Value::String(v.path.clone()).to_string();
    format!("at {path} in {tool} arguments: {}", v.message)
}

/// The JSON pointer of a diagnostic of kind `kind` with message `message`, if it is a
/// `schema_violation` (`""` for the whole arguments object); `None` for any other diagnostic.
pub fn violation_path(kind: &str, message: &str) -> Option<String> {
    if kind != SCHEMA_VIOLATION {
        return None;
    }
    let rest = message.strip_prefix("at ")?;
    serde_json::Deserializer::from_str(rest)
        .into_iter::<String>()
        .next()?
        .ok()
}

#[cfg(all(test, feature = "validate"))]
mod tests {
    use super::*;
    use crate::event::Diagnostic;
    use crate::tools::ToolSet;
    use serde_json::json;

    fn tools(params: Value) -> ToolSet {
        ToolSet::from_json(&json!([{"type": "function", "function": {"name": "f", "parameters": params}}]))
            .expect("tools")
    }

    fn violations(params: Value, args: Value) -> Vec<Violation> {
        match tools(params).check("f", &args) {
            Checked::Valid => Vec::new(),
            Checked::Violations { found, .. } => found,
            Checked::InvalidSchema(m) => panic!("invalid schema: {m}"),
        }
    }

    #[test]
    fn checking_text_gives_what_checking_the_value_gives() {
        let quick = json!({"type": "object", "properties": {"n": {"type": "integer"}, "u": {"enum": ["c", "f"]}},
                           "required": ["n"], "additionalProperties": false});
        let full_only =
            json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]});
        for schema in [quick, full_only, json!({"type": "object", "required": "n"})] {
            let set = tools(schema.clone());
            for text in [
                r#"{"n":1}"#,
                r#"{"n":-1,"u":"f"}"#,
                r#"{"n":1.5}"#,
                r#"{"u":"k","x":1}"#,
                r#"{"n":"1"}"#,
                "",
                "  ",
            ] {
                let value = if text.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(text).expect("json")
                };
                assert_eq!(
                    set.check_text("f", text),
                    Some(set.check("f", &value)),
                    "{text} against {schema}"
                );
            }
            assert_eq!(set.check_text("f", "{not json"), None);
        }
    }

    fn paths(vs: &[Violation]) -> Vec<&str> {
        vs.iter().map(|v| v.path.as_str()).collect()
    }

    #[test]
    fn reports_paths() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"enum": ["c", "f"]},
                "legs": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"stops": {"type": "array", "items": {"type": "string"}}},
                    "required": ["stops"]
                }}
            },
            "required": ["city"],
            "additionalProperties": false
        });
        let vs = violations(schema.clone(), json!({"days": "three"}));
        assert_eq!(paths(&vs), ["", "/days"]);
        assert!(vs[0].message.contains("\"city\" is a required property"), "{vs:?}");
        assert!(vs[1].message.contains("is not of type \"integer\""), "{vs:?}");

        let vs = violations(schema.clone(), json!({"city": "Paris", "unit": "k"}));
        assert_eq!(paths(&vs), ["/unit"]);
        assert!(vs[0].message.contains("is not one of"), "{vs:?}");

        let vs = violations(schema.clone(), json!({"city": "Paris", "extra": 1}));
        assert_eq!(paths(&vs), [""]);
        assert!(vs[0].message.contains("'extra' was unexpected"), "{vs:?}");

        let vs = violations(
            schema.clone(),
            json!({"city": "Paris", "legs": [{"stops": ["a", 2]}, {}]}),
        );
        assert_eq!(paths(&vs), ["/legs/0/stops/1", "/legs/1"]);

        assert!(violations(schema, json!({"city": "Paris", "days": 3, "legs": [{"stops": []}]})).is_empty());
        assert!(violations(json!({}), json!({"anything": [1, 2]})).is_empty());
        assert!(violations(Value::Null, json!({"anything": [1, 2]})).is_empty());
        assert!(violations(json!(true), json!({"anything": [1, 2]})).is_empty());
    }

    #[test]
    fn pointer_escapes_and_message_roundtrip() {
        let schema = json!({"type": "object", "properties": {"a/b~c": {"type": "integer"}}});
        let vs = violations(schema, json!({"a/b~c": "x"}));
        assert_eq!(paths(&vs), ["/a~1b~0c"]);
        let d = Diagnostic {
            kind: SCHEMA_VIOLATION,
            start: 0,
            end: 0,
            message: violation_message("odd \"tool\"", &vs[0]),
        };
        assert_eq!(violation_path(d.kind, &d.message).as_deref(), Some("/a~1b~0c"));
        assert_eq!(violation_path("trailing_comma", &d.message), None);
    }

    #[test]
    fn invalid_schemas_do_not_panic() {
        for bad in [
            json!({"type": "no-such-type"}),
            json!({"type": "object", "properties": {"a": {"minimum": "zero"}}}),
            json!({"$ref": "https://example.invalid/schema.json"}),
            json!({"$ref": "#/definitions/missing"}),
            json!({"properties": {"a": {"pattern": "("}}}),
            json!(42),
        ] {
            let t = tools(bad.clone());
            match t.check("f", &json!({"a": 1})) {
                Checked::InvalidSchema(m) => assert!(!m.is_empty()),
                other => panic!("{bad}: expected an invalid schema, got {other:?}"),
            }
            // Cached: the second check gives the same answer.
            assert!(matches!(t.check("f", &json!({})), Checked::InvalidSchema(_)));
        }
    }

    #[test]
    fn caps_violations_and_messages() {
        let schema = json!({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "integer"}}}});
        let xs: Vec<Value> = (0..100).map(|i| Value::String(format!("{i}"))).collect();
        match tools(schema).check("f", &json!({"xs": xs})) {
            Checked::Violations { found, total } => {
                assert_eq!(found.len(), MAX_VIOLATIONS);
                assert_eq!(total, 100);
            }
            other => panic!("{other:?}"),
        }
        let long = "é".repeat(1000);
        let vs = violations(json!({"properties": {"s": {"type": "integer"}}}), json!({"s": long}));
        assert!(vs[0].message.len() <= MAX_MESSAGE + '…'.len_utf8());
    }

    const WEATHER: &str = r#"[{"type":"function","function":{"name":"get_weather","parameters":{
        "type":"object",
        "properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"enum":["c","f"]}},
        "required":["city"],"additionalProperties":false}}}]"#;

    fn run(text: &str, validate: bool, chunk: usize) -> crate::ParseResult {
        run_with(text, validate, true, chunk)
    }

    fn run_with(text: &str, validate: bool, coerce: bool, chunk: usize) -> crate::ParseResult {
        let opts = crate::Options {
            coerce,
            format: Some("hermes".into()),
            tools: Some(std::sync::Arc::new(ToolSet::from_json_str(WEATHER).expect("tools"))),
            id_seed: Some(1),
            validate,
            ..crate::Options::default()
        };
        if chunk == 0 {
            return crate::parse(text, opts).expect("parse");
        }
        let mut p = crate::StreamParser::new(opts).expect("parser");
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(chunk) {
            p.feed(&piece.iter().collect::<String>()).expect("feed");
        }
        p.finish().expect("finish");
        p.result()
    }

    fn schema_diags(r: &crate::ParseResult) -> Vec<(Option<String>, &str)> {
        r.diagnostics
            .iter()
            .filter(|d| d.kind == SCHEMA_VIOLATION)
            .map(|d| (violation_path(d.kind, &d.message), d.message.as_str()))
            .collect()
    }

    #[test]
    fn parser_reports_violations_at_the_call() {
        let text = "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": [3], \"unit\": \"k\", \"x\": 1}}\n</tool_call>\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}</tool_call>";
        let whole = run(text, true, 0);
        assert_eq!(whole.tool_calls.len(), 2);
        let diags = schema_diags(&whole);
        let got: Vec<Option<&str>> = diags.iter().map(|(p, _)| p.as_deref()).collect();
        // Sorted by message: the root violation (missing city) comes first. Coercion
        // dropped `x` (additionalProperties is false), so it is no violation.
        assert_eq!(got, [Some(""), Some("/days"), Some("/unit")], "{diags:?}");
        assert!(diags.iter().all(|(_, m)| m.contains("in get_weather arguments: ")));
        assert!(diags.iter().any(|(_, m)| m.contains("\"city\" is a required property")));
        let d = whole
            .diagnostics
            .iter()
            .find(|d| d.kind == SCHEMA_VIOLATION)
            .expect("diag");
        assert!(d.start < d.end && text[d.start..d.end].contains("get_weather"), "{d:?}");
        // Validation leaves the (coerced) arguments as they are.
        assert_eq!(whole.tool_calls[0].arguments, r#"{"days":[3],"unit":"k"}"#);
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(run(text, true, chunk), whole, "chunk {chunk}");
        }
        let off = run(text, false, 0);
        assert!(schema_diags(&off).is_empty());
        assert_eq!(off.tool_calls, whole.tool_calls);
        // Without coercion, the extra property is a violation too, and arguments stay as written.
        let raw = run_with(text, true, false, 0);
        assert_eq!(raw.tool_calls[0].arguments, r#"{"days":[3],"unit":"k","x":1}"#);
        let diags = schema_diags(&raw);
        let got: Vec<Option<&str>> = diags.iter().map(|(p, _)| p.as_deref()).collect();
        assert_eq!(got, [Some(""), Some(""), Some("/days"), Some("/unit")], "{diags:?}");
        assert!(diags.iter().any(|(_, m)| m.contains("'x' was unexpected")), "{diags:?}");
        for chunk in [1, 5] {
            assert_eq!(run_with(text, true, false, chunk), raw, "chunk {chunk}");
        }
    }

    #[test]
    fn finished_calls_are_validated_once_whenever_the_result_is_asked() {
        let first = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": [3]}}\n</tool_call>";
        let second = "\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"k\"";
        let text = format!("{first}{second}}}}}</tool_call>");
        let whole = run(&text, true, 0);
        let mut p = crate::StreamParser::new(crate::Options {
            format: Some("hermes".into()),
            tools: Some(std::sync::Arc::new(ToolSet::from_json_str(WEATHER).expect("tools"))),
            id_seed: Some(1),
            ..crate::Options::default()
        })
        .expect("parser");
        let count = |r: &crate::ParseResult| schema_diags(r).len();
        p.feed(first).expect("feed");
        // The first call has ended: its violations are in the result, before and after it
        // was marked validated, and marking again adds nothing.
        let asked = p.result();
        assert_eq!(count(&asked), 2, "{:?}", asked.diagnostics);
        p.validate_ended();
        p.validate_ended();
        assert_eq!(p.result(), asked);
        // The second call is open: not validated yet.
        p.feed(second).expect("feed");
        assert_eq!(count(&p.result()), 2);
        p.feed("}}</tool_call>").expect("feed");
        assert_eq!(count(&p.result()), count(&whole));
        p.finish().expect("finish");
        assert_eq!(p.result(), whole);
    }

    #[test]
    fn valid_calls_and_no_tools_give_no_violation() {
        let text =
            r#"<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2, "unit": "c"}}</tool_call>"#;
        assert!(schema_diags(&run(text, true, 0)).is_empty());
        let r = crate::parse(
            text,
            crate::Options {
                format: Some("hermes".into()),
                ..crate::Options::default()
            },
        )
        .expect("parse");
        assert_eq!(r.tool_calls.len(), 1);
        assert!(r.diagnostics.iter().all(|d| d.kind != SCHEMA_VIOLATION));
    }

    #[test]
    fn invalid_schema_is_reported_per_call() {
        let tools = r#"[{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"nope"}}}}]"#;
        let opts = crate::Options {
            format: Some("hermes".into()),
            tools: Some(std::sync::Arc::new(ToolSet::from_json_str(tools).expect("tools"))),
            ..crate::Options::default()
        };
        let r = crate::parse(r#"<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>"#, opts).expect("parse");
        assert_eq!(r.tool_calls.len(), 1);
        let bad: Vec<_> = r.diagnostics.iter().filter(|d| d.kind == INVALID_SCHEMA).collect();
        assert_eq!(bad.len(), 1, "{:?}", r.diagnostics);
        assert!(bad[0].message.contains("parameters schema of f"), "{bad:?}");
    }

    #[test]
    fn clones_share_compiled_validators() {
        let t = tools(json!({"type": "object", "required": ["a"]}));
        let c = t.clone();
        assert!(matches!(t.check("f", &json!({})), Checked::Violations { .. }));
        assert!(format!("{:?}", c).contains("compiled: 1"));
        assert_eq!(t.check("nope", &json!({})), Checked::Valid);
    }

    #[test]
    fn compile_validators_fills_every_slot_and_checks_alike() {
        let t = tools(json!({"type": "object", "required": ["a"]}));
        assert!(format!("{t:?}").contains("compiled: 0"));
        t.compile_validators();
        assert!(format!("{t:?}").contains("compiled: 1"), "{t:?}");
        assert!(matches!(t.check("f", &json!({})), Checked::Violations { .. }));
        assert_eq!(t.check("f", &json!({"a": 1})), Checked::Valid);
    }
}

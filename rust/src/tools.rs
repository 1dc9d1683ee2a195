//! The declared tools: names, name resolution and parameter schemas.

use serde_json::Value;

use crate::schema_ref::SchemaRef;
use crate::validate::{Checked, Validators};

/// One declared tool.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    /// The JSON Schema of the arguments (`{}` when none was given), shared: cloning a tool or
    /// a node of its schema copies nothing.
    pub parameters: SchemaRef,
}

/// The set of tools a request declared.
///
/// Treat `tools` as fixed once the set is built: each tool's compiled validator is cached
/// by position (clones share the cache).
#[derive(Debug, Clone, Default)]
pub struct ToolSet {
    pub tools: Vec<Tool>,
    validators: Validators,
}

/// Error for a tools list that is not a list of function tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsError(pub String);

impl std::fmt::Display for ToolsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolsError {}

fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl ToolSet {
    /// Reads an OpenAI `tools` array. Accepts `{"type": "function", "function": {...}}`
    /// items and bare `{"name": ..., "parameters": ...}` function objects; other tool
    /// types (no function) are ignored.
    pub fn from_json(value: &Value) -> Result<Self, ToolsError> {
        let items = value
            .as_array()
            .ok_or_else(|| ToolsError("tools must be a list".into()))?;
        let mut tools = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let obj = item
                .as_object()
                .ok_or_else(|| ToolsError(format!("tools[{i}] is not an object")))?;
            let func = match obj.get("function") {
                Some(f) => f
                    .as_object()
                    .ok_or_else(|| ToolsError(format!("tools[{i}].function is not an object")))?,
                None if obj.contains_key("name") => obj,
                None => continue,
            };
            let name = func
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ToolsError(format!("tools[{i}] has no function name")))?;
            let parameters = func
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            tools.push(Tool {
                name: name.to_string(),
                parameters: SchemaRef::new(parameters),
            });
        }
        Ok(ToolSet::new(tools))
    }

    /// A set of these tools.
    pub fn new(tools: Vec<Tool>) -> Self {
        let validators = Validators::new(tools.len());
        ToolSet { tools, validators }
    }

    /// Compiles every tool's schema validator now rather than when its first call ends
    /// (the first compilation in a process also builds the JSON Schema meta-validator,
    /// about a millisecond). For sets built once and used for many parses.
    pub fn compile_validators(&self) {
        self.validators.compile_all(self.tools.iter().map(|t| &*t.parameters));
    }

    /// Validates a call's arguments against the `parameters` schema of the tool declared
    /// exactly as `name` (the schema is compiled once, on first use). An undeclared name
    /// is [`Checked::Valid`]: there is nothing to check against.
    pub fn check(&self, name: &str, arguments: &Value) -> Checked {
        match self.tools.iter().position(|t| t.name == name) {
            Some(i) => self.validators.check(i, &self.tools[i].parameters, arguments),
            None => Checked::Valid,
        }
    }

    /// Checks the arguments of a call to `name` given as JSON text (see
    /// [`ToolSet::check`]); `None` when the text is not JSON. Faster than parsing the text
    /// and calling `check` where the schema allows it.
    pub fn check_text(&self, name: &str, arguments: &str) -> Option<Checked> {
        match self.tools.iter().position(|t| t.name == name) {
            Some(i) => self.validators.check_text(i, &self.tools[i].parameters, arguments),
            None => Some(Checked::Valid),
        }
    }

    /// Runs `then` with the quick check's plan of the tool declared exactly as `name`
    /// (`None` when the tool is not declared, its schema is outside the plan's subset or
    /// validation is not built in).
    pub(crate) fn with_plan<R>(&self, name: &str, then: impl FnOnce(Option<&crate::quick_check::Plan>) -> R) -> R {
        match self.tools.iter().position(|t| t.name == name) {
            Some(i) => self.validators.with_plan(i, &self.tools[i].parameters, then),
            None => then(None),
        }
    }

    /// Parses a JSON text holding a `tools` array.
    pub fn from_json_str(text: &str) -> Result<Self, ToolsError> {
        let v: Value = serde_json::from_str(text).map_err(|e| ToolsError(format!("tools is not valid JSON: {e}")))?;
        Self::from_json(&v)
    }

    /// The declared spelling of `name`: an exact match, else the unique match that ignores
    /// case and separators (`Get-Weather` -> `get_weather`). Never guesses between two.
    pub fn resolve(&self, name: &str) -> Option<&Tool> {
        if let Some(t) = self.tools.iter().find(|t| t.name == name) {
            return Some(t);
        }
        let want = normalized(name);
        if want.is_empty() {
            return None;
        }
        let mut found = self.tools.iter().filter(|t| normalized(&t.name) == want);
        let first = found.next()?;
        if found.next().is_some() {
            return None;
        }
        Some(first)
    }

    /// The declared names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.name.as_str()).collect()
    }
}

impl Tool {
    /// The schema of property `key`, if the tool declares one.
    pub fn property(&self, key: &str) -> Option<&Value> {
        self.parameters.get("properties")?.get(key)
    }
}

/// The JSON type a schema asks for, as far as raw-text values are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// The schema says string (and nothing else): the raw text is the value.
    String,
    /// The schema asks for something else (number, boolean, object, array, null or a union):
    /// the raw text is read as JSON, falling back to a string.
    Typed,
    /// No schema: infer.
    Unknown,
}

/// Classifies a property schema for raw-text values.
pub fn value_kind(schema: Option<&Value>) -> ValueKind {
    let Some(schema) = schema else {
        return ValueKind::Unknown;
    };
    match schema.get("type") {
        Some(Value::String(t)) if t == "string" => {
            if schema
                .get("enum")
                .is_some_and(|e| e.as_array().is_some_and(|a| a.iter().any(|v| !v.is_string())))
            {
                ValueKind::Typed
            } else {
                ValueKind::String
            }
        }
        Some(Value::String(_)) => ValueKind::Typed,
        Some(Value::Array(types)) => {
            if types.iter().all(|t| t == "string") {
                ValueKind::String
            } else {
                ValueKind::Typed
            }
        }
        _ => {
            if let Some(Value::Array(options)) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
                if !options.is_empty() && options.iter().all(|o| value_kind(Some(o)) == ValueKind::String) {
                    return ValueKind::String;
                }
                return ValueKind::Typed;
            }
            if schema
                .get("enum")
                .is_some_and(|e| e.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
            {
                return ValueKind::String;
            }
            if schema.get("properties").is_some() || schema.get("items").is_some() {
                return ValueKind::Typed;
            }
            ValueKind::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names() {
        let t = ToolSet::from_json_str(
            r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}},{"name":"search"}]"#,
        )
        .unwrap();
        assert_eq!(t.resolve("get_weather").unwrap().name, "get_weather");
        assert_eq!(t.resolve("Get-Weather").unwrap().name, "get_weather");
        assert!(t.resolve("weather").is_none());
        let dup = ToolSet::from_json_str(r#"[{"name":"a_b"},{"name":"A-B"}]"#).unwrap();
        assert!(dup.resolve("ab").is_none());
        assert!(ToolSet::from_json_str("{}").is_err());
    }

    #[test]
    fn value_kinds() {
        let v: Value = serde_json::json!({"type": "string"});
        assert_eq!(value_kind(Some(&v)), ValueKind::String);
        let v: Value = serde_json::json!({"type": "integer"});
        assert_eq!(value_kind(Some(&v)), ValueKind::Typed);
        let v: Value = serde_json::json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert_eq!(value_kind(Some(&v)), ValueKind::Typed);
        assert_eq!(value_kind(None), ValueKind::Unknown);
    }
}

//! Compiling a JSON Schema to a [`Shape`]: every keyword is checked, the supported ones are
//! kept, and every unsupported one is reported with its JSON pointer. Not the decoding (that is
//! `prefix`).

use std::sync::Arc;

use serde_json::Value;

use super::{SchemaProblem, Shape};

const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "$schema", "$comment"];
/// Keywords of any schema.
const GENERAL: &[&str] = &["type", "enum", "const"];
/// Keywords that apply only to objects, arrays and strings.
const OBJECT_ONLY: &[&str] = &["properties", "required", "additionalProperties"];
const ARRAY_ONLY: &[&str] = &["items", "minItems", "maxItems"];
const STRING_ONLY: &[&str] = &["minLength", "maxLength"];

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Record a problem with the keyword `key` of the schema at `at`.
fn bad(problems: &mut Vec<SchemaProblem>, at: &str, key: &str, message: String) {
    problems.push(SchemaProblem { pointer: format!("{at}/{}", escape_pointer(key)), message });
}

pub(super) fn compile(schema: &Value, at: &str, problems: &mut Vec<SchemaProblem>) -> Shape {
    let Value::Object(o) = schema else {
        problems.push(SchemaProblem { pointer: at.to_string(), message: "a schema must be an object".into() });
        return Shape::Null;
    };
    for key in o.keys() {
        let key_is = |list: &[&str]| list.contains(&key.as_str());
        if ![GENERAL, OBJECT_ONLY, ARRAY_ONLY, STRING_ONLY, ANNOTATIONS].into_iter().any(key_is) {
            bad(problems, at, key, format!("the keyword '{key}' is not supported by constrained decoding"));
        }
    }
    let count = |key: &str, problems: &mut Vec<SchemaProblem>| -> Option<usize> {
        let v = o.get(key)?;
        match v.as_u64() {
            Some(n) if n <= 1_000_000 => Some(n as usize),
            _ => {
                bad(problems, at, key, "must be a non-negative integer".into());
                None
            }
        }
    };
    // enum / const: a fixed set of scalar values.
    let choices: Option<Vec<&Value>> = match (o.get("enum"), o.get("const")) {
        (Some(_), Some(_)) => {
            bad(problems, at, "const", "give either enum or const, not both".into());
            None
        }
        (Some(Value::Array(values)), None) if !values.is_empty() => Some(values.iter().collect()),
        (Some(_), None) => {
            bad(problems, at, "enum", "must be a non-empty array".into());
            None
        }
        (None, Some(v)) => Some(vec![v]),
        (None, None) => None,
    };
    if let Some(values) = choices {
        let key = if o.contains_key("enum") { "enum" } else { "const" };
        let mut texts = Vec::new();
        for v in values {
            if v.is_object() || v.is_array() {
                bad(problems, at, key, "only strings, numbers, booleans and null are supported as values".into());
                continue;
            }
            let text = v.to_string();
            if !texts.contains(&text) {
                texts.push(text);
            }
        }
        return Shape::Choice(texts);
    }
    let kind = match o.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            bad(problems, at, "type", "must be one type name (a list of types is not supported)".into());
            return Shape::Null;
        }
        None => {
            bad(problems, at, "type", "is required (or give enum or const)".into());
            return Shape::Null;
        }
    };
    // The type-specific keywords of the other types are refused.
    let only = |own: &[&str], problems: &mut Vec<SchemaProblem>| {
        for key in [OBJECT_ONLY, ARRAY_ONLY, STRING_ONLY].concat() {
            if !own.contains(&key) && o.contains_key(key) {
                bad(problems, at, key, format!("does not apply to type '{kind}'"));
            }
        }
    };
    match kind {
        "object" => {
            only(OBJECT_ONLY, problems);
            if let Some(a) = o.get("additionalProperties")
                && a != &Value::Bool(false)
            {
                bad(
                    problems,
                    at,
                    "additionalProperties",
                    "only false is supported (no other property is ever written)".into(),
                );
            }
            let mut required: Vec<String> = Vec::new();
            match o.get("required") {
                None => {}
                Some(Value::Array(names)) => {
                    for (i, n) in names.iter().enumerate() {
                        match n.as_str() {
                            Some(s) => required.push(s.to_string()),
                            None => bad(
                                problems,
                                &format!("{at}/required"),
                                &i.to_string(),
                                "must be a property name".into(),
                            ),
                        }
                    }
                }
                Some(_) => bad(problems, at, "required", "must be an array of property names".into()),
            }
            let mut properties = Vec::new();
            match o.get("properties") {
                None => {}
                Some(Value::Object(props)) => {
                    for (name, sub) in props {
                        if name.is_empty() || name.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                            bad(
                                problems,
                                &format!("{at}/properties"),
                                name,
                                "property names must be non-empty, without quotes, backslashes or control characters"
                                    .into(),
                            );
                            continue;
                        }
                        let shape = compile(sub, &format!("{at}/properties/{}", escape_pointer(name)), problems);
                        properties.push((name.clone(), Arc::new(shape)));
                    }
                }
                Some(_) => {
                    problems.push(SchemaProblem {
                        pointer: format!("{at}/properties"),
                        message: "must be an object".into(),
                    });
                }
            }
            for r in &required {
                if !properties.iter().any(|(n, _)| n == r) {
                    problems.push(SchemaProblem {
                        pointer: format!("{at}/required"),
                        message: format!("'{r}' is required but not in properties"),
                    });
                }
            }
            let required = properties.iter().map(|(n, _)| required.contains(n)).collect();
            Shape::Object { properties, required }
        }
        "array" => {
            only(ARRAY_ONLY, problems);
            let items = match o.get("items") {
                Some(sub) => compile(sub, &format!("{at}/items"), problems),
                None => {
                    bad(problems, at, "items", "an array needs an items schema".into());
                    Shape::Null
                }
            };
            let min = count("minItems", problems).unwrap_or(0);
            let max = count("maxItems", problems);
            if max.is_some_and(|m| m < min) {
                bad(problems, at, "maxItems", "is below minItems".into());
            }
            Shape::Array { items: Arc::new(items), min, max }
        }
        "string" => {
            only(STRING_ONLY, problems);
            let min = count("minLength", problems).unwrap_or(0);
            let max = count("maxLength", problems);
            if max.is_some_and(|m| m < min) {
                bad(problems, at, "maxLength", "is below minLength".into());
            }
            Shape::String { min, max }
        }
        "number" | "integer" | "boolean" | "null" => {
            only(&[], problems);
            match kind {
                "number" => Shape::Number { integer: false },
                "integer" => Shape::Number { integer: true },
                "boolean" => Shape::Boolean,
                _ => Shape::Null,
            }
        }
        other => {
            bad(problems, at, "type", format!("'{other}' is not a JSON Schema type"));
            Shape::Null
        }
    }
}

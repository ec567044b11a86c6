//! Constrained decoding for `response_format: {"type": "json_schema"}`: a JSON Schema is
//! compiled to a [`Shape`], and a [`SchemaPrefix`] automaton over characters accepts exactly
//! the prefixes of JSON documents of that shape. Generation masks the tokens it would reject
//! and stops when the document is complete, so the output always parses and always validates
//! against the schema (unless `max_tokens` cuts it short).
//!
//! Supported keywords (everything else is refused, naming the keyword and where it is):
//! `type` (`object`, `array`, `string`, `number`, `integer`, `boolean`, `null`), `properties`,
//! `required`, `additionalProperties` (only `false`: no other property is ever written),
//! `items`, `minItems`, `maxItems`, `enum` and `const` (of strings, numbers, booleans, null),
//! `minLength`, `maxLength`, and the annotations `title`, `description`, `default`,
//! `examples`, `$schema`, `$comment`. The root must be an object. Properties are written in
//! the order the schema lists them; optional ones may be left out.
//!
//! Output is compact: one space may follow a `:` or a `,`, nowhere else. Not the JSON-object
//! mode without a schema (that is `json`), and not sampling (that is `sampling`).

mod compile;
mod prefix;

use std::sync::Arc;

use serde_json::Value;

pub use prefix::SchemaPrefix;

/// What a JSON Schema allows, as the decoder enforces it.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// An object with these properties, in this order; `required[i]` for `properties[i]`.
    Object {
        /// Property names and their shapes.
        properties: Vec<(String, Arc<Shape>)>,
        /// Whether each property must be present.
        required: Vec<bool>,
    },
    /// An array of items.
    Array {
        /// Every item's shape.
        items: Arc<Shape>,
        /// Fewest items.
        min: usize,
        /// Most items.
        max: Option<usize>,
    },
    /// A string.
    String {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: Option<usize>,
    },
    /// A number (`integer`: no fraction and no exponent).
    Number {
        /// Whether only integers are allowed.
        integer: bool,
    },
    /// `true` or `false`.
    Boolean,
    /// `null`.
    Null,
    /// One of these values, each as its compact JSON text (`enum`, `const`).
    Choice(Vec<String>),
}

/// A schema the decoder cannot enforce: where (a JSON pointer inside the schema) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaProblem {
    /// JSON pointer of the offending keyword inside the schema.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl Shape {
    /// Compile a JSON Schema whose root is an object. Every unsupported keyword or value is
    /// reported, not only the first.
    pub fn compile(schema: &Value) -> Result<Shape, Vec<SchemaProblem>> {
        let mut problems = Vec::new();
        let shape = compile::compile(schema, "", &mut problems);
        if problems.is_empty() && !matches!(shape, Shape::Object { .. }) {
            problems.push(SchemaProblem { pointer: "/type".into(), message: "the root must be an object".into() });
        }
        if problems.is_empty() { Ok(shape) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests;

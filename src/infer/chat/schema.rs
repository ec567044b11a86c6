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

use std::sync::Arc;

use serde_json::Value;

/// Longest number the decoder lets a model write, in characters.
const MAX_NUMBER_CHARS: usize = 24;

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

const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "$schema", "$comment"];

impl Shape {
    /// Compile a JSON Schema whose root is an object. Every unsupported keyword or value is
    /// reported, not only the first.
    pub fn compile(schema: &Value) -> Result<Shape, Vec<SchemaProblem>> {
        let mut problems = Vec::new();
        let shape = compile(schema, "", &mut problems);
        if problems.is_empty() && !matches!(shape, Shape::Object { .. }) {
            problems.push(SchemaProblem { pointer: "/type".into(), message: "the root must be an object".into() });
        }
        if problems.is_empty() { Ok(shape) } else { Err(problems) }
    }
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Record a problem with the keyword `key` of the schema at `at`.
fn bad(problems: &mut Vec<SchemaProblem>, at: &str, key: &str, message: String) {
    problems.push(SchemaProblem { pointer: format!("{at}/{}", escape_pointer(key)), message });
}

fn compile(schema: &Value, at: &str, problems: &mut Vec<SchemaProblem>) -> Shape {
    let Value::Object(o) = schema else {
        problems.push(SchemaProblem { pointer: at.to_string(), message: "a schema must be an object".into() });
        return Shape::Null;
    };
    let known = [
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "enum",
        "const",
        "minLength",
        "maxLength",
    ];
    for key in o.keys() {
        if !known.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
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
    let only_for = |keys: &[&str], kind: &str, problems: &mut Vec<SchemaProblem>| {
        for key in keys {
            if o.contains_key(*key) {
                bad(problems, at, key, format!("does not apply to type '{kind}'"));
            }
        }
    };
    match kind {
        "object" => {
            only_for(&["items", "minItems", "maxItems", "minLength", "maxLength"], kind, problems);
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
            only_for(&["properties", "required", "additionalProperties", "minLength", "maxLength"], kind, problems);
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
            only_for(
                &["properties", "required", "additionalProperties", "items", "minItems", "maxItems"],
                kind,
                problems,
            );
            let min = count("minLength", problems).unwrap_or(0);
            let max = count("maxLength", problems);
            if max.is_some_and(|m| m < min) {
                bad(problems, at, "maxLength", "is below minLength".into());
            }
            Shape::String { min, max }
        }
        "number" | "integer" | "boolean" | "null" => {
            only_for(
                &[
                    "properties",
                    "required",
                    "additionalProperties",
                    "items",
                    "minItems",
                    "maxItems",
                    "minLength",
                    "maxLength",
                ],
                kind,
                problems,
            );
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

/// Where an object is between its tokens.
#[derive(Debug, Clone, PartialEq)]
enum ObjectAt {
    /// After `{`.
    Open,
    /// Inside a key; the characters so far.
    Key(String),
    /// After a key: `:` next.
    Colon,
    /// A value is being written (the frame above).
    Value,
    /// After a value: `,` or `}`.
    After,
    /// After `,` (and perhaps one space): a key next.
    Comma { spaced: bool },
}

/// Where an array is between its items.
#[derive(Debug, Clone, PartialEq)]
enum ArrayAt {
    /// After `[`.
    Open,
    /// An item is being written.
    Value,
    /// After an item: `,` or `]`.
    After,
    /// After `,` (and perhaps one space).
    Comma { spaced: bool },
}

/// One open value.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    /// A value of this shape comes next (one space may come first when `spaced` is false and
    /// a space is allowed here).
    Pending { shape: Arc<Shape>, space_ok: bool },
    /// Inside an object; `next` is the first property that may still come, `current` the one
    /// whose key was written last.
    Object { shape: Arc<Shape>, next: usize, current: usize, at: ObjectAt },
    /// Inside an array.
    Array { shape: Arc<Shape>, count: usize, at: ArrayAt },
    /// Inside a string (after the opening quote).
    Str { min: usize, max: Option<usize>, len: usize, escape: Escape },
    /// A number so far.
    Num { integer: bool, text: String },
    /// The rest of `true`, `false` or `null`.
    Literal(&'static str),
    /// One of these JSON texts; the characters so far.
    Choice { candidates: Arc<Vec<String>>, text: String },
}

/// Escape state inside a string.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Escape {
    None,
    /// After a backslash.
    Backslash,
    /// Inside `\uXXXX`: this many hex digits still to come.
    Hex(u8),
}

/// The prefix of a JSON document of one [`Shape`] written so far.
#[derive(Debug, Clone)]
pub struct SchemaPrefix {
    stack: Vec<Frame>,
    done: bool,
}

impl SchemaPrefix {
    /// Nothing written yet; the document must have `shape` (an object).
    pub fn new(shape: Arc<Shape>) -> Self {
        Self { stack: vec![Frame::Pending { shape, space_ok: false }], done: false }
    }

    /// Whether the document is complete.
    pub fn complete(&self) -> bool {
        self.done
    }

    /// Append `text`; false when it breaks the shape (the prefix is then unusable).
    pub fn feed(&mut self, text: &str) -> bool {
        text.chars().all(|c| self.step(c))
    }

    /// Whether appending `text` keeps the output a prefix of a document of the shape.
    pub fn accepts(&self, text: &str) -> bool {
        let mut next = self.clone();
        next.feed(text)
    }

    /// A value just ended: tell the frame below.
    fn finished_value(&mut self) {
        self.stack.pop();
        match self.stack.last_mut() {
            None => self.done = true,
            Some(Frame::Object { at, .. }) => *at = ObjectAt::After,
            Some(Frame::Array { count, at, .. }) => {
                *count += 1;
                *at = ArrayAt::After;
            }
            Some(_) => {}
        }
    }

    fn step(&mut self, c: char) -> bool {
        if self.done {
            return false;
        }
        loop {
            let Some(top) = self.stack.last_mut() else { return false };
            match top {
                Frame::Pending { shape, space_ok } => {
                    if c == ' ' {
                        if *space_ok {
                            *space_ok = false;
                            return true;
                        }
                        return false;
                    }
                    let shape = shape.clone();
                    let Some(frame) = start(&shape, c) else { return false };
                    // A choice whose only value is this one character is already complete.
                    let whole = matches!(&frame, Frame::Choice { candidates, text }
                        if candidates.iter().all(|k| k == text || !k.starts_with(text.as_str())));
                    *top = frame;
                    if whole {
                        self.finished_value();
                    }
                    return true;
                }
                Frame::Object { shape, next, current, at } => {
                    let Shape::Object { properties, required } = shape.as_ref() else { return false };
                    // Keys that may come now: from `next` up to the first required one.
                    let candidates = || {
                        let end = (*next..properties.len()).find(|&i| required[i]).map_or(properties.len(), |i| i + 1);
                        *next..end
                    };
                    let none_required_left = || !required[*next..].iter().any(|r| *r);
                    match at {
                        ObjectAt::Open | ObjectAt::Comma { .. } => {
                            if c == '"' && !candidates().is_empty() {
                                *at = ObjectAt::Key(String::new());
                                return true;
                            }
                            if c == ' ' && matches!(at, ObjectAt::Comma { spaced: false }) {
                                *at = ObjectAt::Comma { spaced: true };
                                return true;
                            }
                            if c == '}' && matches!(at, ObjectAt::Open) && none_required_left() {
                                self.finished_value();
                                return true;
                            }
                            return false;
                        }
                        ObjectAt::Key(buf) => {
                            let range = candidates();
                            if c == '"' {
                                let Some(i) = range.clone().find(|&i| properties[i].0 == *buf) else { return false };
                                *current = i;
                                *next = i + 1;
                                *at = ObjectAt::Colon;
                                return true;
                            }
                            buf.push(c);
                            return range.clone().any(|i| properties[i].0.starts_with(buf.as_str()));
                        }
                        ObjectAt::Colon => {
                            if c != ':' {
                                return false;
                            }
                            let value = properties[*current].1.clone();
                            *at = ObjectAt::Value;
                            self.stack.push(Frame::Pending { shape: value, space_ok: true });
                            return true;
                        }
                        ObjectAt::Value => return false,
                        ObjectAt::After => {
                            if c == ',' && *next < properties.len() {
                                *at = ObjectAt::Comma { spaced: false };
                                return true;
                            }
                            if c == '}' && none_required_left() {
                                self.finished_value();
                                return true;
                            }
                            return false;
                        }
                    }
                }
                Frame::Array { shape, count, at } => {
                    let Shape::Array { items, min, max } = shape.as_ref() else { return false };
                    let (min, max, items) = (*min, *max, items.clone());
                    match at {
                        ArrayAt::Open | ArrayAt::Comma { .. } => {
                            if c == ']' && matches!(at, ArrayAt::Open) && min == 0 {
                                self.finished_value();
                                return true;
                            }
                            if c == ' ' && matches!(at, ArrayAt::Comma { spaced: false }) {
                                *at = ArrayAt::Comma { spaced: true };
                                return true;
                            }
                            if c == ' ' || c == ']' || max.is_some_and(|m| *count >= m) {
                                return false;
                            }
                            *at = ArrayAt::Value;
                            self.stack.push(Frame::Pending { shape: items, space_ok: false });
                            continue;
                        }
                        ArrayAt::Value => return false,
                        ArrayAt::After => {
                            if c == ',' && max.is_none_or(|m| *count < m) {
                                *at = ArrayAt::Comma { spaced: false };
                                return true;
                            }
                            if c == ']' && *count >= min {
                                self.finished_value();
                                return true;
                            }
                            return false;
                        }
                    }
                }
                Frame::Str { min, max, len, escape } => {
                    match *escape {
                        Escape::Backslash => {
                            *escape = match c {
                                '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => Escape::None,
                                'u' => Escape::Hex(4),
                                _ => return false,
                            };
                            if *escape == Escape::None {
                                *len += 1;
                            }
                            return true;
                        }
                        Escape::Hex(n) => {
                            if !c.is_ascii_hexdigit() {
                                return false;
                            }
                            *escape = if n == 1 {
                                *len += 1;
                                Escape::None
                            } else {
                                Escape::Hex(n - 1)
                            };
                            return true;
                        }
                        Escape::None => {}
                    }
                    if c == '"' {
                        if *len < *min {
                            return false;
                        }
                        self.finished_value();
                        return true;
                    }
                    if c.is_control() || max.is_some_and(|m| *len >= m) {
                        return false;
                    }
                    if c == '\\' {
                        *escape = Escape::Backslash;
                    } else {
                        *len += 1;
                    }
                    return true;
                }
                Frame::Num { integer, text } => {
                    let mut longer = text.clone();
                    longer.push(c);
                    if longer.len() <= MAX_NUMBER_CHARS && number_state(&longer, *integer).is_some() {
                        *text = longer;
                        return true;
                    }
                    if number_state(text, *integer) != Some(true) {
                        return false;
                    }
                    // The number ended; the character belongs to the frame below.
                    self.finished_value();
                    if self.stack.is_empty() {
                        return false;
                    }
                    continue;
                }
                Frame::Literal(rest) => {
                    if !rest.starts_with(c) {
                        return false;
                    }
                    *rest = &rest[c.len_utf8()..];
                    if rest.is_empty() {
                        self.finished_value();
                    }
                    return true;
                }
                Frame::Choice { candidates, text } => {
                    let mut longer = text.clone();
                    longer.push(c);
                    if candidates.iter().any(|k| k.starts_with(longer.as_str())) {
                        *text = longer;
                        // A choice that can grow no further is complete now.
                        if candidates.iter().all(|k| k == text || !k.starts_with(text.as_str())) {
                            self.finished_value();
                        }
                        return true;
                    }
                    if !candidates.iter().any(|k| k == text) {
                        return false;
                    }
                    self.finished_value();
                    if self.stack.is_empty() {
                        return false;
                    }
                    continue;
                }
            }
        }
    }
}

/// The frame a value of `shape` opens with its first character `c` (already consumed).
fn start(shape: &Arc<Shape>, c: char) -> Option<Frame> {
    Some(match shape.as_ref() {
        Shape::Object { .. } if c == '{' => {
            Frame::Object { shape: shape.clone(), next: 0, current: 0, at: ObjectAt::Open }
        }
        Shape::Array { .. } if c == '[' => Frame::Array { shape: shape.clone(), count: 0, at: ArrayAt::Open },
        Shape::String { min, max } if c == '"' => Frame::Str { min: *min, max: *max, len: 0, escape: Escape::None },
        Shape::Number { integer } if c == '-' || c.is_ascii_digit() => {
            Frame::Num { integer: *integer, text: c.to_string() }
        }
        Shape::Boolean if c == 't' => Frame::Literal("rue"),
        Shape::Boolean if c == 'f' => Frame::Literal("alse"),
        Shape::Null if c == 'n' => Frame::Literal("ull"),
        Shape::Choice(texts) if texts.iter().any(|t| t.starts_with(c)) => {
            Frame::Choice { candidates: Arc::new(texts.clone()), text: c.to_string() }
        }
        _ => return None,
    })
}

/// Whether `s` is a prefix of a JSON number (`Some`), and whether it is a whole one (`true`).
fn number_state(s: &str, integer: bool) -> Option<bool> {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i = 1;
    }
    if i == b.len() {
        return Some(false);
    }
    // Integer part: 0, or a non-zero digit and more digits.
    if b[i] == b'0' {
        i += 1;
    } else if b[i].is_ascii_digit() {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    } else {
        return None;
    }
    if i == b.len() {
        return Some(true);
    }
    if integer {
        return None;
    }
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == b.len() {
            return Some(i > start);
        }
        if i == start {
            return None;
        }
    }
    if b[i] == b'e' || b[i] == b'E' {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == b.len() {
            return Some(i > start);
        }
    }
    None
}

#[cfg(test)]
mod tests;

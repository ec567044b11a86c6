//! The automaton over characters that accepts exactly the prefixes of JSON documents of one
//! [`Shape`] ([`SchemaPrefix`]). Not the schema compiler (that is `compile`).

use std::sync::Arc;

use super::Shape;

/// Longest number the decoder lets a model write, in characters.
const MAX_NUMBER_CHARS: usize = 24;

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

    /// Whether appending `text` and then `partial`, the first bytes of one UTF-8 character still
    /// incomplete (a token may end inside a character), can continue a document of the shape:
    /// inside a string any character may come; inside a choice, some value must go on with
    /// exactly those bytes.
    pub fn accepts_partial(&self, text: &str, partial: &[u8]) -> bool {
        let mut next = self.clone();
        if !next.feed(text) {
            return false;
        }
        if partial.is_empty() {
            return true;
        }
        match next.stack.last() {
            Some(Frame::Str { max, len, escape: Escape::None, .. }) => max.is_none_or(|m| *len < m),
            Some(Frame::Choice { candidates, text }) => candidates
                .iter()
                .any(|k| k.starts_with(text.as_str()) && k.as_bytes()[text.len()..].starts_with(partial)),
            _ => false,
        }
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
pub(super) fn number_state(s: &str, integer: bool) -> Option<bool> {
    let b = s.as_bytes();
    // The end of the run of digits starting at `i`.
    let digits = |i: usize| i + b[i..].iter().take_while(|d| d.is_ascii_digit()).count();
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
        i = digits(i);
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
        let start = i + 1;
        i = digits(start);
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
        i = digits(start);
        if i == b.len() {
            return Some(i > start);
        }
    }
    None
}

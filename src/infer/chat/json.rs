//! Constrained decoding for `response_format: {"type": "json_object"}`: an automaton over
//! characters that accepts exactly the prefixes of one JSON object (RFC 8259). Generation masks
//! the tokens it would reject and stops when the object is complete. Output is compact: between
//! tokens only a single space is allowed (no newlines, no indentation), so the token budget goes
//! to content and a model cannot stall in endless whitespace.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// What may come next between tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (after `:` or `,` in an array); at the very start, only `{`.
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the closing bracket.
    CommaOrClose,
    /// The object is complete.
    End,
}

/// Inside a token: a string, a number or a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lex {
    Between,
    Str { key: bool, escape: bool, hex: u8 },
    Num(String),
    Lit(&'static str),
}

/// Accepts the prefixes of a single JSON object.
#[derive(Debug, Clone)]
pub struct JsonPrefix {
    stack: Vec<Container>,
    expect: Expect,
    lex: Lex,
    spaces: u8,
}

impl Default for JsonPrefix {
    fn default() -> Self {
        Self { stack: Vec::new(), expect: Expect::Value, lex: Lex::Between, spaces: 0 }
    }
}

const MAX_SPACES: u8 = 1;
const MAX_DEPTH: usize = 32;

impl JsonPrefix {
    /// Whether the whole object has been read.
    pub fn complete(&self) -> bool {
        self.expect == Expect::End
    }

    /// Feed text; false if it cannot continue a JSON object (the state is then unspecified).
    pub fn feed(&mut self, text: &str) -> bool {
        text.chars().all(|c| self.step(c))
    }

    /// Whether `text` would be accepted, without changing the state.
    pub fn accepts(&self, text: &str) -> bool {
        self.clone().feed(text)
    }

    fn value_done(&mut self) {
        self.expect = if self.stack.is_empty() { Expect::End } else { Expect::CommaOrClose };
    }

    fn step(&mut self, c: char) -> bool {
        match std::mem::replace(&mut self.lex, Lex::Between) {
            Lex::Str { key, escape, hex } => {
                self.lex = if hex > 0 {
                    if !c.is_ascii_hexdigit() {
                        return false;
                    }
                    Lex::Str { key, escape: false, hex: hex - 1 }
                } else if escape {
                    match c {
                        '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => Lex::Str { key, escape: false, hex: 0 },
                        'u' => Lex::Str { key, escape: false, hex: 4 },
                        _ => return false,
                    }
                } else if c == '\\' {
                    Lex::Str { key, escape: true, hex: 0 }
                } else if c == '"' {
                    if key {
                        self.expect = Expect::Colon;
                    } else {
                        self.value_done();
                    }
                    Lex::Between
                } else if (c as u32) < 0x20 {
                    return false;
                } else {
                    Lex::Str { key, escape: false, hex: 0 }
                };
                true
            }
            Lex::Lit(rest) => {
                let mut chars = rest.chars();
                if chars.next() != Some(c) {
                    return false;
                }
                if chars.as_str().is_empty() {
                    self.value_done();
                } else {
                    self.lex = Lex::Lit(chars.as_str());
                }
                true
            }
            Lex::Num(mut s) => {
                let last_digit = s.chars().last().is_some_and(|l| l.is_ascii_digit());
                let ok = match c {
                    '0'..='9' => !(s == "0" || s == "-0"),
                    '.' => last_digit && !s.contains(['.', 'e', 'E']),
                    'e' | 'E' => last_digit && !s.contains(['e', 'E']),
                    '+' | '-' => s.ends_with(['e', 'E']),
                    _ => false,
                };
                if ok {
                    s.push(c);
                    self.lex = Lex::Num(s);
                    return true;
                }
                // The number ends here if complete, and `c` is read between tokens.
                if !last_digit {
                    return false;
                }
                self.value_done();
                self.between(c)
            }
            Lex::Between => self.between(c),
        }
    }

    fn between(&mut self, c: char) -> bool {
        if self.expect == Expect::End {
            return false;
        }
        if c == ' ' {
            self.spaces += 1;
            // No whitespace before the opening brace, and one space at most in a row.
            return self.spaces <= MAX_SPACES && !self.stack.is_empty();
        }
        self.spaces = 0;
        if self.stack.is_empty() {
            // The top level is an object.
            return c == '{' && self.open(Container::Object);
        }
        match (self.expect, c) {
            (Expect::Value | Expect::ValueOrClose, '{') => self.open(Container::Object),
            (Expect::Value | Expect::ValueOrClose, '[') => self.open(Container::Array),
            (Expect::Value | Expect::ValueOrClose, '"') => {
                self.lex = Lex::Str { key: false, escape: false, hex: 0 };
                true
            }
            (Expect::Value | Expect::ValueOrClose, '-' | '0'..='9') => {
                self.lex = Lex::Num(c.to_string());
                true
            }
            (Expect::Value | Expect::ValueOrClose, 't') => self.literal("rue"),
            (Expect::Value | Expect::ValueOrClose, 'f') => self.literal("alse"),
            (Expect::Value | Expect::ValueOrClose, 'n') => self.literal("ull"),
            (Expect::ValueOrClose, ']') => self.close(Container::Array),
            (Expect::KeyOrClose | Expect::Key, '"') => {
                self.lex = Lex::Str { key: true, escape: false, hex: 0 };
                true
            }
            (Expect::KeyOrClose, '}') => self.close(Container::Object),
            (Expect::Colon, ':') => {
                self.expect = Expect::Value;
                true
            }
            (Expect::CommaOrClose, ',') => {
                self.expect = match self.stack.last() {
                    Some(Container::Object) => Expect::Key,
                    _ => Expect::Value,
                };
                true
            }
            (Expect::CommaOrClose, '}') => self.close(Container::Object),
            (Expect::CommaOrClose, ']') => self.close(Container::Array),
            _ => false,
        }
    }

    fn literal(&mut self, rest: &'static str) -> bool {
        self.lex = Lex::Lit(rest);
        true
    }

    fn open(&mut self, container: Container) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(container);
        self.expect = match container {
            Container::Object => Expect::KeyOrClose,
            Container::Array => Expect::ValueOrClose,
        };
        true
    }

    fn close(&mut self, container: Container) -> bool {
        if self.stack.last() != Some(&container) {
            return false;
        }
        self.stack.pop();
        self.value_done();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts_whole(s: &str) -> bool {
        let mut j = JsonPrefix::default();
        j.feed(s) && j.complete()
    }

    #[test]
    fn valid_objects_are_accepted_and_complete() {
        for s in [
            "{}",
            r#"{"a":1}"#,
            r#"{"a": [1, 2.5, -3e10, true, false, null, "x\"y\u00e9"], "b": {"c": {}}}"#,
            r#"{"price": 0, "list": []}"#,
        ] {
            assert!(accepts_whole(s), "{s}");
            // Every parse agrees with serde_json.
            assert!(serde_json::from_str::<serde_json::Value>(s).is_ok());
        }
    }

    #[test]
    fn invalid_text_is_rejected_at_the_first_bad_character() {
        for s in [
            "[1]",
            " {}",
            "{a:1}",
            r#"{"a" 1}"#,
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            "{\"a\":tru}",
            r#"{"a":[1,]}"#,
            "{}}",
            "{\"a\n\":1}",
        ] {
            let mut j = JsonPrefix::default();
            assert!(!(j.feed(s) && j.complete()), "{s}");
        }
        let j = JsonPrefix::default();
        assert!(j.accepts("{\"na"), "a prefix is fine");
        assert!(!j.accepts("Sure! {"));
    }

    #[test]
    fn output_is_compact() {
        let j = JsonPrefix::default();
        assert!(j.accepts("{ \"a\": 1 }"));
        assert!(!j.accepts("{  "));
        assert!(!j.accepts("{\n"));
        assert!(!j.accepts("{\"a\":\t1"));
    }
}

//! Constrained output for the scheduler: the JSON automaton a request runs (any object, or a
//! document of a schema) fed over bytes, since a character may be split across tokens.

use super::json::JsonPrefix;
use super::schema::SchemaPrefix;

/// The automaton a JSON constraint runs.
#[derive(Clone)]
pub(super) enum JsonAutomaton {
    /// Any JSON object.
    Object(JsonPrefix),
    /// A document of a schema.
    Schema(SchemaPrefix),
}

impl JsonAutomaton {
    pub(super) fn feed(&mut self, text: &str) -> bool {
        match self {
            JsonAutomaton::Object(j) => j.feed(text),
            JsonAutomaton::Schema(s) => s.feed(text),
        }
    }

    pub(super) fn complete(&self) -> bool {
        match self {
            JsonAutomaton::Object(j) => j.complete(),
            JsonAutomaton::Schema(s) => s.complete(),
        }
    }
}

/// JSON constraint over bytes: characters may be split across tokens.
pub(super) struct JsonGuard {
    pub(super) json: JsonAutomaton,
    pub(super) pending: Vec<u8>,
}

impl JsonGuard {
    /// Whether appending `bytes` keeps the output a JSON-object prefix.
    pub(super) fn allows(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let mut all = self.pending.clone();
        all.extend_from_slice(bytes);
        let (text, rest) = split_utf8(&all);
        match &self.json {
            // Non-ASCII bytes can only be inside a string, so an incomplete tail is judged there.
            JsonAutomaton::Object(j) => j.accepts(text) && (rest.is_empty() || j.accepts(&format!("{text}\u{e9}"))),
            // A schema's enum values may hold non-ASCII characters: the tail must go on one.
            JsonAutomaton::Schema(s) => s.accepts_partial(text, rest),
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let all = std::mem::take(&mut self.pending);
        let (text, rest) = split_utf8(&all);
        self.json.feed(text);
        self.pending = rest.to_vec();
    }
}

fn split_utf8(bytes: &[u8]) -> (&str, &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s, &[]),
        Err(e) => (std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix"), &bytes[e.valid_up_to()..]),
    }
}

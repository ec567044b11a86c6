//! Text helpers shared by understanding and grounding: the lowercase singular words of a text,
//! where a word stands as a whole word, and a light English singular.
//!
//! Not word lists (see `word_lists`) and nothing that knows the catalog (see `vocabulary`).

/// Lowercase words of a text, singular (a light stemmer: "headphones" -> "headphone").
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .map(|w| singular(&w))
        .collect()
}

/// Byte offsets where `needle` stands in `haystack` as a whole word (not inside another word).
pub fn word_positions<'a>(haystack: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    haystack.match_indices(needle).map(|(at, _)| at).filter(move |&at| {
        let end = at + needle.len();
        !needle.is_empty()
            && !haystack[..at].chars().next_back().is_some_and(char::is_alphanumeric)
            && !haystack[end..].chars().next().is_some_and(char::is_alphanumeric)
    })
}

/// A light English singular.
pub fn singular(w: &str) -> String {
    if w.chars().any(|c| c.is_ascii_digit()) {
        return w.to_string();
    }
    if w.len() <= 3 {
        // "tvs", "pcs"; not "gps", "bus", "has".
        let keep = ["gps", "bus", "has", "was", "yes", "its", "his", "ups", "abs", "us", "is", "as", "ss"];
        return match w.strip_suffix('s') {
            Some(stem) if w.len() == 3 && !keep.contains(&w) => stem.to_string(),
            _ => w.to_string(),
        };
    }
    for (suffix, with) in [("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x")] {
        if let Some(stem) = w.strip_suffix(suffix) {
            return format!("{stem}{with}");
        }
    }
    if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}

//! From generated tokens to text: bytes joined into valid UTF-8 (a character may span tokens),
//! stop strings found across token boundaries, and text held back while it might still turn
//! into a stop string, so that streamed deltas add up exactly to the non-streamed answer.

/// The text of one generation, fed token by token.
#[derive(Debug, Default)]
pub struct TextStream {
    pending: Vec<u8>,
    text: String,
    emitted: usize,
    stops: Vec<String>,
    stopped: bool,
}

impl TextStream {
    /// A stream that ends at the first of `stops` (which is not part of the text).
    pub fn new(stops: Vec<String>) -> Self {
        Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), ..Default::default() }
    }

    /// Add a token's bytes; returns the text that is now final. After a stop string it returns
    /// what precedes the stop, and [`Self::stopped`] turns true.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        if self.stopped {
            return String::new();
        }
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => {
                // Invalid bytes (not merely incomplete): replace them and go on.
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                self.text.push_str(&s);
                return self.release();
            }
            Err(e) => e.valid_up_to(),
        };
        let s = std::str::from_utf8(&self.pending[..valid]).expect("checked").to_string();
        self.pending.drain(..valid);
        self.text.push_str(&s);
        self.release()
    }

    fn release(&mut self) -> String {
        // A stop string may start before the newly added text: search from where it could begin.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.emitted.saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self.stops.iter().filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i)).min();
        if let Some(at) = hit {
            self.text.truncate(at);
            self.stopped = true;
            return self.take(self.text.len());
        }
        // Hold back the longest tail that is a prefix of a stop string.
        let mut hold = 0;
        for s in &self.stops {
            for k in (1..s.len()).rev() {
                if k <= self.text.len()
                    && self.text.is_char_boundary(self.text.len() - k)
                    && s.is_char_boundary(k)
                    && self.text.ends_with(&s[..k])
                {
                    hold = hold.max(k);
                    break;
                }
            }
        }
        self.take(self.text.len() - hold)
    }

    fn take(&mut self, upto: usize) -> String {
        if upto <= self.emitted {
            return String::new();
        }
        let out = self.text[self.emitted..upto].to_string();
        self.emitted = upto;
        out
    }

    /// Whether a stop string ended the text.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// End of generation: everything not yet returned (held-back text, incomplete bytes).
    pub fn finish(&mut self) -> String {
        if !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            if !self.stopped {
                self.text.push_str(&rest);
            }
        }
        let end = self.text.len();
        self.take(end)
    }

    /// The whole text so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tokens: &[&[u8]], stops: &[&str]) -> (Vec<String>, bool) {
        let mut s = TextStream::new(stops.iter().map(|x| x.to_string()).collect());
        let mut out: Vec<String> = tokens.iter().map(|t| s.push(t)).collect();
        out.push(s.finish());
        (out, s.stopped())
    }

    #[test]
    fn characters_split_across_tokens_are_joined() {
        let euro = "€".as_bytes();
        let (out, _) = run(&[b"5 ", &euro[..1], &euro[1..], b"!"], &[]);
        assert_eq!(out.concat(), "5 €!");
        assert_eq!(out[1], "", "half a character is not emitted");
    }

    #[test]
    fn stop_strings_across_tokens_are_cut_and_never_leak() {
        let (out, stopped) = run(&[b"Hello ", b"wor", b"ld. ##", b"#END", b" more"], &["###END"]);
        assert!(stopped);
        assert_eq!(out.concat(), "Hello world. ");
        assert!(out.iter().all(|d| !d.contains('#')), "{out:?}");
    }

    #[test]
    fn held_back_prefix_is_released_when_it_does_not_stop() {
        let (out, stopped) = run(&[b"a #", b"#b"], &["###"]);
        assert!(!stopped);
        assert_eq!(out.concat(), "a ##b");
        assert_eq!(out[0], "a ");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let (out, _) = run(&[b"one two three"], &["three", "two"]);
        assert_eq!(out.concat(), "one ");
    }
}

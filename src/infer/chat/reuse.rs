//! Prefix reuse: the KV caches of prompts already processed, kept in memory and matched by
//! token prefix, so that a request sharing its beginning with an earlier one (the assistant's
//! instructions, the earlier turns of a conversation) starts after the shared tokens.
//!
//! Bounded by bytes; the least recently used entry leaves first. A prompt that extends an
//! entry replaces it. Keys are token ids, so two prompts share a prefix exactly when their
//! tokens do (the positions' keys and values depend on nothing else).

/// Prompts' KV caches (`T`), matched by longest common token prefix.
pub struct PrefixCache<T> {
    entries: Vec<Entry<T>>,
    budget: usize,
    bytes: usize,
    min_tokens: usize,
    tick: u64,
}

struct Entry<T> {
    tokens: Vec<u32>,
    value: T,
    bytes: usize,
    used: u64,
}

/// Length of the common prefix of two token lists.
fn common(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<T> PrefixCache<T> {
    /// A cache of at most `budget` bytes that reuses prefixes of at least `min_tokens` tokens.
    pub fn new(budget: usize, min_tokens: usize) -> Self {
        Self { entries: Vec::new(), budget, bytes: 0, min_tokens: min_tokens.max(1), tick: 0 }
    }

    /// The entry sharing the longest prefix with `prompt`, and how many of its positions to
    /// reuse: at most `prompt.len() - 1`, since the last prompt token must run to give logits.
    /// `None` when no entry shares `min_tokens`.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<(&T, usize)> {
        let usable = prompt.len().saturating_sub(1);
        let (best, n) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common(&e.tokens, prompt).min(usable)))
            .max_by_key(|&(i, n)| (n, self.entries[i].used))?;
        if n < self.min_tokens {
            return None;
        }
        self.tick += 1;
        let entry = &mut self.entries[best];
        entry.used = self.tick;
        Some((&entry.value, n))
    }

    /// Whether storing `tokens` would add anything (no entry already starts with them).
    pub fn wants(&self, tokens: &[u32]) -> bool {
        tokens.len() >= self.min_tokens && self.budget > 0 && !self.entries.iter().any(|e| e.tokens.starts_with(tokens))
    }

    /// Keep `value`, the cache of `tokens` (`bytes` of memory). Entries it extends leave; the
    /// least recently used leave until the budget holds.
    pub fn insert(&mut self, tokens: &[u32], value: T, bytes: usize) {
        if !self.wants(tokens) || bytes > self.budget {
            return;
        }
        let mut freed = 0;
        self.entries.retain(|e| {
            let covered = tokens.starts_with(&e.tokens);
            if covered {
                freed += e.bytes;
            }
            !covered
        });
        self.bytes -= freed;
        self.tick += 1;
        self.entries.push(Entry { tokens: tokens.to_vec(), value, bytes, used: self.tick });
        self.bytes += bytes;
        while self.bytes > self.budget {
            let oldest =
                self.entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i).expect("over budget");
            let gone = self.entries.swap_remove(oldest);
            self.bytes -= gone.bytes;
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Prefixes shorter than this are run again rather than copied.
pub const MIN_REUSED_TOKENS: usize = 16;

/// Prompt chunks of at least this many rows take the prompt kernels (dense GEMM, repacked
/// tiles), whose result for a row does not depend on the chunk's other rows; smaller chunks
/// take the decoding kernels, which give other last bits.
pub const CANONICAL_ROWS: usize = 16;

/// How many of a prompt's `len` tokens to take from a cached prefix that shares `shared` with
/// it, so that the request computes exactly what it would with nothing cached: the rest is read
/// in chunks that end where a cold run's end (multiples of `chunk`) and hold at least
/// [`CANONICAL_ROWS`] rows, so every position is computed by the same kernels as cold (and
/// cached positions were: a request offers only such positions). `None` when too little is left.
pub fn reuse_point(shared: usize, len: usize, chunk: usize) -> Option<usize> {
    let r = shared.min(len.saturating_sub(1));
    let start = r / chunk * chunk;
    let end = len.min(start + chunk);
    let r = if end - start < CANONICAL_ROWS {
        start // a cold run reads this short last chunk whole (decoding kernels): so does this one
    } else if end - r >= CANONICAL_ROWS {
        r
    } else {
        end - CANONICAL_ROWS
    };
    (r >= MIN_REUSED_TOKENS).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After the reuse point, chunks end where a cold run's do and hold as many rows as the
    /// kernel family needs: each position is computed as cold.
    #[test]
    fn reuse_stops_where_the_rest_reads_as_cold() {
        let chunk = 256;
        assert_eq!(reuse_point(300, 420, chunk), Some(300)); // [300, 420): 120 rows, cold [256, 420)
        assert_eq!(reuse_point(410, 420, chunk), Some(404)); // 16 rows left to read
        assert_eq!(reuse_point(419, 420, chunk), Some(404));
        assert_eq!(reuse_point(250, 600, chunk), Some(240)); // [240, 256) then as cold
        assert_eq!(reuse_point(258, 260, chunk), Some(256)); // cold's last chunk [256, 260) is short
        assert_eq!(reuse_point(10, 420, chunk), None); // too little to copy
        for (shared, len) in [(100, 101), (255, 300), (256, 300), (600, 700), (511, 515)] {
            let r = reuse_point(shared, len, chunk).unwrap();
            assert!(r <= shared && r < len);
            let end = len.min((r / chunk + 1) * chunk);
            let cold_start = r / chunk * chunk;
            assert!(end - r >= CANONICAL_ROWS || r == cold_start, "{shared} {len}: {r}");
        }
    }

    #[test]
    fn the_longest_shared_prefix_is_reused_but_never_the_last_token() {
        let mut c = PrefixCache::new(1000, 2);
        c.insert(&[1, 2, 3, 4, 5], "a", 10);
        c.insert(&[1, 2, 9], "b", 10);
        assert_eq!(c.lookup(&[1, 2, 3, 4, 7]).map(|(v, n)| (*v, n)), Some(("a", 4)));
        assert_eq!(c.lookup(&[1, 2, 9, 9]).map(|(v, n)| (*v, n)), Some(("b", 3)));
        // The same prompt again: all but its last token.
        assert_eq!(c.lookup(&[1, 2, 3, 4, 5]).map(|(v, n)| (*v, n)), Some(("a", 4)));
        // Too short a match, or none.
        assert!(c.lookup(&[1, 5]).is_none());
        assert!(c.lookup(&[7, 7, 7]).is_none());
    }

    #[test]
    fn extensions_replace_and_the_budget_evicts_the_least_recently_used() {
        let mut c = PrefixCache::new(30, 1);
        c.insert(&[1, 2], "short", 10);
        c.insert(&[1, 2, 3], "longer", 10);
        assert_eq!((c.len(), c.bytes()), (1, 10), "the extension replaced its prefix");
        assert!(!c.wants(&[1, 2]), "a prefix of an entry adds nothing");
        c.insert(&[5], "five", 10);
        c.insert(&[6], "six", 10);
        assert_eq!(c.len(), 3);
        c.lookup(&[1, 2, 3, 4]); // [1, 2, 3] used last
        c.insert(&[7], "seven", 10);
        assert_eq!((c.len(), c.bytes()), (3, 30));
        assert!(c.lookup(&[5, 0]).is_none(), "the least recently used left");
        assert!(c.lookup(&[1, 2, 3, 9]).is_some());
        c.insert(&[8], "too big", 31);
        assert_eq!(c.len(), 3, "an entry over the whole budget is not kept");
    }
}

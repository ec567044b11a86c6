//! Per-request attention state: the llama family's KV cache (host memory, position-major, so a
//! token appends), copies of its first positions for prefix reuse, and gemma3's model clone.

use candle_transformers::models::quantized_gemma3;

use crate::error::Result;

/// Per-request attention state.
pub enum Cache {
    /// KV cache of a llama-family model.
    Llama(LlamaCache),
    /// A gemma3 model clone that holds its own KV cache.
    Gemma3(Box<quantized_gemma3::ModelWeights>, usize),
}

impl Cache {
    /// Bytes of keys and values held (0 where the model keeps its cache inside).
    pub fn bytes(&self) -> usize {
        match self {
            Cache::Llama(c) => c.k.iter().chain(&c.v).map(|t| t.capacity() * 4).sum(),
            Cache::Gemma3(..) => 0,
        }
    }

    /// Tokens already in the cache.
    pub fn len(&self) -> usize {
        match self {
            Cache::Llama(c) => c.len,
            Cache::Gemma3(_, n) => *n,
        }
    }

    /// Whether nothing has been processed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// KV cache of one request: per layer, keys and values of the first `len` positions, each
/// position `kv_heads * head_dim` values (position-major, so a new token appends). Capacity
/// grows by [`LlamaCache::CHUNK`] positions at a time.
pub struct LlamaCache {
    pub(super) k: Vec<Vec<f32>>,
    pub(super) v: Vec<Vec<f32>>,
    pub(super) len: usize,
}

impl LlamaCache {
    /// Positions added when the cache is full.
    pub const CHUNK: usize = 256;

    pub(super) fn new(layers: usize) -> Self {
        Self { k: vec![Vec::new(); layers], v: vec![Vec::new(); layers], len: 0 }
    }

    /// Room for `total` positions of `per` values each.
    pub(super) fn reserve(&mut self, total: usize, per: usize) {
        let want = total.div_ceil(Self::CHUNK) * Self::CHUNK * per;
        for slot in self.k.iter_mut().chain(self.v.iter_mut()) {
            if slot.capacity() < want {
                slot.reserve_exact(want - slot.len());
            }
        }
    }

    /// Forget what a failed pass appended after the first `len` positions.
    pub(super) fn truncate(&mut self, per: usize) {
        for slot in self.k.iter_mut().chain(self.v.iter_mut()) {
            slot.truncate(self.len * per);
        }
    }
}

/// A copy of the first positions of a KV cache, to start other sequences that share those
/// tokens (prefix reuse).
pub struct KvPrefix {
    pub(super) k: Vec<Vec<f32>>,
    pub(super) v: Vec<Vec<f32>>,
    pub(super) len: usize,
}

impl KvPrefix {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory it takes.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|t| t.len() * 4).sum()
    }
}

impl Cache {
    /// A copy of the first `len` positions, for prefix reuse; `None` where the model keeps its
    /// cache inside (gemma3) or the cache holds fewer positions.
    pub fn snapshot(&self, len: usize) -> Result<Option<KvPrefix>> {
        let Cache::Llama(c) = self else { return Ok(None) };
        if len == 0 || len > c.len {
            return Ok(None);
        }
        let per = c.k.first().map(|k| k.len() / c.len).unwrap_or(0);
        let copy = |slots: &[Vec<f32>]| slots.iter().map(|t| t[..len * per].to_vec()).collect();
        Ok(Some(KvPrefix { k: copy(&c.k), v: copy(&c.v), len }))
    }
}

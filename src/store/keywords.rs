//! Keyword (BM25) term weights for the sparse vectors of product text, computed the way the
//! Qdrant engine computes them.

use super::Vector;
use crate::error::{Error, Result};

/// BM25 term weights computed the way Qdrant computes them (its tokenizer, English stemmer and
/// stopwords), for a sparse vector whose collection applies the IDF modifier: the engine then
/// completes the BM25 score at query time from its own document frequencies.
pub struct KeywordEncoder {
    /// qdrant-edge's BM25 embedder.
    bm25: qdrant_edge::bm25_embed::EdgeBm25,
}

impl KeywordEncoder {
    /// Average document length (in tokens) assumed by BM25's length normalisation; product
    /// texts (title, brand, categories, description) are typically this long.
    pub const AVG_DOC_TOKENS: f64 = 64.0;

    /// An English BM25 encoder.
    pub fn english() -> Result<Self> {
        let config: qdrant_edge::bm25_embed::EdgeBm25Config =
            serde_json::from_value(serde_json::json!({"language": "english", "avg_len": Self::AVG_DOC_TOKENS}))
                .map_err(|e| Error::Internal(format!("bm25 config: {e}")))?;
        let bm25 = qdrant_edge::bm25_embed::EdgeBm25::new(config).map_err(|e| Error::Internal(format!("bm25: {e}")))?;
        Ok(Self { bm25 })
    }

    /// Term weights of a document.
    pub fn document(&self, text: &str) -> Vector {
        let s = self.bm25.embed_document(text);
        Vector::Sparse { indices: s.indices, values: s.values }
    }

    /// Term weights of a query (empty when the text has no indexable terms).
    pub fn query(&self, text: &str) -> Vector {
        let s = self.bm25.embed_query(text);
        Vector::Sparse { indices: s.indices, values: s.values }
    }
}

impl Vector {
    /// Whether this is a sparse vector with no terms.
    pub fn is_empty_sparse(&self) -> bool {
        matches!(self, Vector::Sparse { indices, .. } if indices.is_empty())
    }
}

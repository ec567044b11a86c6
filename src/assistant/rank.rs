//! Re-ranking retrieved products by the customer's taste: the relevance order and the taste
//! order (each product's text vector against the taste vector) fused by weighted reciprocal
//! rank (k = 60).
//!
//! Only the order of products already retrieved. Not whether personalisation applies (consent
//! and the weight are checked in `plan`) and not how a taste is learned (the events' profiles).

use serde_json::Value;

use super::Assistant;
use crate::catalog::{Product, TEXT_VECTOR, product_point};
use crate::error::Result;
use crate::store::Vector;

impl Assistant {
    /// Fuse the relevance order with the taste order (weighted RRF, k = 60).
    pub(super) async fn rerank(&self, hits: Vec<Product>, taste: &[f32]) -> Result<Vec<Product>> {
        let records = self
            .catalog
            .store()
            .retrieve(
                crate::catalog::PRODUCTS,
                hits.iter().map(|p| product_point(&p.id)).collect(),
                vec![TEXT_VECTOR.into()],
            )
            .await?;
        let norm = taste.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let mut sim: std::collections::HashMap<String, f32> = Default::default();
        for r in records {
            if let (Some(id), Some(Vector::Dense(v))) =
                (r.payload.get("id").and_then(Value::as_str), r.vectors.get(TEXT_VECTOR))
            {
                sim.insert(id.to_string(), v.iter().zip(taste).map(|(a, b)| a * b).sum::<f32>() / norm);
            }
        }
        let mut by_taste: Vec<usize> = (0..hits.len()).collect();
        by_taste.sort_by(|&a, &b| {
            let (sa, sb) =
                (sim.get(&hits[a].id).copied().unwrap_or(-1.0), sim.get(&hits[b].id).copied().unwrap_or(-1.0));
            sb.total_cmp(&sa)
        });
        let mut score = vec![0.0f64; hits.len()];
        for (rank, s) in score.iter_mut().enumerate() {
            *s += 1.0 / (60.0 + rank as f64 + 1.0);
        }
        for (rank, &i) in by_taste.iter().enumerate() {
            score[i] += self.config.personal_weight / (60.0 + rank as f64 + 1.0);
        }
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
        let mut hits: Vec<Option<Product>> = hits.into_iter().map(Some).collect();
        Ok(order.into_iter().filter_map(|i| hits[i].take()).collect())
    }
}

//! From chosen candidates to the response: each product with the anchor from the customer's
//! history that best relates to it ("because you viewed X"), its explanation in words, and
//! what was served recorded in the statistics.
//!
//! Not for choosing or ranking candidates (see `sources` and `fuse`).

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use super::Recommender;
use super::experiments::Assignment;
use super::fuse::Candidate;
use super::request::{Anchor, FeatureEffect, RecItem, Recommendations, SourceName, SourceRank};
use super::rules::{Active, RuleAction, RuleEffect};
use super::sources::AnchorItem;
use super::stats::Served;
use crate::catalog::TEXT_VECTOR;
use crate::error::Result;
use crate::events::Kind;
use crate::store::Vector;

/// What steered a list besides its sources: the rules in effect, the products pinned (with
/// the rule that pinned each) and the request's experiment variants.
pub(super) struct Steering<'a> {
    pub(super) rules: &'a Active,
    pub(super) pinned: &'a HashMap<Uuid, String>,
    pub(super) variants: Vec<Assignment>,
    /// The candidates' re-ranker features (logged with the response).
    pub(super) rows: &'a super::rerank::Rows,
    /// The re-ranker that ordered the list, if one did.
    pub(super) ranker: Option<std::sync::Arc<super::rank::Ranker>>,
    /// The pseudonymous key of the customer (else the session) served.
    pub(super) shopper: Option<String>,
}

impl Recommender {
    /// The response of `chosen`: anchors (when `anchored`: a known customer or a session) and
    /// explanations; what was served goes into the statistics under a new `rec_id`.
    pub(super) async fn respond(
        &self,
        chosen: Vec<Candidate>,
        anchors: &[AnchorItem],
        anchored: bool,
        personalized: bool,
        sources: Vec<SourceName>,
        steer: Steering<'_>,
    ) -> Result<Recommendations> {
        let Steering { rules, pinned, variants, rows, ranker, shopper } = steer;
        let rec_id = Uuid::new_v4();
        let shown: Vec<(Uuid, String)> = chosen
            .iter()
            .map(|(h, _)| {
                (h.id, h.payload.get("id").and_then(serde_json::Value::as_str).unwrap_or_default().to_string())
            })
            .collect();
        let features = super::rerank::as_shown(rows, &shown);
        let mut ranked_by = match &ranker {
            Some(model) => {
                let with_rows: Vec<_> = shown.iter().filter_map(|(id, _)| Some((*id, *rows.get(id)?))).collect();
                Self::ranked_by(model, &with_rows)
            }
            None => HashMap::new(),
        };
        let mut items = Vec::with_capacity(chosen.len());
        let mut served = Vec::with_capacity(chosen.len());
        for (hit, srcs) in chosen {
            let mut effects = rules.effects(&hit.payload);
            if let Some(rule) = pinned.get(&hit.id) {
                effects.insert(0, RuleEffect { rule: rule.clone(), action: RuleAction::Pin });
            }
            let product = crate::catalog::from_payload(hit.payload)?;
            let vector = match hit.vectors.get(TEXT_VECTOR) {
                Some(Vector::Dense(v)) => Some(v.as_slice()),
                _ => None,
            };
            let anchor = best_anchor(anchors, vector, anchored);
            let ranked = ranked_by.remove(&hit.id).unwrap_or_default();
            let explanation = explain(&srcs, anchor.as_ref(), &effects, &ranked);
            // The source credited in the statistics; a pinned item no source proposed: `rule`.
            let credited = match srcs.first() {
                Some(s) => s.source.as_str(),
                None if pinned.contains_key(&hit.id) => "rule",
                None => SourceName::Fallback.as_str(),
            };
            served.push((product.id.clone(), credited.to_string(), product.price));
            items.push(RecItem {
                product,
                score: hit.score,
                sources: srcs,
                anchor,
                explanation,
                rules: effects,
                ranked_by: ranked,
            });
        }
        self.stats.record(rec_id, Served { items: served, variants: &variants, features, shopper }, Utc::now()).await?;
        let ranker_version = ranker.map(|r| r.version);
        Ok(Recommendations { rec_id, personalized, sources, items, experiments: variants, ranker_version })
    }
}

/// The anchor most similar (by text) to a recommended product.
fn best_anchor(anchors: &[AnchorItem], item: Option<&[f32]>, allowed: bool) -> Option<Anchor> {
    if !allowed {
        return None;
    }
    let item = item?;
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let n_item = norm(item);
    anchors
        .iter()
        .filter_map(|a| {
            let t = a.text.as_ref()?;
            let sim = t.iter().zip(item).map(|(x, y)| x * y).sum::<f32>() / (norm(t) * n_item);
            Some((sim, a))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| Anchor { product_id: a.product_id.clone(), title: a.title.clone(), kind: a.kind })
}

fn verb(kind: Kind) -> &'static str {
    match kind {
        Kind::View | Kind::Impression => "viewed",
        Kind::Click => "clicked",
        Kind::Cart => "added to your cart",
        Kind::Purchase => "bought",
        Kind::Rating => "rated",
        Kind::Return => "returned",
    }
}

/// The explanation of an item in words: the rule that pinned it, what its sources say, what
/// moved it up in the learned re-ranking, and the rules that boosted or buried it.
fn explain(sources: &[SourceRank], anchor: Option<&Anchor>, rules: &[RuleEffect], ranked: &[FeatureEffect]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for s in sources {
        let part = match (s.source, anchor) {
            (SourceName::Session, Some(a)) | (SourceName::Content, Some(a)) if parts.is_empty() => {
                format!("because you {} {}", verb(a.kind), a.title)
            }
            (SourceName::Content, _) => "matches your taste".to_string(),
            (SourceName::Session, _) => "similar to what you are looking at".to_string(),
            (SourceName::CoPurchase, Some(a)) => format!("often bought together with {}", a.title),
            (SourceName::CoPurchase, None) => "often bought together".to_string(),
            (SourceName::Trending, _) => "popular right now".to_string(),
            (SourceName::Collab, _) => "customers like you chose it".to_string(),
            (SourceName::Fallback, _) => "in stock now".to_string(),
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    let pinned = rules.iter().any(|r| r.action == RuleAction::Pin);
    if parts.is_empty() && !pinned {
        parts.push("in stock now".into());
    }
    let mut up: Vec<&str> = Vec::new();
    for f in ranked.iter().filter(|f| f.contribution > 0.0) {
        if !up.contains(&f.meaning.as_str()) {
            up.push(&f.meaning);
        }
    }
    if !up.is_empty() {
        parts.push(format!("ranked up for {}", up.join(" and ")));
    }
    for r in rules {
        match r.action {
            RuleAction::Pin => parts.insert(0, format!("pinned by rule {}", r.rule)),
            RuleAction::Boost => parts.push(format!("boosted by rule {}", r.rule)),
            RuleAction::Bury => parts.push(format!("lowered by rule {}", r.rule)),
            RuleAction::Hide | RuleAction::Cap => {}
        }
    }
    let mut s = parts.join("; ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

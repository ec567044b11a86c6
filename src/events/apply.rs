//! How a batch of accepted events changes what aisle knows, in one pass under the catalog's
//! product-write lock: the events' own records, each product's trending score and
//! bought-together counts (through the catalog's typed signal writes), and the live profiles of
//! customers who consented to personalization. Not validation or duplicate detection (that is
//! [`Events::ingest`]) and not the HTTP edge.

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::profile::Consent;
use super::{CO_WITH, EVENTS, Event, Events, Kind, POP_TERM, event_point};
use crate::catalog::{ProductSignals, SignalUpdate};
use crate::error::Result;
use crate::store::{Condition, Filter, Payload, Point};

/// Start of the forward-decay clock for popularity (any fixed instant works).
const EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// A product's state while a batch of events changes it.
struct ProductState {
    signals: ProductSignals,
    trend_changed: bool,
    co_changed: bool,
}

impl Events {
    /// Store events and apply them to profiles, popularity and co-occurrence.
    pub(super) async fn apply(&self, events: Vec<&Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // Consent decides what is kept about whom.
        let mut consents: HashMap<String, Consent> = HashMap::new();
        for e in &events {
            if let Some(c) = &e.customer
                && !consents.contains_key(c)
            {
                consents.insert(c.clone(), self.profiles.consent_of_key(c).await?);
            }
        }
        let _writes = self.catalog.product_writes().lock().await;
        // Product vectors and numbers of everything involved, in one read.
        let mut involved: Vec<String> = events.iter().map(|e| e.product_id.clone()).collect();
        let mut personal: Vec<&Event> = Vec::new();
        for e in &events {
            if e.customer.as_ref().is_some_and(|c| consents[c].personalization) {
                personal.push(e);
            }
        }
        let profiles = self.profiles.load_keys(personal.iter().filter_map(|e| e.customer.clone()).collect()).await?;
        for p in profiles.values() {
            involved.extend(p.history.iter().map(|h| h.product_id.clone()));
        }
        involved.sort();
        involved.dedup();
        let mut products: HashMap<String, ProductState> = self
            .catalog
            .signals(&involved, true)
            .await?
            .into_iter()
            .map(|(id, signals)| (id, ProductState { signals, trend_changed: false, co_changed: false }))
            .collect();

        // What each event adds, kept in its record so that erasure can take exactly that away.
        let pop_terms = self.add_popularity(&events, &mut products);
        let co_with = self.count_co_purchases(&events, &consents, &mut products).await?;
        self.store.upsert(EVENTS, event_points(&events, &consents, &pop_terms, &co_with)).await?;

        let updates = products
            .values()
            .filter(|p| p.trend_changed || p.co_changed)
            .map(|p| SignalUpdate {
                point: p.signals.point,
                trend: p.trend_changed.then_some(p.signals.trend),
                co: p.co_changed.then(|| p.signals.co.clone()),
            })
            .collect();
        self.catalog.write_signals(updates).await?;

        // Live profiles.
        let vectors: HashMap<String, Vec<f32>> =
            products.iter().filter_map(|(k, p)| Some((k.clone(), p.signals.text.clone()?))).collect();
        self.profiles.apply(profiles, &personal, &vectors, &self.config, |k, v| self.weight(k, v)).await
    }

    /// The cart/purchase products of a customer (`c:key`) or session (`s:key`) since `since`,
    /// leaving out the events `except`.
    async fn recent_baskets(&self, owner: &str, since: i64, except: &[Uuid]) -> Result<Vec<(String, i64)>> {
        let (field, key) = match owner.split_once(':') {
            Some(("c", k)) => ("customer", k),
            Some((_, k)) => ("session", k),
            None => return Ok(vec![]),
        };
        let filter = Filter::default()
            .must(Condition::Keyword { key: field.into(), value: key.into() })
            .must(Condition::KeywordAny { key: "kind".into(), values: vec!["cart".into(), "purchase".into()] })
            .must(Condition::Range { key: "ts".into(), gte: Some(since as f64), lte: None })
            .must_not(Condition::HasId(except.to_vec()));
        let page = self.store.scroll(EVENTS, Some(filter), None, 200).await?;
        let mut out: Vec<(String, i64)> = page
            .records
            .iter()
            .filter_map(|r| Some((r.payload.get("product_id")?.as_str()?.to_string(), r.payload.get("ts")?.as_i64()?)))
            .collect();
        out.sort_by_key(|x| std::cmp::Reverse(x.1));
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(out)
    }

    /// Popularity (everyone, anonymous too; impressions and returns do not add to it): each
    /// event's forward-decayed log-term, added to its product's trending score.
    fn add_popularity<'e>(
        &self,
        events: &[&'e Event],
        products: &mut HashMap<String, ProductState>,
    ) -> HashMap<&'e str, f64> {
        let mut pop_terms: HashMap<&str, f64> = HashMap::new();
        let lambda = std::f64::consts::LN_2 / (self.config.trending_half_life_days * 86_400.0);
        for e in events {
            let w = self.weight(e.kind, e.value);
            if w <= 0.0 {
                continue;
            }
            if let Some(p) = products.get_mut(&e.product_id) {
                let term = w.ln() + lambda * (e.timestamp.timestamp() - EPOCH) as f64;
                pop_terms.insert(e.id.as_str(), term);
                p.signals.trend = Some(match p.signals.trend {
                    Some(t) => log_add_exp(t, term),
                    None => term,
                });
                p.trend_changed = true;
            }
        }

        pop_terms
    }

    /// Co-occurrence: carts and purchases of one customer (with analytics consent) or
    /// session within the window count as bought together. Returns, per event, the products
    /// it was counted with.
    async fn count_co_purchases<'e>(
        &self,
        events: &[&'e Event],
        consents: &HashMap<String, Consent>,
        products: &mut HashMap<String, ProductState>,
    ) -> Result<HashMap<&'e str, Vec<String>>> {
        let mut co_with: HashMap<&str, Vec<String>> = HashMap::new();
        let window = (self.config.co_purchase_window_days * 86_400.0) as i64;
        let batch_points: Vec<Uuid> = events.iter().map(|e| event_point(&e.id)).collect();
        let mut baskets: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for e in events {
            if !matches!(e.kind, Kind::Cart | Kind::Purchase) {
                continue;
            }
            let owner = match (&e.customer, &e.session) {
                (Some(c), _) if consents[c].analytics => format!("c:{c}"),
                (_, Some(s)) => format!("s:{s}"),
                _ => continue,
            };
            let basket = match baskets.get_mut(&owner) {
                Some(b) => b,
                None => {
                    // Earlier events only: this batch's own are already stored, and are added
                    // one by one below.
                    let earlier = self.recent_baskets(&owner, e.timestamp.timestamp() - window, &batch_points).await?;
                    baskets.entry(owner.clone()).or_insert(earlier)
                }
            };
            for (other, at) in basket.iter() {
                if other == &e.product_id || (e.timestamp.timestamp() - at).abs() > window {
                    continue;
                }
                let (Some(a_num), Some(b_num)) =
                    (products.get(other).map(|p| p.signals.num), products.get(&e.product_id).map(|p| p.signals.num))
                else {
                    continue;
                };
                if let Some(p) = products.get_mut(&e.product_id) {
                    *p.signals.co.entry(a_num).or_default() += 1.0;
                    p.co_changed = true;
                }
                if let Some(p) = products.get_mut(other) {
                    *p.signals.co.entry(b_num).or_default() += 1.0;
                    p.co_changed = true;
                }
                co_with.entry(e.id.as_str()).or_default().push(other.clone());
            }
            if !basket.iter().any(|(p, _)| p == &e.product_id) {
                basket.push((e.product_id.clone(), e.timestamp.timestamp()));
            }
        }
        Ok(co_with)
    }
}

/// The stored records of a batch: what happened, and what it added (so erasure can take it
/// away). Without analytics consent the customer key is left out.
fn event_points(
    events: &[&Event],
    consents: &HashMap<String, Consent>,
    pop_terms: &HashMap<&str, f64>,
    co_with: &HashMap<&str, Vec<String>>,
) -> Vec<Point> {
    let mut points = Vec::with_capacity(events.len());
    for e in events {
        let analytics = e.customer.as_ref().is_some_and(|c| consents[c].analytics);
        let mut payload = Payload::new();
        payload.insert("event_id".into(), json!(e.id));
        payload.insert("customer".into(), if analytics { json!(e.customer) } else { Value::Null });
        payload.insert("session".into(), json!(e.session));
        payload.insert("product_id".into(), json!(e.product_id));
        payload.insert("kind".into(), json!(e.kind.as_str()));
        payload.insert("value".into(), json!(e.value));
        payload.insert("ts".into(), json!(e.timestamp.timestamp()));
        payload.insert("rec_id".into(), json!(e.rec_id.map(|r| r.to_string())));
        payload.insert(POP_TERM.into(), json!(pop_terms.get(e.id.as_str())));
        payload.insert(CO_WITH.into(), json!(co_with.get(e.id.as_str()).cloned().unwrap_or_default()));
        points.push(Point { id: event_point(&e.id), vectors: vec![], payload });
    }

    points
}

/// `ln(e^a + e^b)` without overflow.
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_add_exp_is_stable_and_exact() {
        assert!((log_add_exp(0.0, 0.0) - 2f64.ln()).abs() < 1e-12);
        assert!((log_add_exp(1000.0, 0.0) - 1000.0).abs() < 1e-12);
        let (a, b) = (3.0f64, 1.5f64);
        assert!((log_add_exp(a, b) - (a.exp() + b.exp()).ln()).abs() < 1e-12);
    }

    #[test]
    fn forward_decay_ranks_like_decayed_counts() {
        // One purchase a week ago (weight 8) vs one view now (weight 1), half-life 7 days:
        // the decayed purchase is worth 4, so it still ranks above the view.
        let lambda = std::f64::consts::LN_2 / (7.0 * 86_400.0);
        let now = EPOCH + 100 * 86_400;
        let purchase = 8f64.ln() + lambda * (now - 7 * 86_400 - EPOCH) as f64;
        let view = 1f64.ln() + lambda * (now - EPOCH) as f64;
        assert!(purchase > view);
        let old_purchase = 8f64.ln() + lambda * (now - 28 * 86_400 - EPOCH) as f64; // worth 0.5
        assert!(old_purchase < view);
    }
}

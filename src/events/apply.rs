//! How accepted events change what aisle knows: their stored records (claimed by id, so that an
//! event sent to two replicas at once counts once), each product's popularity and
//! bought-together counts (this replica's tallies, through the catalog's shares), and the live
//! profiles of customers who consented to personalization. Not validation (that is
//! [`Events::ingest`]) and not the HTTP edge.
//!
//! Bought together is defined on the stored events alone, so that it does not depend on which
//! replica saw which event first: a cart or purchase event `f` counts once with every other
//! product `P` that the same owner (customer with analytics consent, else session) carted or
//! bought within the window *before* it (ordered by time, then event id). Each such pair is a
//! fact `(f, P)` in `co_facts`, claimed by whoever finds it first; whoever claims it adds one to
//! both products' counts. Every replica stores its events before it looks for pairs, so of two
//! events ingested at once on two replicas at least one sees the other.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::profile::Consent;
use super::{CO_FACTS, EVENTS, Event, Events, Kind, POP_TERM, event_point};
use crate::catalog::{Tally, popularity_units};
use crate::error::Result;
use crate::store::{Condition, Filter, Payload, Point, point_id};

/// Start of the forward-decay clock for popularity (any fixed instant works).
const EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// A stored cart or purchase event, as pairing needs it.
#[derive(Debug, Clone)]
struct Basket {
    id: String,
    product: String,
    ts: i64,
}

impl Events {
    /// The forward-decayed log-term an event adds to its product's popularity (`None` for
    /// kinds that do not add: impressions, returns, low ratings).
    pub(super) fn popularity_term(&self, e: &Event) -> Option<f64> {
        let w = self.weight(e.kind, e.value);
        if w <= 0.0 {
            return None;
        }
        let lambda = std::f64::consts::LN_2 / (self.config.trending_half_life_days * 86_400.0);
        Some(w.ln() + lambda * (e.timestamp.timestamp() - EPOCH) as f64)
    }

    /// A product's decayed popularity at `now` (unix seconds) from its stored log-sum
    /// (`trend`): the weighted events with each halved every trending half-life.
    pub fn popularity_now(&self, trend: f64, now: i64) -> f64 {
        let lambda = std::f64::consts::LN_2 / (self.config.trending_half_life_days * 86_400.0);
        (trend - lambda * (now - EPOCH) as f64).exp()
    }

    /// The bought-together owner of an event: `c:key` for a customer with analytics consent,
    /// else `s:key` for its session.
    pub(super) fn owner(e: &Event, consents: &HashMap<String, Consent>) -> Option<String> {
        match (&e.customer, &e.session) {
            (Some(c), _) if consents.get(c).is_some_and(|c| c.analytics) => Some(format!("c:{c}")),
            (_, Some(s)) => Some(format!("s:{s}")),
            _ => None,
        }
    }

    /// Apply events this replica claimed (already stored) to popularity, co-occurrence and
    /// profiles.
    pub(super) async fn apply(&self, events: Vec<&Event>, consents: &HashMap<String, Consent>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tallies: HashMap<String, Tally> = HashMap::new();
        for e in &events {
            if let Some(term) = self.popularity_term(e) {
                tallies.entry(e.product_id.clone()).or_default().popularity += popularity_units(term);
            }
        }
        self.count_co_purchases(&events, consents, &mut tallies).await?;
        self.catalog.add_signals(tallies).await?;

        // Live profiles (read-modify-write under the profiles' lock: a consent update at the same
        // time must not overwrite the history these events add, nor these events its consent).
        let personal: Vec<&Event> = events
            .iter()
            .copied()
            .filter(|e| e.customer.as_ref().is_some_and(|c| consents.get(c).is_some_and(|c| c.personalization)))
            .collect();
        if personal.is_empty() {
            return Ok(());
        }
        let _writes = self.profiles.writes().lock().await;
        let profiles = self.profiles.load_keys(personal.iter().filter_map(|e| e.customer.clone()).collect()).await?;
        let mut involved: Vec<String> = personal.iter().map(|e| e.product_id.clone()).collect();
        for p in profiles.values() {
            involved.extend(p.history.iter().map(|h| h.product_id.clone()));
        }
        involved.sort();
        involved.dedup();
        let vectors: HashMap<String, Vec<f32>> =
            self.catalog.signals(&involved, true).await?.into_iter().filter_map(|(k, s)| Some((k, s.text?))).collect();
        crate::fault::stall("profiles.rmw").await;
        self.profiles.apply(profiles, &personal, &vectors, &self.config, |k, v| self.weight(k, v)).await
    }

    /// The stored cart/purchase events of an owner (`c:key` or `s:key`) between two times.
    async fn baskets(&self, owner: &str, from: i64, to: i64) -> Result<Vec<Basket>> {
        let (field, key) = match owner.split_once(':') {
            Some(("c", k)) => ("customer", k),
            Some((_, k)) => ("session", k),
            None => return Ok(vec![]),
        };
        let filter = Filter::default()
            .must(Condition::Keyword { key: field.into(), value: key.into() })
            .must(Condition::KeywordAny { key: "kind".into(), values: vec!["cart".into(), "purchase".into()] })
            .must(Condition::Range { key: "ts".into(), gte: Some(from as f64), lte: Some(to as f64) });
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let page = self.store.scroll(EVENTS, Some(filter.clone()), offset, 1000).await?;
            for r in &page.records {
                let p = &r.payload;
                // The same owner only: a session's events of a consenting customer belong to
                // the customer.
                let stored_owner =
                    match (p.get("customer").and_then(Value::as_str), p.get("session").and_then(Value::as_str)) {
                        (Some(c), _) => format!("c:{c}"),
                        (None, Some(s)) => format!("s:{s}"),
                        _ => continue,
                    };
                if stored_owner != owner {
                    continue;
                }
                if let (Some(id), Some(product), Some(ts)) = (
                    p.get("event_id").and_then(Value::as_str),
                    p.get("product_id").and_then(Value::as_str),
                    p.get("ts").and_then(Value::as_i64),
                ) {
                    out.push(Basket { id: id.to_string(), product: product.to_string(), ts });
                }
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Co-occurrence: find the pairs the new events make with the owners' stored carts and
    /// purchases, claim them, and count the ones this replica claimed.
    async fn count_co_purchases(
        &self,
        events: &[&Event],
        consents: &HashMap<String, Consent>,
        tallies: &mut HashMap<String, Tally>,
    ) -> Result<()> {
        let window = (self.config.co_purchase_window_days * 86_400.0) as i64;
        // New cart/purchase events by owner.
        let mut by_owner: HashMap<String, Vec<&Event>> = HashMap::new();
        for e in events {
            if matches!(e.kind, Kind::Cart | Kind::Purchase)
                && let Some(owner) = Self::owner(e, consents)
            {
                by_owner.entry(owner).or_default().push(e);
            }
        }
        let mut facts: HashMap<uuid::Uuid, (String, String, Point)> = HashMap::new();
        for (owner, new) in &by_owner {
            let from = new.iter().map(|e| e.timestamp.timestamp()).min().unwrap_or(0) - window;
            let to = new.iter().map(|e| e.timestamp.timestamp()).max().unwrap_or(0) + window;
            let stored = self.baskets(owner, from, to).await?;
            for e in new {
                let me = Basket { id: e.id.clone(), product: e.product_id.clone(), ts: e.timestamp.timestamp() };
                for other in &stored {
                    if other.id == me.id || other.product == me.product || (other.ts - me.ts).abs() > window {
                        continue;
                    }
                    let (later, earlier) =
                        if (other.ts, &other.id) < (me.ts, &me.id) { (&me, other) } else { (other, &me) };
                    let id = point_id(CO_FACTS, &format!("{}|{}", later.id, earlier.product));
                    let payload = json!({
                        "event": later.id, "product": later.product, "other": earlier.product,
                        "owner": owner, "ts": later.ts,
                    });
                    let point =
                        Point { id, vectors: vec![], payload: payload.as_object().cloned().unwrap_or_default() };
                    facts.entry(id).or_insert((later.product.clone(), earlier.product.clone(), point));
                }
            }
        }
        if facts.is_empty() {
            return Ok(());
        }
        let points: Vec<Point> = facts.values().map(|(_, _, p)| p.clone()).collect();
        let won: HashSet<uuid::Uuid> = self.store.claim(CO_FACTS, points).await?;
        let mut involved: Vec<String> = facts.values().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
        involved.sort();
        involved.dedup();
        let nums: HashMap<String, u32> =
            self.catalog.signals(&involved, false).await?.into_iter().map(|(k, s)| (k, s.num)).collect();
        for (id, (a, b, _)) in &facts {
            if !won.contains(id) {
                continue;
            }
            let (Some(na), Some(nb)) = (nums.get(a), nums.get(b)) else { continue };
            tallies.entry(a.clone()).or_default().count_with(*nb, 1);
            tallies.entry(b.clone()).or_default().count_with(*na, 1);
        }
        Ok(())
    }
}

/// The stored record of an accepted event: what happened, and the popularity term it adds (so
/// that erasure can take it away). Without analytics consent the customer key is left out.
pub(super) fn event_record(e: &Event, consents: &HashMap<String, Consent>, pop_term: Option<f64>) -> Point {
    let analytics = e.customer.as_ref().is_some_and(|c| consents.get(c).is_some_and(|c| c.analytics));
    let mut payload = Payload::new();
    payload.insert("event_id".into(), json!(e.id));
    payload.insert("customer".into(), if analytics { json!(e.customer) } else { Value::Null });
    payload.insert("session".into(), json!(e.session));
    payload.insert("product_id".into(), json!(e.product_id));
    payload.insert("kind".into(), json!(e.kind.as_str()));
    payload.insert("value".into(), json!(e.value));
    payload.insert("ts".into(), json!(e.timestamp.timestamp()));
    payload.insert("rec_id".into(), json!(e.rec_id.map(|r| r.to_string())));
    payload.insert(POP_TERM.into(), json!(pop_term));
    Point { id: event_point(&e.id), vectors: vec![], payload }
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

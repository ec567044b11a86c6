//! Events: what customers do (view, click, cart, purchase, rating, return, impression), and
//! what each event changes at once, within the request that sends it:
//!
//! - the customer's live profile ([`profile`]): the `taste` vector, a time-decayed,
//!   kind-weighted mean of the text vectors of the products they interacted with, and their
//!   recent history and purchases;
//! - product popularity for `trending`: a forward-decayed sum kept as its logarithm, so that
//!   products updated at different times still rank correctly against each other;
//! - item-item co-occurrence for `co_purchase`: each product's sparse `co` vector counts, at
//!   the index of another product's number, how often a customer carted or bought both.
//!
//! Events are idempotent by id: a repeated event is acknowledged as a duplicate and changes
//! nothing. Without analytics consent an event is stored without its customer key (counted
//! anonymously); without personalization consent no profile is kept. This module knows
//! nothing of HTTP.

pub mod import;
pub mod profile;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog::{CO_VECTOR, Catalog, NUM, PRODUCTS, TEXT_VECTOR, TREND, product_point};
use crate::config::EventsConfig;
use crate::error::{Error, FieldError, Result};
use crate::privacy::Keyring;
use crate::store::{CollectionSpec, Condition, Filter, IndexKind, Payload, Point, SparseSpec, Store, Vector, point_id};

pub use profile::{Consent, CustomerInput, Profile, Profiles};

/// Logical name of the events collection.
pub const EVENTS: &str = "events";

/// Event payload: the log-term this event added to its product's trending score.
pub const POP_TERM: &str = "pop_term";
/// Event payload: the products this event was counted as bought together with.
pub const CO_WITH: &str = "co_with";

/// Start of the forward-decay clock for popularity (any fixed instant works).
const EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// What a customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Looked at a product page.
    View,
    /// Clicked a product (e.g. in a recommendation list).
    Click,
    /// Added to the cart.
    Cart,
    /// Bought.
    Purchase,
    /// Rated (value 1 to 5).
    Rating,
    /// Returned a bought product.
    Return,
    /// Was shown a product.
    Impression,
}

impl Kind {
    /// The name used in payloads and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Click => "click",
            Kind::Cart => "cart",
            Kind::Purchase => "purchase",
            Kind::Rating => "rating",
            Kind::Return => "return",
            Kind::Impression => "impression",
        }
    }
}

/// An event as a client sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// The client's event id; repeated ids are duplicates. Generated when missing.
    pub id: Option<String>,
    /// The customer (stored only as a pseudonymous key).
    pub customer_id: Option<String>,
    /// An anonymous session, for visitors without a customer id.
    pub session_id: Option<String>,
    /// The product.
    pub product_id: String,
    /// What happened.
    pub kind: Kind,
    /// Rating (1 to 5) for `rating`; quantity for `cart`/`purchase` (default 1).
    pub value: Option<f64>,
    /// When (default: now); not in the future, not older than the retention.
    pub timestamp: Option<DateTime<Utc>>,
    /// The `rec_id` of the recommendation response the product came from, if any.
    pub rec_id: Option<String>,
}

/// A validated event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Event id.
    pub id: String,
    /// Customer key (pseudonymous), when known and analytics consent allows.
    pub customer: Option<String>,
    /// Session key (pseudonymous).
    pub session: Option<String>,
    /// Product id.
    pub product_id: String,
    /// Kind.
    pub kind: Kind,
    /// Value.
    pub value: f64,
    /// Time.
    pub timestamp: DateTime<Utc>,
    /// Recommendation response it is attributed to.
    pub rec_id: Option<Uuid>,
}

/// Outcome of one event of a batch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum EventOutcome {
    /// Stored and applied.
    Accepted {
        /// Event id.
        id: String,
    },
    /// Seen before; nothing changed.
    Duplicate {
        /// Event id.
        id: String,
    },
    /// Refused.
    Rejected {
        /// What is wrong (pointers relative to the event).
        errors: Vec<FieldError>,
    },
}

/// Outcome of a batch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    /// Stored and applied.
    pub accepted: usize,
    /// Seen before.
    pub duplicates: usize,
    /// Refused.
    pub rejected: usize,
    /// Per event, in order.
    pub results: Vec<EventOutcome>,
}

/// The event service.
#[derive(Clone)]
pub struct Events {
    store: Store,
    catalog: Catalog,
    profiles: Profiles,
    keys: Keyring,
    config: EventsConfig,
}

/// The events collection's layout.
pub fn collection_spec() -> CollectionSpec {
    CollectionSpec {
        name: EVENTS.into(),
        dense: vec![],
        // Events carry no vector; a collection needs one declared.
        sparse: vec![SparseSpec { name: "unused".into(), idf: false }],
        indexes: vec![
            ("customer".into(), IndexKind::Keyword),
            ("session".into(), IndexKind::Keyword),
            ("product_id".into(), IndexKind::Keyword),
            ("kind".into(), IndexKind::Keyword),
            ("ts".into(), IndexKind::Integer),
            ("rec_id".into(), IndexKind::Keyword),
        ],
        hnsw: true,
    }
}

fn event_point(id: &str) -> Uuid {
    point_id(EVENTS, id)
}

impl Events {
    /// Open the event service, creating its collections if needed.
    pub async fn open(
        store: Store,
        catalog: Catalog,
        profiles: Profiles,
        keys: Keyring,
        config: EventsConfig,
    ) -> Result<Self> {
        store.ensure_collection(&collection_spec()).await?;
        Ok(Self { store, catalog, profiles, keys, config })
    }

    /// The configured weight of an event in taste and popularity.
    pub fn weight(&self, kind: Kind, value: f64) -> f64 {
        kind_weight(&self.config, kind, value)
    }

    /// Validate one input (everything but the product's existence).
    fn validate(
        &self,
        input: EventInput,
        now: DateTime<Utc>,
    ) -> std::result::Result<(EventInput, DateTime<Utc>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let id_ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control);
        if let Some(id) = &input.id
            && !id_ok(id)
        {
            errors.push(FieldError::new("/id", "must be 1 to 200 characters without control characters"));
        }
        if let Some(c) = &input.customer_id
            && !id_ok(c)
        {
            errors.push(FieldError::new("/customer_id", "must be 1 to 200 characters without control characters"));
        }
        if let Some(s) = &input.session_id
            && !id_ok(s)
        {
            errors.push(FieldError::new("/session_id", "must be 1 to 200 characters without control characters"));
        }
        if let Err(why) = crate::catalog::product::check_id(&input.product_id) {
            errors.push(FieldError::new("/product_id", why));
        }
        match (input.kind, input.value) {
            (Kind::Rating, None) => errors.push(FieldError::new("/value", "a rating needs a value from 1 to 5")),
            (Kind::Rating, Some(v)) if !(1.0..=5.0).contains(&v) => {
                errors.push(FieldError::new("/value", "a rating is 1 to 5"))
            }
            (_, Some(v)) if !v.is_finite() || !(0.0..=1e6).contains(&v) => {
                errors.push(FieldError::new("/value", "must be a number from 0 to 1e6"))
            }
            _ => {}
        }
        let ts = input.timestamp.unwrap_or(now);
        if ts > now + chrono::Duration::minutes(5) {
            errors.push(FieldError::new("/timestamp", "is in the future"));
        }
        if (now - ts).num_seconds() as f64 > self.config.max_age_days * 86_400.0 {
            errors.push(FieldError::new(
                "/timestamp",
                format!("is older than the retention of {} days", self.config.max_age_days),
            ));
        }
        if let Some(r) = &input.rec_id
            && Uuid::parse_str(r).is_err()
        {
            errors.push(FieldError::new("/rec_id", "is not a rec_id returned by a recommendation response"));
        }
        if errors.is_empty() { Ok((input, ts)) } else { Err(errors) }
    }

    /// Ingest a batch: each event is validated on its own (an unknown product or a bad field
    /// rejects that event only), duplicates are skipped, and the rest are stored and applied
    /// to profiles, popularity and co-occurrence before this returns. Returns the report and
    /// the accepted events (for recommendation attribution).
    pub async fn ingest(&self, inputs: Vec<EventInput>) -> Result<(IngestReport, Vec<Event>)> {
        let now = Utc::now();
        let mut report = IngestReport::default();
        let mut staged: Vec<(usize, EventInput, DateTime<Utc>)> = Vec::new();
        let mut results: Vec<Option<EventOutcome>> = vec![None; inputs.len()];
        for (i, input) in inputs.into_iter().enumerate() {
            match self.validate(input, now) {
                Ok((input, ts)) => staged.push((i, input, ts)),
                Err(errors) => results[i] = Some(EventOutcome::Rejected { errors }),
            }
        }
        // Unknown products are per-event errors.
        let product_ids: Vec<String> = staged.iter().map(|(_, e, _)| e.product_id.clone()).collect();
        let known: HashMap<String, ()> = self
            .store
            .retrieve(PRODUCTS, product_ids.iter().map(|p| product_point(p)).collect(), vec![])
            .await?
            .into_iter()
            .filter_map(|r| r.payload.get("id").and_then(Value::as_str).map(|s| (s.to_string(), ())))
            .collect();
        // Duplicates: ids already stored, or repeated within the batch.
        let ids: Vec<String> =
            staged.iter().map(|(_, e, _)| e.id.clone().unwrap_or_else(|| Uuid::new_v4().to_string())).collect();
        let stored: std::collections::HashSet<Uuid> = self
            .store
            .retrieve(EVENTS, ids.iter().map(|i| event_point(i)).collect(), vec![])
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut events = Vec::new();
        for ((i, input, ts), id) in staged.into_iter().zip(ids) {
            if !known.contains_key(&input.product_id) {
                results[i] = Some(EventOutcome::Rejected {
                    errors: vec![FieldError::new(
                        "/product_id",
                        format!("product '{}' does not exist", input.product_id),
                    )],
                });
                continue;
            }
            if stored.contains(&event_point(&id)) || !seen.insert(id.clone()) {
                results[i] = Some(EventOutcome::Duplicate { id });
                continue;
            }
            let customer = input.customer_id.as_deref().map(|c| self.keys.customer_key(c));
            let session = input.session_id.as_deref().map(|s| self.keys.session_key(s));
            let value = input.value.unwrap_or(1.0);
            events.push((
                i,
                Event {
                    id: id.clone(),
                    customer,
                    session,
                    product_id: input.product_id,
                    kind: input.kind,
                    value,
                    timestamp: ts,
                    rec_id: input.rec_id.as_deref().and_then(|r| Uuid::parse_str(r).ok()),
                },
            ));
            results[i] = Some(EventOutcome::Accepted { id });
        }
        self.apply(events.iter().map(|(_, e)| e).collect()).await?;
        for r in results.into_iter().flatten() {
            match &r {
                EventOutcome::Accepted { .. } => report.accepted += 1,
                EventOutcome::Duplicate { .. } => report.duplicates += 1,
                EventOutcome::Rejected { .. } => report.rejected += 1,
            }
            report.results.push(r);
        }
        Ok((report, events.into_iter().map(|(_, e)| e).collect()))
    }

    /// Store events and apply them to profiles, popularity and co-occurrence.
    async fn apply(&self, events: Vec<&Event>) -> Result<()> {
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
        let records = self
            .store
            .retrieve(
                PRODUCTS,
                involved.iter().map(|p| product_point(p)).collect(),
                vec![TEXT_VECTOR.into(), CO_VECTOR.into()],
            )
            .await?;
        let mut products: HashMap<String, ProductState> = HashMap::new();
        for r in records {
            let Some(id) = r.payload.get("id").and_then(Value::as_str).map(str::to_string) else { continue };
            products.insert(
                id,
                ProductState {
                    point: r.id,
                    num: r.payload.get(NUM).and_then(Value::as_u64).unwrap_or(0) as u32,
                    trend: r.payload.get(TREND).and_then(Value::as_f64),
                    text: match r.vectors.get(TEXT_VECTOR) {
                        Some(Vector::Dense(v)) => Some(v.clone()),
                        _ => None,
                    },
                    co: match r.vectors.get(CO_VECTOR) {
                        Some(Vector::Sparse { indices, values }) => {
                            indices.iter().copied().zip(values.iter().copied()).collect()
                        }
                        _ => BTreeMap::new(),
                    },
                    trend_changed: false,
                    co_changed: false,
                },
            );
        }

        // What each event adds, kept in its record so that erasure can take exactly that away.
        let mut pop_terms: HashMap<&str, f64> = HashMap::new();
        let mut co_with: HashMap<&str, Vec<String>> = HashMap::new();
        // Popularity (everyone, anonymous too; impressions and returns do not add to it).
        let lambda = std::f64::consts::LN_2 / (self.config.trending_half_life_days * 86_400.0);
        for e in &events {
            let w = self.weight(e.kind, e.value);
            if w <= 0.0 {
                continue;
            }
            if let Some(p) = products.get_mut(&e.product_id) {
                let term = w.ln() + lambda * (e.timestamp.timestamp() - EPOCH) as f64;
                pop_terms.insert(e.id.as_str(), term);
                p.trend = Some(match p.trend {
                    Some(t) => log_add_exp(t, term),
                    None => term,
                });
                p.trend_changed = true;
            }
        }

        // Co-occurrence: carts and purchases of one customer (with analytics consent) or
        // session within the window count as bought together.
        let window = (self.config.co_purchase_window_days * 86_400.0) as i64;
        let batch_points: Vec<Uuid> = events.iter().map(|e| event_point(&e.id)).collect();
        let mut baskets: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for e in &events {
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
                    (products.get(other).map(|p| p.num), products.get(&e.product_id).map(|p| p.num))
                else {
                    continue;
                };
                if let Some(p) = products.get_mut(&e.product_id) {
                    *p.co.entry(a_num).or_default() += 1.0;
                    p.co_changed = true;
                }
                if let Some(p) = products.get_mut(other) {
                    *p.co.entry(b_num).or_default() += 1.0;
                    p.co_changed = true;
                }
                co_with.entry(e.id.as_str()).or_default().push(other.clone());
            }
            if !basket.iter().any(|(p, _)| p == &e.product_id) {
                basket.push((e.product_id.clone(), e.timestamp.timestamp()));
            }
        }
        let mut points = Vec::with_capacity(events.len());
        for e in &events {
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
        self.store.upsert(EVENTS, points).await?;

        let mut vector_updates = Vec::new();
        let mut trend_updates = Vec::new();
        for p in products.values() {
            if p.trend_changed {
                let mut payload = Payload::new();
                payload.insert(TREND.into(), json!(p.trend));
                trend_updates.push((p.point, payload));
            }
            if p.co_changed {
                let (indices, values): (Vec<u32>, Vec<f32>) = p.co.iter().map(|(k, v)| (*k, *v)).unzip();
                vector_updates.push((p.point, vec![(CO_VECTOR.to_string(), Vector::Sparse { indices, values })]));
            }
        }
        self.store.set_payloads(PRODUCTS, trend_updates).await?;
        self.store.update_vectors(PRODUCTS, vector_updates).await?;

        // Live profiles.
        let vectors: HashMap<String, Vec<f32>> =
            products.iter().filter_map(|(k, p)| Some((k.clone(), p.text.clone()?))).collect();
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

    /// Every stored event of a customer key (payloads), oldest first.
    pub async fn of_customer(&self, customer_key: &str) -> Result<Vec<Payload>> {
        let filter = Filter::default().must(Condition::Keyword { key: "customer".into(), value: customer_key.into() });
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let page = self.store.scroll(EVENTS, Some(filter.clone()), offset, 1000).await?;
            out.extend(page.records.into_iter().map(|r| r.payload));
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        out.sort_by_key(|p| p.get("ts").and_then(Value::as_i64).unwrap_or(0));
        Ok(out)
    }

    /// Delete every event of a customer key.
    pub async fn delete_of_customer(&self, customer_key: &str) -> Result<()> {
        let filter = Filter::default().must(Condition::Keyword { key: "customer".into(), value: customer_key.into() });
        self.store.delete_by_filter(EVENTS, filter).await
    }

    /// Retention: delete events older than `events.max_age_days`, then rewrite the collection
    /// so their bytes are gone from disk. Returns how many were deleted.
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> Result<usize> {
        let cutoff = now.timestamp() - (self.config.max_age_days * 86_400.0) as i64;
        let filter =
            Filter::default().must(Condition::Range { key: "ts".into(), gte: None, lte: Some((cutoff - 1) as f64) });
        let n = self.store.count(EVENTS, Some(filter.clone())).await?;
        if n > 0 {
            self.store.delete_by_filter(EVENTS, filter).await?;
            self.store.compact(EVENTS).await?;
        }
        Ok(n)
    }

    /// Product ids of a customer's impression events since `since` (to exclude what was shown).
    pub async fn shown_since(&self, customer_key: &str, since: DateTime<Utc>) -> Result<Vec<String>> {
        let filter = Filter::default()
            .must(Condition::Keyword { key: "customer".into(), value: customer_key.into() })
            .must(Condition::Keyword { key: "kind".into(), value: "impression".into() })
            .must(Condition::Range { key: "ts".into(), gte: Some(since.timestamp() as f64), lte: None });
        let page = self.store.scroll(EVENTS, Some(filter), None, 500).await?;
        Ok(page.records.iter().filter_map(|r| r.payload.get("product_id")?.as_str().map(str::to_string)).collect())
    }
}

/// A product's state while a batch of events changes it.
struct ProductState {
    point: Uuid,
    num: u32,
    trend: Option<f64>,
    text: Option<Vec<f32>>,
    co: BTreeMap<u32, f32>,
    trend_changed: bool,
    co_changed: bool,
}

/// The configured weight of an event in taste, popularity and training.
pub fn kind_weight(c: &EventsConfig, kind: Kind, value: f64) -> f64 {
    match kind {
        Kind::View => c.weight_view,
        Kind::Click => c.weight_click,
        Kind::Cart => c.weight_cart,
        Kind::Purchase => c.weight_purchase,
        Kind::Return => c.weight_return,
        Kind::Rating => (value - 3.0) * c.weight_rating,
        Kind::Impression => 0.0,
    }
}

/// `ln(e^a + e^b)` without overflow.
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// Errors of a whole request body that is not a list of events.
pub fn batch_too_large(n: usize, max: usize) -> Error {
    Error::invalid("/events", format!("at most {max} events per request; got {n}"))
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

//! Merchandising rules: how a retailer steers recommendation lists. A rule pins products at a
//! position, boosts or buries products, categories or brands, hides them, or caps how many
//! items of one brand or category a list may hold; each may be limited to a time window.
//!
//! Where the engine can do it, a rule runs inside the fused query: `hide` adds to the filter
//! every source runs under (so nothing hidden can come back, from any source or from the
//! fill), and `boost` adds one prefetch per rule, the request's strongest source restricted to
//! the rule's products, weighted into the RRF like a source. What the engine cannot express is
//! applied to the fused candidates: `bury` moves matching items after every other candidate,
//! `cap` skips items past the cap while the list is picked (MMR order, then the fill), and
//! `pin` places products (still under the filter: a pinned product out of stock or hidden is
//! not shown) at their position last, past any cap. Every item records the rules that moved it,
//! and its explanation names them ("boosted by rule spring-sale").
//!
//! Rules are stored in the store (shared by every replica) and read through a cache of two
//! seconds; a change made on one replica is in effect everywhere within that time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::catalog::{BRAND_KEY, CATEGORY_KEYS, filter_key, product_point};
use crate::error::{Error, FieldError, Result};
use crate::store::{CollectionSpec, Condition, Filter, Payload, Point, Store, point_id};

/// The rules collection.
pub const RULES: &str = "merch_rules";
/// At most this many rules are kept.
pub const MAX_RULES: usize = 1000;
/// How long a replica serves the rules it read before reading them again.
const CACHE: Duration = Duration::from_secs(2);

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Place `products` at `position` (1 = first) of every list, in their order.
    Pin,
    /// Propose matching products as an extra source of weight `weight`.
    Boost,
    /// Show matching products only after every other candidate.
    Bury,
    /// Never show matching products.
    Hide,
    /// At most `max` items per `per` (brand or category) in one list.
    Cap,
}

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapKey {
    /// Items of one brand.
    Brand,
    /// Items of one category (an item counts for each of its categories).
    Category,
}

/// A rule as a merchandiser writes it (the body of `PUT /v1/rules/{id}`). A product matches
/// when it is one of `products`, in one of `categories` or of one of `brands` (names compared
/// case-insensitively).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// What the rule does.
    pub action: RuleAction,
    /// Product ids (the only target of `pin`).
    #[serde(default)]
    pub products: Vec<String>,
    /// Categories (not for `pin`; for `cap` per category, the categories capped, all if none).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Brands (not for `pin`; for `cap` per brand, the brands capped, all if none).
    #[serde(default)]
    pub brands: Vec<String>,
    /// `pin`: the position of the first product (1 = first; default 1).
    #[schema(minimum = 1, maximum = 100)]
    pub position: Option<usize>,
    /// `boost`: the weight of the rule's source in the fusion (above 0, at most 100; default 1,
    /// the weight of a source by default).
    pub weight: Option<f32>,
    /// `cap`: what is counted.
    pub per: Option<CapKey>,
    /// `cap`: the most items of one brand or category in a list (1 to 100).
    #[schema(minimum = 1, maximum = 100)]
    pub max: Option<usize>,
    /// In effect from (default: now).
    pub starts_at: Option<DateTime<Utc>>,
    /// In effect until (excluded; default: no end).
    pub ends_at: Option<DateTime<Utc>>,
    /// A note for other merchandisers (at most 500 characters).
    pub note: Option<String>,
}

/// A stored rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rule {
    /// Its id (letters, digits, `-` and `_`; 1 to 64 characters), named in explanations.
    pub id: String,
    /// The rule.
    pub spec: RuleSpec,
    /// Last written.
    pub updated_at: DateTime<Utc>,
}

/// A rule that moved an item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleEffect {
    /// The rule's id.
    pub rule: String,
    /// What it did (`pin`, `boost` or `bury`).
    pub action: RuleAction,
}

impl RuleSpec {
    /// Every problem with this rule, fields named as in the body.
    pub fn check(&self, id: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            errors.push(FieldError::new("/id", "must be 1 to 64 letters, digits, '-' or '_'"));
        }
        for (field, list) in [("products", &self.products), ("categories", &self.categories), ("brands", &self.brands)]
        {
            if list.len() > 1000 {
                errors.push(FieldError::new(format!("/{field}"), "at most 1000 entries"));
            }
            for (i, v) in list.iter().enumerate() {
                if v.trim().is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
                    errors.push(FieldError::new(
                        format!("/{field}/{i}"),
                        "must be 1 to 200 characters without control characters",
                    ));
                }
            }
        }
        let any_target = !(self.products.is_empty() && self.categories.is_empty() && self.brands.is_empty());
        let unused = |errors: &mut Vec<FieldError>, field: &str, set: bool| {
            if set {
                errors.push(FieldError::new(format!("/{field}"), format!("is not used by a {:?} rule", self.action)));
            }
        };
        match self.action {
            RuleAction::Pin => {
                if self.products.is_empty() {
                    errors.push(FieldError::new("/products", "a pin names at least one product"));
                }
                unused(&mut errors, "categories", !self.categories.is_empty());
                unused(&mut errors, "brands", !self.brands.is_empty());
                if self.position.is_some_and(|p| !(1..=100).contains(&p)) {
                    errors.push(FieldError::new("/position", "must be between 1 and 100"));
                }
            }
            RuleAction::Boost | RuleAction::Bury | RuleAction::Hide => {
                if !any_target {
                    errors.push(FieldError::new("/products", "name at least one product, category or brand"));
                }
            }
            RuleAction::Cap => {
                unused(&mut errors, "products", !self.products.is_empty());
                match self.per {
                    None => errors.push(FieldError::new("/per", "a cap counts per 'brand' or per 'category'")),
                    Some(CapKey::Brand) => unused(&mut errors, "categories", !self.categories.is_empty()),
                    Some(CapKey::Category) => unused(&mut errors, "brands", !self.brands.is_empty()),
                }
                if !self.max.is_some_and(|m| (1..=100).contains(&m)) {
                    errors.push(FieldError::new("/max", "a cap needs max between 1 and 100"));
                }
            }
        }
        if self.action != RuleAction::Pin {
            unused(&mut errors, "position", self.position.is_some());
        }
        if self.action != RuleAction::Cap {
            unused(&mut errors, "per", self.per.is_some());
            unused(&mut errors, "max", self.max.is_some());
        }
        match (self.action, self.weight) {
            (RuleAction::Boost, Some(w)) if !(w.is_finite() && w > 0.0 && w <= 100.0) => {
                errors.push(FieldError::new("/weight", "must be above 0 and at most 100"));
            }
            (RuleAction::Boost, _) => {}
            (_, w) => unused(&mut errors, "weight", w.is_some()),
        }
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at)
            && e <= s
        {
            errors.push(FieldError::new("/ends_at", "must be after starts_at"));
        }
        if self.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
            errors.push(FieldError::new("/note", "at most 500 characters"));
        }
        errors
    }

    /// Whether the rule is in effect at `now`.
    pub fn in_effect(&self, now: DateTime<Utc>) -> bool {
        self.starts_at.is_none_or(|s| s <= now) && self.ends_at.is_none_or(|e| now < e)
    }

    /// The products it targets, as a filter (any of its products, categories or brands).
    fn target(&self) -> Filter {
        let mut f = Filter::default();
        if !self.products.is_empty() {
            f.should.push(Condition::HasId(self.products.iter().map(|p| product_point(p)).collect()));
        }
        if !self.categories.is_empty() {
            f.should.push(Condition::KeywordAny {
                key: CATEGORY_KEYS.into(),
                values: self.categories.iter().map(|c| filter_key(c)).collect(),
            });
        }
        if !self.brands.is_empty() {
            f.should.push(Condition::KeywordAny {
                key: BRAND_KEY.into(),
                values: self.brands.iter().map(|b| filter_key(b)).collect(),
            });
        }
        f
    }

    /// Whether a product (its stored payload) is a target.
    fn matches(&self, p: &Payload) -> bool {
        let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
        self.products.iter().any(|x| x == id)
            || keys(p, CATEGORY_KEYS).iter().any(|c| self.categories.iter().any(|x| &filter_key(x) == c))
            || keys(p, BRAND_KEY).iter().any(|b| self.brands.iter().any(|x| &filter_key(x) == b))
    }
}

/// The keyword values of a payload field (a string or an array of strings).
fn keys(p: &Payload, field: &str) -> Vec<String> {
    match p.get(field) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

/// The rules in effect for one request.
#[derive(Debug, Clone, Default)]
pub struct Active {
    rules: Vec<Rule>,
}

impl Active {
    /// The rules in effect at `now` among `all`.
    pub fn of(all: &[Rule], now: DateTime<Utc>) -> Self {
        Self { rules: all.iter().filter(|r| r.spec.in_effect(now)).cloned().collect() }
    }

    fn with(&self, action: RuleAction) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.spec.action == action)
    }

    /// `filter` without what `hide` rules hide.
    pub fn hide(&self, mut filter: Filter) -> Filter {
        for r in self.with(RuleAction::Hide) {
            filter.must_not.push(Condition::Nested(r.spec.target()));
        }
        filter
    }

    /// The `boost` rules as (rule id, weight, filter of its products).
    pub fn boosts(&self) -> Vec<(String, f32, Filter)> {
        self.with(RuleAction::Boost).map(|r| (r.id.clone(), r.spec.weight.unwrap_or(1.0), r.spec.target())).collect()
    }

    /// Whether a `bury` rule matches the product.
    pub fn buried(&self, p: &Payload) -> bool {
        self.with(RuleAction::Bury).any(|r| r.spec.matches(p))
    }

    /// Whether a `bury` or `cap` rule may skip or move an item back.
    pub fn reorders(&self) -> bool {
        self.rules.iter().any(|r| matches!(r.spec.action, RuleAction::Bury | RuleAction::Cap))
    }

    /// Whether any `cap` rule is in effect.
    pub fn has_caps(&self) -> bool {
        self.with(RuleAction::Cap).next().is_some()
    }

    /// The `pin` rules as (rule id, 0-based position, products), by position then id.
    pub fn pins(&self) -> Vec<(String, usize, Vec<String>)> {
        let mut pins: Vec<(String, usize, Vec<String>)> = self
            .with(RuleAction::Pin)
            .map(|r| (r.id.clone(), r.spec.position.unwrap_or(1).saturating_sub(1), r.spec.products.clone()))
            .collect();
        pins.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        pins
    }

    /// The boost and bury rules that match a product.
    pub fn effects(&self, p: &Payload) -> Vec<RuleEffect> {
        self.rules
            .iter()
            .filter(|r| matches!(r.spec.action, RuleAction::Boost | RuleAction::Bury) && r.spec.matches(p))
            .map(|r| RuleEffect { rule: r.id.clone(), action: r.spec.action })
            .collect()
    }
}

/// Counts of one list against the `cap` rules.
#[derive(Debug, Default)]
pub struct Caps {
    counts: HashMap<(usize, String), usize>,
}

impl Caps {
    /// The (rule index, counted key) pairs a product adds to, and whether each is still under
    /// its cap.
    fn keys(active: &Active, p: &Payload) -> Vec<((usize, String), usize)> {
        let mut out = Vec::new();
        for (i, r) in active.rules.iter().enumerate().filter(|(_, r)| r.spec.action == RuleAction::Cap) {
            let (field, only) = match r.spec.per {
                Some(CapKey::Brand) => (BRAND_KEY, &r.spec.brands),
                Some(CapKey::Category) => (CATEGORY_KEYS, &r.spec.categories),
                None => continue,
            };
            for k in keys(p, field) {
                if only.is_empty() || only.iter().any(|o| filter_key(o) == k) {
                    out.push(((i, k), r.spec.max.unwrap_or(usize::MAX)));
                }
            }
        }
        out
    }

    /// Take the product if no cap is full; counts it when taken.
    pub fn take(&mut self, active: &Active, p: &Payload) -> bool {
        let keys = Self::keys(active, p);
        if keys.iter().any(|(k, max)| self.counts.get(k).copied().unwrap_or(0) >= *max) {
            return false;
        }
        for (k, _) in keys {
            *self.counts.entry(k).or_default() += 1;
        }
        true
    }
}

/// The rules as last read, and when.
type Cached = Option<(Instant, Arc<Vec<Rule>>)>;

/// The stored rules, cached.
#[derive(Clone)]
pub struct Rules {
    store: Store,
    cache: Arc<Mutex<Cached>>,
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl Rules {
    /// Open the rules over `store`, creating their collection if needed.
    pub async fn open(store: Store) -> Result<Self> {
        store.ensure_collection(&CollectionSpec::payload_only(RULES, &[])).await?;
        Ok(Self { store, cache: Arc::default(), writes: Arc::default() })
    }

    /// Every rule, by id (from the cache when it is fresh).
    pub async fn all(&self) -> Result<Arc<Vec<Rule>>> {
        if let Some((at, rules)) = self.cache.lock().as_ref()
            && at.elapsed() < CACHE
        {
            return Ok(rules.clone());
        }
        let mut rules = Vec::new();
        let mut offset = None;
        loop {
            let page = self.store.scroll(RULES, None, offset, 1000).await?;
            for r in page.records {
                let rule: Rule = serde_json::from_value(Value::Object(r.payload))
                    .map_err(|e| Error::Store(format!("a stored rule is unreadable: {e}")))?;
                rules.push(rule);
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        let rules = Arc::new(rules);
        *self.cache.lock() = Some((Instant::now(), rules.clone()));
        Ok(rules)
    }

    /// The rules in effect now.
    pub async fn active(&self) -> Result<Active> {
        Ok(Active::of(&self.all().await?, Utc::now()))
    }

    /// One rule.
    pub async fn get(&self, id: &str) -> Result<Rule> {
        self.all().await?.iter().find(|r| r.id == id).cloned().ok_or_else(|| Error::not_found("rule", id))
    }

    /// Create or replace a rule; returns it and whether it was created.
    pub async fn put(&self, id: &str, spec: RuleSpec) -> Result<(Rule, bool)> {
        let errors = spec.check(id);
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let _writes = self.writes.lock().await;
        self.cache.lock().take();
        let all = self.all().await?;
        let created = !all.iter().any(|r| r.id == id);
        if created && all.len() >= MAX_RULES {
            return Err(Error::Invalid(vec![FieldError::new(
                "/id",
                format!("at most {MAX_RULES} rules; delete one first"),
            )]));
        }
        let rule = Rule { id: id.to_string(), spec, updated_at: Utc::now() };
        let Value::Object(payload) = serde_json::to_value(&rule).map_err(|e| Error::Internal(e.to_string()))? else {
            return Err(Error::Internal("a rule did not serialize to an object".into()));
        };
        self.store.upsert(RULES, vec![Point { id: point_id(RULES, id), vectors: vec![], payload }]).await?;
        self.cache.lock().take();
        Ok((rule, created))
    }

    /// Delete a rule.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let _writes = self.writes.lock().await;
        self.get(id).await?;
        self.store.delete(RULES, vec![point_id(RULES, id)]).await?;
        self.cache.lock().take();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> RuleSpec {
        serde_json::from_value(v).unwrap()
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.pointer).collect()
    }

    #[test]
    fn bad_rules_name_their_fields() {
        assert!(spec(json!({"action": "pin", "products": ["a"], "position": 3})).check("spring").is_empty());
        assert_eq!(
            fields(spec(json!({"action": "pin", "categories": ["x"]})).check("a b")),
            ["/id", "/products", "/categories"]
        );
        assert_eq!(fields(spec(json!({"action": "boost", "weight": 0})).check("b")), ["/products", "/weight"]);
        assert_eq!(
            fields(spec(json!({"action": "cap", "per": "brand", "categories": ["x"]})).check("c")),
            ["/categories", "/max"]
        );
        let backwards = json!({"action": "hide", "brands": ["x"], "starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"});
        assert_eq!(fields(spec(backwards).check("d")), ["/ends_at"]);
        assert_eq!(fields(spec(json!({"action": "bury", "brands": [""], "max": 2})).check("e")), ["/brands/0", "/max"]);
    }

    #[test]
    fn matching_caps_and_windows() {
        let p: Payload =
            serde_json::from_value(json!({"id": "p1", "category_keys": ["audio", "sale"], "brand_key": "acme"}))
                .unwrap();
        let rule = |id: &str, v: Value| Rule { id: id.into(), spec: spec(v), updated_at: Utc::now() };
        let now = Utc::now();
        let later = now + chrono::Duration::days(1);
        let rules = vec![
            rule("b", json!({"action": "boost", "categories": ["Audio"]})),
            rule("u", json!({"action": "bury", "brands": ["ACME "]})),
            rule("x", json!({"action": "bury", "products": ["p2"]})),
            rule("soon", json!({"action": "hide", "products": ["p1"], "starts_at": later})),
            rule("cap", json!({"action": "cap", "per": "category", "categories": ["sale"], "max": 1})),
        ];
        let active = Active::of(&rules, now);
        assert_eq!(active.effects(&p).iter().map(|e| e.rule.as_str()).collect::<Vec<_>>(), ["b", "u"]);
        assert!(active.buried(&p));
        assert_eq!(active.hide(Filter::default()), Filter::default(), "not yet in effect");
        assert_eq!(Active::of(&rules, later).hide(Filter::default()).must_not.len(), 1);
        let mut caps = Caps::default();
        assert!(caps.take(&active, &p));
        assert!(!caps.take(&active, &p), "one 'sale' item per list");
        let other: Payload = serde_json::from_value(json!({"id": "p3", "category_keys": ["audio"]})).unwrap();
        assert!(caps.take(&active, &other) && caps.take(&active, &other), "only 'sale' is capped");
    }
}

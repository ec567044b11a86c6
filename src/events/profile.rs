//! Customers and their live profiles, keyed by the pseudonymous key only.
//!
//! The `taste` vector is the time-decayed, kind-weighted mean of the text vectors of the
//! products a customer interacted with: `m' = (f * mass * m + w * v) / (f * mass + w)` where `f`
//! halves every `taste_half_life_days`. Qdrant normalises cosine vectors on write, so the mean's
//! length is kept in the payload (`taste_norm`) beside its total weight (`taste_mass`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Event, Kind};
use crate::config::EventsConfig;
use crate::error::{Error, FieldError, Result};
use crate::privacy::Keyring;
use crate::privacy::pii::Redactor;
use crate::store::{CollectionSpec, DenseSpec, Distance, IndexKind, Point, Store, Vector, point_id};

/// Logical name of the customers collection.
pub const CUSTOMERS: &str = "customers";
/// The taste vector (text space of the embedding model).
pub const TASTE: &str = "taste";
/// Recent history entries kept per customer.
pub const HISTORY: usize = 50;
/// Purchased products kept per customer (for "exclude purchased").
pub const PURCHASED: usize = 500;

/// What a customer agreed to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Consent {
    /// A profile (taste, history) may be kept and used for recommendations.
    pub personalization: bool,
    /// Events may be stored with the customer's key (else they are counted anonymously).
    pub analytics: bool,
}

/// `PUT /v1/customers/{id}` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Consent flags (missing flags keep their current value).
    pub consent: Option<ConsentInput>,
    /// Non-personal attributes (segment, language, ...), replacing the current ones.
    pub attributes: Option<Map<String, Value>>,
}

/// Consent flags as sent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// See [`Consent::personalization`].
    pub personalization: Option<bool>,
    /// See [`Consent::analytics`].
    pub analytics: Option<bool>,
}

/// One entry of a customer's recent history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryItem {
    /// Product id.
    pub product_id: String,
    /// What happened.
    pub kind: Kind,
    /// When (unix seconds).
    pub ts: i64,
}

/// A customer's profile.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// Pseudonymous key.
    #[serde(skip)]
    pub key: String,
    /// Whether it is stored.
    #[serde(skip)]
    pub exists: bool,
    /// Consent.
    pub consent: Consent,
    /// Non-personal attributes.
    pub attributes: Map<String, Value>,
    /// Recent interactions, newest first.
    pub history: Vec<HistoryItem>,
    /// Bought products, newest first.
    pub purchased: Vec<String>,
    /// Mean of the interacted products' text vectors (not normalised).
    #[serde(skip)]
    pub taste: Option<Vec<f32>>,
    /// Total decayed weight behind `taste`.
    pub taste_mass: f64,
    /// Time `taste_mass` refers to (unix seconds).
    pub taste_ts: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Attribute keys that name personal data, refused in customer attributes.
const PERSONAL_KEYS: &[&str] = &[
    "email",
    "e_mail",
    "mail",
    "phone",
    "mobile",
    "telephone",
    "name",
    "first_name",
    "last_name",
    "full_name",
    "surname",
    "address",
    "street",
    "zip",
    "zipcode",
    "postcode",
    "postal_code",
    "birthday",
    "birth_date",
    "birthdate",
    "dob",
    "ssn",
    "passport",
    "card",
    "card_number",
    "iban",
    "ip",
    "ip_address",
];

/// The customer service.
#[derive(Clone)]
pub struct Profiles {
    store: Store,
    keys: Keyring,
    implicit_consent: bool,
    redactor: Redactor,
    /// Held by every read-modify-write of stored profiles in this process (consent and
    /// attribute updates, events applied to history and taste), so neither loses the other's
    /// change.
    writes: Arc<tokio::sync::Mutex<()>>,
}

/// The customers collection's layout for an embedding model of `dim` dimensions.
pub fn collection_spec(dim: usize) -> CollectionSpec {
    CollectionSpec {
        name: CUSTOMERS.into(),
        dense: vec![DenseSpec { name: TASTE.into(), dim, distance: Distance::Cosine }],
        sparse: vec![],
        indexes: vec![("key".into(), IndexKind::Keyword)],
        // Customers are read by key, never searched by taste: no graph to build.
        hnsw: false,
    }
}

fn customer_point(key: &str) -> Uuid {
    point_id(CUSTOMERS, key)
}

impl Profiles {
    /// Open the customer service, creating its collection if needed.
    pub async fn open(
        store: Store,
        keys: Keyring,
        dim: usize,
        implicit_consent: bool,
        redactor: Redactor,
    ) -> Result<Self> {
        store.ensure_collection(&collection_spec(dim)).await?;
        Ok(Self { store, keys, implicit_consent, redactor, writes: Arc::default() })
    }

    /// Rewrite the customers collection from its live points (after erasure).
    pub async fn compact(&self) -> Result<()> {
        self.store.compact(CUSTOMERS).await
    }

    /// Add the `collab` vector of dimension `dim` to the customers collection if missing.
    pub async fn ensure_collab_vector(&self, dim: usize) -> Result<()> {
        let spec = DenseSpec { name: crate::catalog::COLLAB_VECTOR.into(), dim, distance: Distance::Dot };
        self.store.ensure_vector(CUSTOMERS, &spec).await
    }

    /// Set the collaborative factors of the customers among `factors` (by key) that have a
    /// stored profile; returns how many were set.
    pub async fn set_collab_factors(&self, factors: Vec<(String, Vec<f32>)>) -> Result<usize> {
        let stored = self.load_keys(factors.iter().map(|(k, _)| k.clone()).collect()).await?;
        let updates: Vec<(Uuid, Vec<(String, Vector)>)> = factors
            .into_iter()
            .filter(|(key, _)| stored.get(key).is_some_and(|p| p.exists))
            .map(|(key, v)| (customer_point(&key), vec![(crate::catalog::COLLAB_VECTOR.to_string(), Vector::Dense(v))]))
            .collect();
        for chunk in updates.chunks(1000) {
            self.store.update_vectors(CUSTOMERS, chunk.to_vec()).await?;
        }
        Ok(updates.len())
    }

    /// Delete a customer's stored profile (erasure).
    pub async fn delete_key(&self, key: &str) -> Result<()> {
        let _writes = self.writes.lock().await;
        self.store.delete(CUSTOMERS, vec![customer_point(key)]).await
    }

    /// The pseudonymous key of a customer id.
    pub fn key_of(&self, customer_id: &str) -> String {
        self.keys.customer_key(customer_id)
    }

    fn empty(&self, key: String) -> Profile {
        let now = Utc::now();
        let consent = Consent { personalization: self.implicit_consent, analytics: self.implicit_consent };
        Profile {
            key,
            exists: false,
            consent,
            attributes: Map::new(),
            history: vec![],
            purchased: vec![],
            taste: None,
            taste_mass: 0.0,
            taste_ts: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Profiles by key (unknown keys give empty, unstored profiles with the default consent).
    pub async fn load_keys(&self, mut keys: Vec<String>) -> Result<HashMap<String, Profile>> {
        keys.sort();
        keys.dedup();
        let records = self
            .store
            .retrieve(CUSTOMERS, keys.iter().map(|k| customer_point(k)).collect(), vec![TASTE.into()])
            .await?;
        let mut out: HashMap<String, Profile> = keys.iter().map(|k| (k.clone(), self.empty(k.clone()))).collect();
        for r in records {
            let Some(key) = r.payload.get("key").and_then(Value::as_str) else { continue };
            let p: StoredProfile = serde_json::from_value(Value::Object(r.payload.clone()))
                .map_err(|e| Error::Store(format!("stored customer is unreadable: {e}")))?;
            let taste = match r.vectors.get(TASTE) {
                Some(Vector::Dense(unit)) => Some(unit.iter().map(|x| x * p.taste_norm).collect()),
                _ => None,
            };
            out.insert(
                key.to_string(),
                Profile {
                    key: key.to_string(),
                    exists: true,
                    consent: p.consent,
                    attributes: p.attributes,
                    history: p.history,
                    purchased: p.purchased,
                    taste,
                    taste_mass: p.taste_mass,
                    taste_ts: p.taste_ts,
                    created_at: p.created_at,
                    updated_at: p.updated_at,
                },
            );
        }
        Ok(out)
    }

    /// The profile of a customer id (an empty, unstored one if unknown).
    pub async fn get(&self, customer_id: &str) -> Result<Profile> {
        let key = self.key_of(customer_id);
        Ok(self.load_keys(vec![key.clone()]).await?.remove(&key).expect("loaded"))
    }

    /// Consent of a key (the default for unknown customers).
    pub async fn consent_of_key(&self, key: &str) -> Result<Consent> {
        Ok(self.load_keys(vec![key.to_string()]).await?.remove(key).map(|p| p.consent).unwrap_or_default())
    }

    /// Create or update a customer's consent and attributes; returns the profile and whether it
    /// was created. Withdrawing personalization consent clears taste and history at once.
    pub async fn put(&self, customer_id: &str, input: CustomerInput) -> Result<(Profile, bool)> {
        let mut errors = Vec::new();
        if customer_id.trim().is_empty()
            || customer_id.chars().count() > 200
            || customer_id.chars().any(char::is_control)
        {
            errors.push(FieldError::new("/id", "must be 1 to 200 characters without control characters"));
        }
        if let Some(attrs) = &input.attributes {
            errors.extend(check_attributes(attrs));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let _writes = self.writes.lock().await;
        let mut profile = self.get(customer_id).await?;
        let created = !profile.exists;
        if let Some(c) = input.consent {
            if let Some(p) = c.personalization {
                profile.consent.personalization = p;
            }
            if let Some(a) = c.analytics {
                profile.consent.analytics = a;
            }
        }
        if !profile.consent.personalization {
            profile.history.clear();
            profile.purchased.clear();
            profile.taste = None;
            profile.taste_mass = 0.0;
        }
        if let Some(attrs) = input.attributes {
            // Attributes are meant to be non-personal; PII that slips in is redacted anyway.
            let mut attrs = Value::Object(attrs);
            self.redactor.redact_json(&mut attrs);
            if let Value::Object(attrs) = attrs {
                profile.attributes = attrs;
            }
        }
        profile.updated_at = Utc::now();
        crate::fault::stall("profiles.rmw").await;
        self.save(vec![&profile]).await?;
        profile.exists = true;
        Ok((profile, created))
    }

    /// The lock of profile read-modify-writes (see [`Profiles::put`]); a caller that loads,
    /// changes and saves profiles holds it throughout.
    pub fn writes(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.writes
    }

    /// A new, unstored profile for a customer id (the default consent).
    pub fn new_profile(&self, customer_id: &str) -> Profile {
        self.empty(self.key_of(customer_id))
    }

    /// Write profiles as they are (bulk loading: migrations, benchmarks).
    pub async fn save_many(&self, profiles: &[Profile]) -> Result<()> {
        self.save(profiles.iter().collect()).await
    }

    /// Write profiles.
    async fn save(&self, profiles: Vec<&Profile>) -> Result<()> {
        let mut points = Vec::with_capacity(profiles.len());
        for p in profiles {
            let mut vectors = Vec::new();
            let mut norm = 0.0f32;
            if let Some(t) = &p.taste {
                norm = t.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 1e-6 && p.taste_mass > 0.0 {
                    vectors.push((TASTE.to_string(), Vector::Dense(t.clone())));
                }
            }
            let stored = StoredProfile {
                key: p.key.clone(),
                consent: p.consent,
                attributes: p.attributes.clone(),
                history: p.history.clone(),
                purchased: p.purchased.clone(),
                taste_mass: p.taste_mass,
                taste_norm: norm,
                taste_ts: p.taste_ts,
                created_at: p.created_at,
                updated_at: p.updated_at,
            };
            let Value::Object(payload) = serde_json::to_value(stored).map_err(|e| Error::Internal(e.to_string()))?
            else {
                return Err(Error::Internal("profile did not serialize to an object".into()));
            };
            points.push(Point { id: customer_point(&p.key), vectors, payload });
        }
        self.store.upsert(CUSTOMERS, points).await
    }

    /// Apply personal events to their profiles and save the ones they changed. The caller holds
    /// [`Profiles::writes`] from loading `profiles` to this; an event whose profile (as loaded)
    /// no longer has personalization consent is skipped. `vectors` holds the text vectors of
    /// the products involved.
    pub async fn apply(
        &self,
        mut profiles: HashMap<String, Profile>,
        events: &[&Event],
        vectors: &HashMap<String, Vec<f32>>,
        config: &EventsConfig,
        weight: impl Fn(Kind, f64) -> f64,
    ) -> Result<()> {
        let half_life = config.taste_half_life_days * 86_400.0;
        let mut ordered: Vec<&&Event> = events.iter().collect();
        ordered.sort_by_key(|e| e.timestamp);
        let mut touched = std::collections::HashSet::new();
        for e in ordered {
            let Some(key) = &e.customer else { continue };
            // Consent as stored now (read under the lock): withdrawn since the event was
            // accepted means nothing is added.
            let Some(p) = profiles.get_mut(key).filter(|p| p.consent.personalization) else { continue };
            touched.insert(key.clone());
            let ts = e.timestamp.timestamp();
            if e.kind != Kind::Impression {
                p.history.insert(0, HistoryItem { product_id: e.product_id.clone(), kind: e.kind, ts });
                p.history.sort_by_key(|h| std::cmp::Reverse(h.ts));
                p.history.truncate(HISTORY);
            }
            if e.kind == Kind::Purchase {
                p.purchased.retain(|x| x != &e.product_id);
                p.purchased.insert(0, e.product_id.clone());
                p.purchased.truncate(PURCHASED);
            }
            let w = weight(e.kind, e.value);
            if let (Some(v), true) = (vectors.get(&e.product_id), w != 0.0) {
                update_taste(p, v, w, ts, half_life);
            }
            p.updated_at = Utc::now();
        }
        let changed: Vec<&Profile> = profiles.values().filter(|p| touched.contains(&p.key)).collect();
        self.save(changed).await
    }
}

/// Fold one weighted product vector into the decayed mean.
pub fn update_taste(p: &mut Profile, v: &[f32], w: f64, ts: i64, half_life: f64) {
    let (mass, mean) = match &p.taste {
        Some(m) if p.taste_mass > 0.0 => (p.taste_mass, m.clone()),
        _ => (0.0, vec![0.0; v.len()]),
    };
    // Decay the older side to the newer time.
    let (old_factor, new_factor, at) = if ts >= p.taste_ts {
        (0.5f64.powf((ts - p.taste_ts) as f64 / half_life), 1.0, ts)
    } else {
        (1.0, 0.5f64.powf((p.taste_ts - ts) as f64 / half_life), p.taste_ts)
    };
    let old = old_factor * mass;
    let new = new_factor * w;
    let total = old + new;
    if total <= 1e-9 {
        p.taste = None;
        p.taste_mass = 0.0;
        p.taste_ts = at;
        return;
    }
    p.taste = Some(mean.iter().zip(v).map(|(m, x)| ((old * *m as f64 + new * *x as f64) / total) as f32).collect());
    p.taste_mass = total;
    p.taste_ts = at;
}

fn check_attributes(attrs: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if attrs.len() > 50 {
        errors.push(FieldError::new("/attributes", "must have at most 50 keys"));
    }
    for (k, v) in attrs {
        let p = format!("/attributes/{}", k.replace('~', "~0").replace('/', "~1"));
        if k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(FieldError::new(&p, "keys are 1 to 64 characters of a-z, 0-9 and _"));
        } else if PERSONAL_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
            errors.push(FieldError::new(
                &p,
                "customer attributes must not hold personal data; keep it in your own systems",
            ));
        }
        let ok = match v {
            Value::String(s) => s.chars().count() <= 200,
            Value::Number(_) | Value::Bool(_) => true,
            _ => false,
        };
        if !ok {
            errors.push(FieldError::new(&p, "must be a string (<= 200 characters), a number or a boolean"));
        }
    }
    errors
}

/// The stored payload of a customer.
#[derive(Serialize, Deserialize)]
struct StoredProfile {
    key: String,
    consent: Consent,
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default)]
    history: Vec<HistoryItem>,
    #[serde(default)]
    purchased: Vec<String>,
    #[serde(default)]
    taste_mass: f64,
    #[serde(default)]
    taste_norm: f32,
    #[serde(default)]
    taste_ts: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Profile {
    /// The profile as `GET /v1/customers/{id}` shows it (no key, no raw vectors).
    pub fn view(&self, customer_id: &str) -> CustomerView {
        CustomerView {
            id: customer_id.to_string(),
            consent: self.consent,
            attributes: self.attributes.clone(),
            history: self.history.clone(),
            purchased: self.purchased.clone(),
            has_taste: self.taste.is_some(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A customer's profile as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    /// The customer id, as the client sent it (it is stored only as a keyed hash).
    pub id: String,
    /// Consent flags.
    pub consent: Consent,
    /// Attributes the retailer set.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Recent events, oldest first.
    pub history: Vec<HistoryItem>,
    /// Products bought.
    pub purchased: Vec<String>,
    /// Whether a taste vector exists (from the customer's events).
    pub has_taste: bool,
    /// When the profile was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn empty() -> Profile {
        Profile {
            key: "k".into(),
            exists: true,
            consent: Consent::default(),
            attributes: Map::new(),
            history: vec![],
            purchased: vec![],
            taste: None,
            taste_mass: 0.0,
            taste_ts: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn taste_is_the_decayed_weighted_mean() {
        let mut p = empty();
        let day = 86_400.0;
        update_taste(&mut p, &[1.0, 0.0], 1.0, 0, 10.0 * day);
        assert_eq!(p.taste.as_deref(), Some(&[1.0, 0.0][..]));
        // Ten days later (one half-life), an equal-weight event: 0.5 vs 1.
        update_taste(&mut p, &[0.0, 1.0], 1.0, (10.0 * day) as i64, 10.0 * day);
        let t = p.taste.clone().unwrap();
        assert!((t[0] - 1.0 / 3.0).abs() < 1e-6 && (t[1] - 2.0 / 3.0).abs() < 1e-6, "{t:?}");
        assert!((p.taste_mass - 1.5).abs() < 1e-9);
        // A late event older than the profile is decayed itself.
        let mut q = p.clone();
        update_taste(&mut q, &[1.0, 0.0], 1.0, 0, 10.0 * day);
        assert!((q.taste_mass - 2.0).abs() < 1e-9);
        // Negative weight that cancels everything clears the taste.
        update_taste(&mut p, &[0.0, 1.0], -1.5, (10.0 * day) as i64, 10.0 * day);
        assert!(p.taste.is_none());
    }

    #[test]
    fn personal_attribute_keys_are_refused() {
        let mut m = Map::new();
        m.insert("email".into(), json!("x"));
        m.insert("segment".into(), json!("gold"));
        m.insert("bad key".into(), json!(1));
        let e: Vec<String> = check_attributes(&m).into_iter().map(|e| e.pointer).collect();
        assert_eq!(e.len(), 2);
        assert!(e.contains(&"/attributes/email".into()) && e.contains(&"/attributes/bad key".into()));
    }
}

//! Assistant sessions: the conversation a client asks the server to keep (`session_id`), stored
//! PII-redacted in the `sessions` collection under a keyed hash of the session id, with the
//! customer's pseudonymous key when the session belongs to one (so export and erasure find it).
//!
//! Only the storage of sessions. Not what a conversation's state means or how a turn merges
//! into it (see [`super::understand`]), and not when expired sessions are purged (the caller of
//! [`Sessions::purge_expired`] decides).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::understand::{Constraints, ConversationState};
use crate::error::{Error, Result};
use crate::privacy::Keyring;
use crate::store::{CollectionSpec, Condition, Filter, IndexKind, Payload, Point, Store, point_id};

/// The collection.
pub const SESSIONS: &str = "sessions";

/// One stored turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    /// Redacted text.
    pub content: String,
}

/// A stored session.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Session {
    /// Keyed hash of the session id.
    pub key: String,
    /// The customer's pseudonymous key, if the session is theirs.
    #[serde(default)]
    pub customer: Option<String>,
    /// The conversation (redacted).
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// Query and constraints after the last user turn.
    #[serde(default)]
    pub state: ConversationState,
    /// Ids and prices of the products shown last.
    #[serde(default)]
    pub shown: Vec<(String, f64)>,
    /// Last update (Unix seconds).
    #[serde(default)]
    pub ts: i64,
}

impl Session {
    /// The session as its API and a customer's export show it.
    pub fn view(&self) -> SessionView {
        SessionView {
            turns: self.turns.clone(),
            query: self.state.query.clone(),
            constraints: self.state.constraints.clone(),
            shown: self.shown.iter().map(|(id, _)| id.clone()).collect(),
            updated_at: chrono::DateTime::from_timestamp(self.ts, 0),
        }
    }
}

/// A stored conversation as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// The turns, oldest first (redacted as stored).
    pub turns: Vec<Turn>,
    /// The search query the conversation was rewritten into.
    pub query: String,
    /// The hard constraints so far.
    pub constraints: Constraints,
    /// Ids of the products shown, in order.
    pub shown: Vec<String>,
    /// When the session was last written.
    pub updated_at: Option<chrono::DateTime<Utc>>,
}

/// The sessions store.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    keys: Keyring,
}

fn spec() -> CollectionSpec {
    CollectionSpec {
        hnsw: false,
        ..CollectionSpec::payload_only(SESSIONS, &[("customer", IndexKind::Keyword), ("ts", IndexKind::Integer)])
    }
}

impl Sessions {
    /// Open (and create) the sessions collection.
    pub async fn open(store: Store, keys: Keyring) -> Result<Self> {
        store.ensure_collection(&spec()).await?;
        Ok(Self { store, keys })
    }

    /// The stored key of a session id (never the id itself).
    pub fn key_of(&self, session_id: &str) -> String {
        self.keys.session_key(session_id)
    }

    /// A session by id (`None` if unknown).
    pub async fn get(&self, session_id: &str) -> Result<Option<Session>> {
        let key = self.key_of(session_id);
        let record = self.store.retrieve(SESSIONS, vec![point_id(SESSIONS, &key)], vec![]).await?.pop();
        record
            .map(|r| {
                serde_json::from_value(Value::Object(r.payload))
                    .map_err(|e| Error::Store(format!("stored session is unreadable: {e}")))
            })
            .transpose()
    }

    /// Write a session.
    pub async fn put(&self, mut session: Session) -> Result<()> {
        session.ts = Utc::now().timestamp();
        let payload: Payload = match serde_json::to_value(&session) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::Internal("a session did not serialize to an object".into())),
        };
        let point = Point { id: point_id(SESSIONS, &session.key), vectors: vec![], payload };
        self.store.upsert(SESSIONS, vec![point]).await
    }

    /// Delete a session; whether it existed.
    pub async fn delete(&self, session_id: &str) -> Result<bool> {
        let key = self.key_of(session_id);
        let id = point_id(SESSIONS, &key);
        let existed = !self.store.retrieve(SESSIONS, vec![id], vec![]).await?.is_empty();
        if existed {
            self.store.delete(SESSIONS, vec![id]).await?;
        }
        Ok(existed)
    }

    fn of(customer_key: &str) -> Filter {
        Filter::default().must(Condition::Keyword { key: "customer".into(), value: customer_key.into() })
    }

    /// Every session of a customer key.
    pub async fn of_customer(&self, customer_key: &str) -> Result<Vec<Session>> {
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let page = self.store.scroll(SESSIONS, Some(Self::of(customer_key)), offset, 500).await?;
            for r in page.records {
                out.push(
                    serde_json::from_value(Value::Object(r.payload))
                        .map_err(|e| Error::Store(format!("stored session is unreadable: {e}")))?,
                );
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    /// Erase a customer's sessions and rewrite the collection so no byte of them is left.
    pub async fn erase_customer(&self, customer_key: &str) -> Result<usize> {
        let n = self.store.count(SESSIONS, Some(Self::of(customer_key))).await?;
        if n > 0 {
            self.store.delete_by_filter(SESSIONS, Self::of(customer_key)).await?;
        }
        self.store.compact(SESSIONS).await?;
        Ok(n)
    }

    /// Retention: delete sessions idle for more than `max_age_days`, then compact.
    pub async fn purge_expired(&self, max_age_days: f64) -> Result<usize> {
        let cutoff = Utc::now().timestamp() - (max_age_days * 86_400.0) as i64;
        let filter =
            Filter::default().must(Condition::Range { key: "ts".into(), gte: None, lte: Some((cutoff - 1) as f64) });
        let n = self.store.count(SESSIONS, Some(filter.clone())).await?;
        if n > 0 {
            self.store.delete_by_filter(SESSIONS, filter).await?;
            self.store.compact(SESSIONS).await?;
        }
        Ok(n)
    }
}

//! The event types: what a customer did ([`Kind`]), what a client sends ([`EventInput`]), what
//! is stored ([`Event`]), what the sender is told ([`EventOutcome`], [`IngestReport`]), and what
//! training reads back ([`CustomerEvent`]). Plain data; no storage, no validation rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;

/// What a customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Every kind, in the order of the API's documentation.
    pub const ALL: [Kind; 7] =
        [Kind::View, Kind::Click, Kind::Cart, Kind::Purchase, Kind::Rating, Kind::Return, Kind::Impression];

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
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Stored and applied.
    pub accepted: usize,
    /// Seen before.
    pub duplicates: usize,
    /// Refused.
    pub rejected: usize,
    /// Accepted events sent without a `rec_id` that were attributed to the list shown to the
    /// same customer or session just before (`recommend.attribution_minutes`).
    pub attributed: usize,
    /// Per event, in order.
    pub results: Vec<EventOutcome>,
}

/// A stored event with its customer key, as [`Events::for_each_customer_event`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct CustomerEvent<'a> {
    /// The pseudonymous customer key.
    pub customer: &'a str,
    /// The product.
    pub product_id: &'a str,
    /// What happened.
    pub kind: Kind,
    /// The event's value, if stored.
    pub value: Option<f64>,
    /// Unix seconds, if stored.
    pub ts: Option<i64>,
}

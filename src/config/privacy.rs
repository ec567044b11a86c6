//! `[privacy]`: the pseudonym secret, consent default, which PII kinds are redacted, and the
//! retention interval. Not the redaction or erasure themselves (`privacy/`, `app`).

use serde::{Deserialize, Serialize};

/// `[privacy]`: keys, consent, redaction and retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Secret for pseudonymous customer keys; empty: generated into the data directory.
    pub secret: String,
    /// Treat customers without a consent record as consenting to personalization and
    /// analytics (default false: consent is opt-in, given with PUT /v1/customers/{id}).
    pub implicit_consent: bool,
    /// PII kinds redacted before anything is logged, stored or embedded
    /// (`email`, `phone`, `card`, `iban`, `address`); empty turns redaction off.
    pub redact: Vec<PiiKind>,
    /// Seconds between retention runs (events older than `events.max_age_days` are purged).
    pub retention_interval_secs: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            secret: String::new(),
            implicit_consent: false,
            redact: PiiKind::ALL.to_vec(),
            retention_interval_secs: 3600,
        }
    }
}

/// What can be redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// E-mail addresses.
    Email,
    /// Phone numbers (international with `+`, North American, European with a leading 0).
    Phone,
    /// Payment card numbers (13 to 19 digits passing the Luhn check).
    Card,
    /// IBANs (passing the mod-97 check).
    Iban,
    /// Street addresses (house number and street).
    Address,
}

impl PiiKind {
    /// Every kind.
    pub const ALL: [PiiKind; 5] = [PiiKind::Email, PiiKind::Iban, PiiKind::Card, PiiKind::Phone, PiiKind::Address];
}

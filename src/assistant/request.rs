//! The assistant's request ([`AssistantRequest`], [`ChatMessage`]) and its checks: roles,
//! lengths, the last message being the user's, the ids and the client's filters.
//!
//! Only the request's shape. Not what it asks for (see [`super::understand`]) and not the
//! parsing of an HTTP body (the API's extractors).

use serde::{Deserialize, Serialize};

use crate::catalog::ProductFilter;
use crate::error::FieldError;

/// One message of `POST /v1/assistant/chat`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// `POST /v1/assistant/chat` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantRequest {
    /// The shopper, for personalisation (their consent applies).
    pub customer_id: Option<String>,
    /// Keep the conversation under this id: later requests send only their new message.
    pub session_id: Option<String>,
    /// The conversation (or, with a stored session, its new messages); the last is the user's.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    /// The client's own hard filters, on top of what the conversation asks for.
    pub filters: Option<ProductFilter>,
    /// Answer as server-sent events.
    pub stream: Option<bool>,
}

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Most messages per request.
pub const MAX_MESSAGES: usize = 50;
/// Longest session or customer id.
pub const MAX_ID_CHARS: usize = 200;

impl AssistantRequest {
    /// Check the request.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.messages.is_empty() {
            errors.push(FieldError::new("/messages", "must hold at least one message"));
        } else if self.messages.len() > MAX_MESSAGES {
            errors.push(FieldError::new("/messages", format!("must hold at most {MAX_MESSAGES} messages")));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role != "user" && m.role != "assistant" {
                errors.push(FieldError::new(
                    format!("/messages/{i}/role"),
                    format!("'{}' is not user or assistant", m.role),
                ));
            }
            if m.content.trim().is_empty() {
                errors.push(FieldError::new(format!("/messages/{i}/content"), "must not be blank"));
            } else if m.content.chars().count() > MAX_MESSAGE_CHARS {
                errors.push(FieldError::new(
                    format!("/messages/{i}/content"),
                    format!("must be at most {MAX_MESSAGE_CHARS} characters"),
                ));
            }
        }
        if let Some(last) = self.messages.last()
            && last.role != "user"
        {
            errors.push(FieldError::new(
                format!("/messages/{}/role", self.messages.len() - 1),
                "the last message must be the user's",
            ));
        }
        for (name, v) in [("session_id", &self.session_id), ("customer_id", &self.customer_id)] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.chars().count() > MAX_ID_CHARS)
            {
                errors.push(FieldError::new(format!("/{name}"), format!("must be 1 to {MAX_ID_CHARS} characters")));
            }
        }
        if let Some(f) = &self.filters {
            errors.extend(f.check("/filters"));
        }
        errors
    }
}

//! Bulk import of events from CSV, a JSON array or NDJSON (`aisle import events FILE`).
//! Like product import, a bad row never stops the rest; rows are ingested in batches through
//! the same path as `POST /v1/events` (validation, duplicates, profiles, popularity,
//! co-occurrence, attribution).
//!
//! CSV columns: `id, customer_id, session_id, product_id, kind, value, timestamp, rec_id`
//! (`product_id` and `kind` required; `timestamp` in RFC 3339).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EventInput, EventOutcome, IngestReport};
use crate::catalog::import::{CsvSchema, Row, RowError};
use crate::error::{FieldError, Result, from_json_value};

/// Events in CSV.
pub const EVENT_CSV: CsvSchema = CsvSchema {
    fields: &["id", "customer_id", "session_id", "product_id", "kind", "value", "timestamp", "rec_id"],
    required: &["product_id", "kind"],
    prefixed: None,
    row: csv_row,
};

fn csv_row(columns: &[String], record: &csv::StringRecord) -> std::result::Result<Value, Vec<FieldError>> {
    let mut obj = Map::new();
    for (col, cell) in columns.iter().zip(record.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let value = if col == "value" {
            cell.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::String(cell.into()))
        } else {
            Value::String(cell.into())
        };
        obj.insert(col.clone(), value);
    }
    Ok(Value::Object(obj))
}

/// The result of an event import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventImportReport {
    /// Rows read.
    pub rows: usize,
    /// Events stored and applied.
    pub accepted: usize,
    /// Events seen before.
    pub duplicates: usize,
    /// Rows refused.
    pub rejected: usize,
    /// Refused rows with reasons.
    pub errors: Vec<RowError>,
}

/// Ingest rows in batches of `batch_size` through `ingest` (the caller's whole ingestion path,
/// attribution included); `progress` is told how many rows each batch had.
pub async fn import(
    mut ingest: impl AsyncFnMut(Vec<EventInput>) -> Result<IngestReport>,
    rows: Vec<Row>,
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<EventImportReport> {
    let mut report = EventImportReport { rows: rows.len(), ..Default::default() };
    for chunk in rows.chunks(batch_size.max(1)) {
        let mut inputs = Vec::new();
        let mut lines = Vec::new();
        for row in chunk {
            match row {
                Err(e) => report.errors.push(e.clone()),
                Ok((line, value)) => match from_json_value::<EventInput>(value.clone()) {
                    Ok(input) => {
                        inputs.push(input);
                        lines.push(*line);
                    }
                    Err(e) => report.errors.push(RowError { row: *line, id: None, errors: vec![e] }),
                },
            }
        }
        let result = ingest(inputs).await?;
        for (line, outcome) in lines.into_iter().zip(result.results) {
            match outcome {
                EventOutcome::Accepted { .. } => report.accepted += 1,
                EventOutcome::Duplicate { .. } => report.duplicates += 1,
                EventOutcome::Rejected { errors } => report.errors.push(RowError { row: line, id: None, errors }),
            }
        }
        progress(chunk.len());
    }
    report.errors.sort_by_key(|e| e.row);
    report.rejected = report.errors.len();
    Ok(report)
}

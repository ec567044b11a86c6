//! Bulk import of products from CSV, a JSON array or NDJSON.
//!
//! A bad row never stops the rest: every row is parsed and validated on its own, good rows are
//! written in batches (one embedding job and one durable write per batch), and the report lists
//! each rejected row with its line (or array index), its id when known, and field pointers.
//!
//! CSV columns: `id, title, description, brand, categories, tags, price, currency, in_stock,
//! stock_qty, url, image_url, attributes` (a JSON object), and `attr.<name>` for single
//! attributes. `categories` and `tags` are separated by `|`. Empty cells are absent values.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::product::ProductInput;
use super::{Catalog, WriteStatus};
use crate::error::{Error, FieldError, Result, from_json_value};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON array of product objects.
    Json,
    /// One product object per line.
    Ndjson,
}

impl Format {
    /// Guess the format from a file name.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// A row that could not be imported.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based line (CSV: the header is line 1; NDJSON) or 0-based array index (JSON).
    pub row: usize,
    /// The row's product id, when it has one.
    pub id: Option<String>,
    /// What is wrong.
    pub errors: Vec<FieldError>,
}

/// One row of an input file: a JSON object to validate, or why it could not be read.
pub type Row = std::result::Result<(usize, Value), RowError>;

/// The result of an import.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Rows read.
    pub rows: usize,
    /// Rows written.
    pub accepted: usize,
    /// Rows rejected.
    pub rejected: usize,
    /// New products.
    pub created: usize,
    /// Replaced products.
    pub updated: usize,
    /// Products whose text was embedded.
    pub embedded: usize,
    /// Products whose stored vector was reused.
    pub reused: usize,
    /// Rejected rows with reasons.
    pub errors: Vec<RowError>,
}

const CSV_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "brand",
    "categories",
    "tags",
    "price",
    "currency",
    "in_stock",
    "stock_qty",
    "url",
    "image_url",
    "attributes",
];

/// How CSV rows become JSON objects for one kind of record.
pub struct CsvSchema {
    /// Columns, in the words of the error message.
    pub fields: &'static [&'static str],
    /// Columns the header must have.
    pub required: &'static [&'static str],
    /// A prefix of extra columns allowed (`attr.` for product attributes).
    pub prefixed: Option<&'static str>,
    /// Turns one row into an object.
    pub row: fn(&[String], &csv::StringRecord) -> std::result::Result<Value, Vec<FieldError>>,
}

/// Products in CSV (see the module doc).
pub const PRODUCT_CSV: CsvSchema =
    CsvSchema { fields: CSV_FIELDS, required: &["id", "title"], prefixed: Some("attr."), row: csv_row };

/// Read every row of a file. File-level problems (unreadable, not JSON at all, bad CSV header)
/// are errors; row-level problems become `Err` rows.
pub fn read_rows(path: &Path, format: Format, csv: &CsvSchema) -> Result<Vec<Row>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    parse_rows(&bytes, format, csv)
}

/// Parse the rows of an in-memory file (see [`read_rows`]).
pub fn parse_rows(bytes: &[u8], format: Format, csv: &CsvSchema) -> Result<Vec<Row>> {
    match format {
        Format::Json => {
            let values: Vec<Value> = serde_json::from_slice(bytes)
                .map_err(|e| Error::invalid("", format!("the file is not a JSON array of records: {e}")))?;
            Ok(values.into_iter().enumerate().map(|(i, v)| Ok((i, v))).collect())
        }
        Format::Ndjson => Ok(bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(|b| b.is_ascii_whitespace()))
            .map(|(i, line)| {
                serde_json::from_slice::<Value>(line).map(|v| (i + 1, v)).map_err(|e| RowError {
                    row: i + 1,
                    id: None,
                    errors: vec![FieldError::new("", format!("not valid JSON: {e}"))],
                })
            })
            .collect()),
        Format::Csv => parse_csv(bytes, csv),
    }
}

fn parse_csv(bytes: &[u8], schema: &CsvSchema) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = reader.headers().map_err(|e| Error::invalid("", format!("cannot read the CSV header: {e}")))?.clone();
    let mut columns = Vec::new();
    for h in headers.iter() {
        let h = h.trim();
        if schema.fields.contains(&h)
            || schema.prefixed.is_some_and(|p| h.strip_prefix(p).is_some_and(|a| !a.is_empty()))
        {
            columns.push(h.to_string());
        } else {
            let extra = schema.prefixed.map(|p| format!(" and {p}<name>")).unwrap_or_default();
            return Err(Error::invalid(
                "",
                format!("unknown CSV column '{h}'; columns are {}{extra}", schema.fields.join(", ")),
            ));
        }
    }
    for r in schema.required {
        if !columns.iter().any(|c| c == r) {
            return Err(Error::invalid(
                "",
                format!("the CSV header must have the columns {}", schema.required.join(", ")),
            ));
        }
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rows.push(Err(RowError {
                    row: line,
                    id: None,
                    errors: vec![FieldError::new("", format!("bad CSV row: {e}"))],
                }));
                continue;
            }
        };
        rows.push((schema.row)(&columns, &record).map(|v| (line, v)).map_err(|errors| RowError {
            row: line,
            id: record.get(columns.iter().position(|c| c == "id").unwrap_or(0)).map(str::to_string),
            errors,
        }));
    }
    Ok(rows)
}

fn csv_row(columns: &[String], record: &csv::StringRecord) -> std::result::Result<Value, Vec<FieldError>> {
    let mut obj = Map::new();
    let mut attributes = Map::new();
    let mut errors = Vec::new();
    for (col, cell) in columns.iter().zip(record.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let value = match col.as_str() {
            "categories" | "tags" => Value::Array(
                cell.split('|').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.into())).collect(),
            ),
            "price" => cell
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::String(cell.into())),
            "stock_qty" => cell.parse::<i64>().map(Value::from).unwrap_or(Value::String(cell.into())),
            "in_stock" | "hidden" => match cell.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "y" => Value::Bool(true),
                "false" | "0" | "no" | "n" => Value::Bool(false),
                _ => Value::String(cell.into()),
            },
            "attributes" => match serde_json::from_str::<Value>(cell) {
                Ok(Value::Object(m)) => {
                    attributes.extend(m);
                    continue;
                }
                _ => {
                    errors.push(FieldError::new("/attributes", "must be a JSON object"));
                    continue;
                }
            },
            c if c.starts_with("attr.") => {
                attributes.insert(c["attr.".len()..].to_string(), Value::String(cell.into()));
                continue;
            }
            _ => Value::String(cell.into()),
        };
        obj.insert(col.clone(), value);
    }
    if !attributes.is_empty() {
        obj.insert("attributes".into(), Value::Object(attributes));
    }
    if errors.is_empty() { Ok(Value::Object(obj)) } else { Err(errors) }
}

/// Turn one JSON object into a [`ProductInput`], naming the bad field on failure.
pub fn parse_input(value: Value) -> std::result::Result<ProductInput, FieldError> {
    if !value.is_object() {
        return Err(FieldError::new("", "each product must be a JSON object"));
    }
    from_json_value(value)
}

/// Import rows into the catalog in batches of `batch_size`; `progress` is told how many rows
/// are done after each batch.
pub async fn import(
    catalog: &Catalog,
    rows: Vec<Row>,
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<ImportReport> {
    let mut report = ImportReport { rows: rows.len(), ..Default::default() };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut batch = Vec::new();
    let mut done = 0;
    let total = rows.len();
    for (n, row) in rows.into_iter().enumerate() {
        match row {
            Err(e) => report.errors.push(e),
            Ok((line, value)) => {
                let raw_id = value.get("id").and_then(Value::as_str).map(str::to_string);
                let checked = parse_input(value).map_err(|e| vec![e]).and_then(|input| catalog.validate(input, None));
                match checked {
                    Err(errors) => report.errors.push(RowError { row: line, id: raw_id, errors }),
                    Ok(product) => {
                        if let Some(first) = seen.get(&product.id) {
                            report.errors.push(RowError {
                                row: line,
                                id: Some(product.id.clone()),
                                errors: vec![FieldError::new(
                                    "/id",
                                    format!("duplicate of the product at row {first}"),
                                )],
                            });
                        } else {
                            seen.insert(product.id.clone(), line);
                            batch.push(product);
                        }
                    }
                }
            }
        }
        if batch.len() >= batch_size || n + 1 == total {
            let summary = catalog.upsert(std::mem::take(&mut batch)).await?;
            report.embedded += summary.embedded;
            report.reused += summary.reused;
            for (_, status) in summary.statuses {
                report.accepted += 1;
                match status {
                    WriteStatus::Created => report.created += 1,
                    WriteStatus::Updated => report.updated += 1,
                }
            }
            progress(n + 1 - done);
            done = n + 1;
        }
    }
    report.rejected = report.errors.len();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_maps_columns_and_reports_bad_cells_per_row() {
        let csv = "id,title,price,categories,in_stock,attr.color\n\
                   a,Headphones,99.5,Audio|Headphones,yes,black\n\
                   b,Speaker,cheap,,no,\n";
        let rows = parse_rows(csv.as_bytes(), Format::Csv, &PRODUCT_CSV).unwrap();
        assert_eq!(rows.len(), 2);
        let (line, v) = rows[0].as_ref().unwrap();
        assert_eq!(*line, 2);
        assert_eq!(v["price"], serde_json::json!(99.5));
        assert_eq!(v["categories"], serde_json::json!(["Audio", "Headphones"]));
        assert_eq!(v["attributes"]["color"], "black");
        let (_, v) = rows[1].as_ref().unwrap();
        let e = parse_input(v.clone()).unwrap_err();
        assert_eq!(e.pointer, "/price");
    }

    #[test]
    fn unknown_csv_columns_are_refused_with_the_list() {
        let e = parse_rows(b"id,title,colour\n1,x,red\n", Format::Csv, &PRODUCT_CSV).unwrap_err().to_string();
        assert!(e.contains("unknown CSV column 'colour'"), "{e}");
    }

    #[test]
    fn ndjson_bad_lines_do_not_stop_the_rest() {
        let rows = parse_rows(
            b"{\"id\":\"a\",\"title\":\"x\"}\n{not json\n\n{\"id\":\"b\",\"title\":\"y\"}\n",
            Format::Ndjson,
            &PRODUCT_CSV,
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].is_ok() && rows[2].is_ok());
        assert_eq!(rows[1].as_ref().unwrap_err().row, 2);
    }

    #[test]
    fn unknown_fields_and_wrong_types_name_the_field() {
        let e = parse_input(serde_json::json!({"id": "a", "title": "x", "prize": 3})).unwrap_err();
        assert!(e.detail.contains("unknown field `prize`"), "{e:?}");
        assert_eq!(e.pointer, "/prize");
        let e = parse_input(serde_json::json!({"id": "a", "title": "x", "tags": ["a", 3]})).unwrap_err();
        assert_eq!(e.pointer, "/tags/1");
        let e = parse_input(serde_json::json!(["not", "an", "object"])).unwrap_err();
        assert_eq!(e.pointer, "");
    }
}

//! Machine-readable contracts, generated from the Rust types so they cannot drift: JSON Schemas
//! for the topics' envelopes and the HTTP bodies, an OpenAPI document for the endpoint and an
//! AsyncAPI document for the topics, and the catalog of CloudWatch metrics (`metrics.json`). The committed copies live in `contracts/`; a test fails
//! when they differ from what this module generates.
//!
//! The schemas are built in `schemas.rs`; `openapi.rs` and `asyncapi.rs` embed them in their
//! documents.

mod asyncapi;
mod openapi;
mod schemas;

use serde_json::Value;

pub use self::asyncapi::asyncapi;
pub use self::openapi::openapi;
pub use self::schemas::json_schemas;

/// A document as its committed file holds it: pretty JSON and a final newline.
pub fn to_file_text(document: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(document).expect("a JSON value serializes")
    )
}

/// Every committed contract document, by path under `contracts/`.
pub fn documents() -> Vec<(String, Value)> {
    let mut documents: Vec<(String, Value)> = json_schemas()
        .into_iter()
        .map(|(name, schema)| (format!("schemas/{name}"), schema))
        .collect();
    documents.push(("openapi.json".to_owned(), openapi()));
    documents.push(("asyncapi.json".to_owned(), asyncapi()));
    documents.push(("metrics.json".to_owned(), crate::metrics::catalog()));
    documents
}

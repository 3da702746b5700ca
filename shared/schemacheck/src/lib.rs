//! `qgen-schema-check`: the committed contract documents (`contracts/`), and checks of values
//! against their JSON Schemas. A dev-dependency only, with no broker, SDK or runtime in its tree,
//! so the contract crate's tests (and its mutation runs) rebuild in seconds; `qgen-testkit`
//! re-exports it for every other crate.

use serde_json::Value;

/// The committed contract document at `contracts/<path>`.
pub fn contract(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", file.display()))
}

/// Panics, listing every violation, unless `value` matches the committed JSON Schema
/// `contracts/schemas/<schema>`.
pub fn assert_matches_schema(schema: &str, value: &Value) {
    let errors = schema_errors(schema, value);
    assert!(errors.is_empty(), "{value} does not match {schema}: {errors:#?}");
}

/// The violations of `contracts/schemas/<schema>` by `value` (empty when it matches).
pub fn schema_errors(schema: &str, value: &Value) -> Vec<String> {
    let document = contract(&format!("schemas/{schema}"));
    let validator =
        jsonschema::validator_for(&document).unwrap_or_else(|e| panic!("{schema} is not a schema: {e}"));
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

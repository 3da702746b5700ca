//! The JSON Schemas of the events and the HTTP bodies, with the settings each document needs
//! (draft 2020-12 for the files, OpenAPI 3.0 and draft-07 for the embedded copies).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::api::{Accepted, ErrorResponse, HttpRequest};
use crate::events::{REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE, RequestEvent, ResponseEvent};

pub(super) fn schema_with<T: JsonSchema>(settings: SchemaSettings, title: &str) -> Value {
    let mut settings = settings;
    // Self-contained schemas: embedded in OpenAPI and AsyncAPI, a `#/$defs/...` reference
    // would point at the wrong document root.
    settings.inline_subschemas = true;
    let mut schema = settings.into_generator().into_root_schema_for::<T>().to_value();
    schema["title"] = json!(title);
    schema
}

/// A completed response carries questions and no error; a failed one an error and none.
fn with_status_rules(mut schema: Value) -> Value {
    schema["properties"]["eventData"]["oneOf"] = json!([
        {
            "title": "completed",
            "properties": {"status": {"const": "completed"}},
            "not": {"required": ["error"]}
        },
        {
            "title": "failed",
            "properties": {
                "status": {"const": "failed"},
                "questions": {"maxItems": 0},
                "total_questions": {"const": 0}
            },
            "required": ["error"]
        }
    ]);
    schema
}

pub(super) fn request_event(settings: SchemaSettings) -> Value {
    let mut schema = schema_with::<RequestEvent>(settings, "RequestEvent");
    schema["properties"]["eventType"]["const"] = json!(REQUEST_EVENT_TYPE);
    schema
}

pub(super) fn response_event(settings: SchemaSettings) -> Value {
    let mut schema = schema_with::<ResponseEvent>(settings, "ResponseEvent");
    schema["properties"]["eventType"]["const"] = json!(RESPONSE_EVENT_TYPE);
    with_status_rules(schema)
}

/// The JSON Schemas (draft 2020-12), by file name.
pub fn json_schemas() -> Vec<(&'static str, Value)> {
    let s = SchemaSettings::draft2020_12;
    vec![
        ("request-event.schema.json", request_event(s())),
        ("response-event.schema.json", response_event(s())),
        (
            "http-request.schema.json",
            schema_with::<HttpRequest>(s(), "GenerationHttpRequest"),
        ),
        (
            "http-accepted.schema.json",
            schema_with::<Accepted>(s(), "Accepted"),
        ),
        (
            "http-error.schema.json",
            schema_with::<ErrorResponse>(s(), "ErrorResponse"),
        ),
    ]
}

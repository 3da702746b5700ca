//! The response schema sent as structured output (`generationConfig.responseSchema`). It is
//! generated from the Rust [`Question`] type, so the contract with the model and the one with our
//! consumers cannot drift apart; Gemini only reads an OpenAPI subset, hence the translation.
//!
//! `responseJsonSchema` (standard JSON Schema) was weighed and not taken: it would accept `$ref`,
//! `$defs` and `anyOf` and spare the inlining, but its documented keywords leave out `pattern`,
//! `uniqueItems` and `const`, which our schema uses, so a reduction would remain and the
//! validator would still check every rule
//! (<https://ai.google.dev/gemini-api/docs/structured-output>; the field:
//! <https://googleapis.github.io/java-genai/javadoc/google-genai/com.google.genai.types/-generate-content-config/response-json-schema.html>).

use std::sync::OnceLock;

use qgen_contract::events::Question;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// What the model is asked to return: the questions, nothing else.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct QuestionSet {
    /// The generated questions.
    pub questions: Vec<Question>,
}

/// The response schema for Gemini (`generationConfig.responseSchema`), generated from
/// [`QuestionSet`] and reduced to the OpenAPI subset Gemini accepts: references inlined,
/// `const` as a one-value `enum`, unsupported keywords dropped.
pub fn response_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut settings = schemars::generate::SchemaSettings::openapi3();
        settings.inline_subschemas = true;
        let schema = settings.into_generator().into_root_schema_for::<QuestionSet>();
        gemini_schema(schema.to_value())
    })
}

fn gemini_schema(value: Value) -> Value {
    const KEEP: [&str; 10] = [
        "type",
        "description",
        "enum",
        "items",
        "properties",
        "required",
        "minItems",
        "maxItems",
        "nullable",
        "propertyOrdering",
    ];
    match value {
        Value::Object(mut map) => {
            // A documented unit enum arrives as a `oneOf` of one-value string schemas (one per
            // variant, for the docs); Gemini wants a plain string `enum`.
            if let Some(values) = map
                .get("oneOf")
                .or_else(|| map.get("anyOf"))
                .and_then(Value::as_array)
                .and_then(|variants| string_enum_values(variants))
            {
                map.remove("oneOf");
                map.remove("anyOf");
                map.insert("type".into(), json!("string"));
                map.insert("enum".into(), Value::Array(values));
            }
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "const" => {
                        out.insert("enum".into(), json!([value]));
                    }
                    // Property names are data, not keywords: keep them all.
                    "properties" => {
                        let props = value
                            .as_object()
                            .map(|p| {
                                p.iter()
                                    .map(|(k, v)| (k.clone(), gemini_schema(v.clone())))
                                    .collect()
                            })
                            .unwrap_or_default();
                        out.insert(key, Value::Object(props));
                    }
                    k if KEEP.contains(&k) => {
                        out.insert(key, gemini_schema(value));
                    }
                    _ => {}
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(gemini_schema).collect()),
        other => other,
    }
}

/// The values of a `oneOf` whose every branch is a string `const` or `enum`.
fn string_enum_values(variants: &[Value]) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    for variant in variants {
        if variant["type"] != "string" {
            return None;
        }
        match (
            variant.get("const"),
            variant.get("enum").and_then(Value::as_array),
        ) {
            (Some(value), _) => values.push(value.clone()),
            (None, Some(list)) => values.extend(list.iter().cloned()),
            (None, None) => return None,
        }
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_comes_from_the_question_type_in_gemini_dialect() {
        let schema = response_schema();
        let item = &schema["properties"]["questions"]["items"];
        for field in [
            "question",
            "type",
            "options",
            "correct_answer",
            "explanation",
            "difficulty",
        ] {
            assert!(
                item["properties"].get(field).is_some(),
                "missing {field}: {schema}"
            );
        }
        assert_eq!(item["properties"]["type"]["enum"], json!(["multiple_choice"]));
        assert_eq!(item["properties"]["type"]["type"], "string");
        assert_eq!(
            item["properties"]["difficulty"]["enum"],
            json!(["easy", "medium", "hard"])
        );
        let text = schema.to_string();
        for banned in [
            "$ref",
            "$schema",
            "additionalProperties",
            "const",
            "title",
            "oneOf",
        ] {
            assert!(!text.contains(banned), "{banned} in {text}");
        }
    }
}

//! The committed contracts are what the code generates, the sample events match them, and the
//! documented request schema agrees with the validator the API actually runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use qgen_contract::api::ApiErrorCode;
use qgen_contract::contracts::{documents, to_file_text};
use qgen_contract::validation::{Limits, parse_request_body};
use qgen_schema_check::{assert_matches_schema, contract, schema_errors};
use serde_json::{Value, json};

fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

fn events_file(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every `.json` file under `contracts/`, by path relative to it.
fn committed_files() -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, files: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, files);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut files = BTreeSet::new();
    walk(&contracts_dir(), &contracts_dir(), &mut files);
    files
}

#[test]
fn committed_contracts_are_what_the_code_generates() {
    let documents = documents();

    let generated: BTreeSet<String> = documents.iter().map(|(path, _)| path.clone()).collect();
    assert_eq!(
        generated,
        committed_files(),
        "every committed document is generated, and only those"
    );
    let stale: Vec<&String> = documents
        .iter()
        .filter(|(path, document)| {
            std::fs::read_to_string(contracts_dir().join(path)).ok() != Some(to_file_text(document))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        stale.is_empty(),
        "contracts/ is out of date for {stale:?}: run scripts/update-contracts and commit"
    );
}

fn http_body(event: &Value) -> Value {
    let body = event["body"].as_str().unwrap();
    let bytes = if event["isBase64Encoded"] == true {
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    } else {
        body.as_bytes().to_vec()
    };
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn sample_http_requests_match_the_request_schema_exactly_when_the_api_accepts_them() {
    for (name, valid) in [
        ("api-http-v2.json", true),
        ("api-rest-v1.json", true),
        ("api-function-url-base64.json", true),
        ("api-invalid-num-questions.json", false),
        ("api-invalid-missing-topic.json", false),
        ("api-invalid-difficulty.json", false),
    ] {
        let body = http_body(&events_file(name));
        assert_eq!(
            schema_errors("http-request.schema.json", &body).is_empty(),
            valid,
            "{name}"
        );
    }
}

#[test]
fn sample_msk_records_match_the_request_event_schema_unless_they_are_poison_or_invalid() {
    let mut checked = 0;
    for name in ["msk-batch-two-partitions.json", "msk-batch-poison.json"] {
        let event = events_file(name);
        for record in event["records"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|r| r.as_array().unwrap())
        {
            let Some(value) = record["value"].as_str() else {
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD.decode(value).unwrap();
            let Ok(envelope) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            if envelope["eventType"] != "question.generation.request" {
                continue;
            }
            let valid =
                parse_request_body(envelope["eventData"].to_string().as_bytes(), &Limits::default()).is_ok();
            assert_eq!(
                schema_errors("request-event.schema.json", &envelope).is_empty(),
                valid,
                "{name} offset {}",
                record["offset"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn the_request_schema_agrees_with_the_validator() {
    let long = "x".repeat(201);
    let bodies = [
        json!({"topic": "Python Loops", "num_questions": 5}),
        json!({"request_id": "a.b_c:d-1", "topic": "t", "num_questions": 20, "difficulty": "hard"}),
        json!({"request_id": null, "topic": "t", "num_questions": 1, "extra": [1, 2]}),
        json!({"topic": " padded ", "num_questions": 1}),
        json!({"topic": "", "num_questions": 1}),
        json!({"topic": "   ", "num_questions": 1}),
        json!({"topic": "a\u{7}b", "num_questions": 1}),
        json!({"topic": "tab\there", "num_questions": 1}),
        json!({"topic": long, "num_questions": 1}),
        json!({"topic": "t", "num_questions": 0}),
        json!({"topic": "t", "num_questions": 21}),
        json!({"topic": "t", "num_questions": 2.5}),
        json!({"topic": "t", "num_questions": "3"}),
        json!({"topic": "t", "num_questions": 1, "difficulty": "Easy"}),
        json!({"request_id": "has space", "topic": "t", "num_questions": 1}),
        json!({"request_id": "", "topic": "t", "num_questions": 1}),
        json!({"num_questions": 1}),
        json!({"topic": "t"}),
        json!({"topic": "t", "num_questions": 1, "context": "Loops repeat.\n\tfor i in range(3): ..."}),
        json!({"topic": "t", "num_questions": 1, "context": "bell \u{7}"}),
        json!({"topic": "t", "num_questions": 1, "context": "c".repeat(20_001)}),
        json!({"topic": "t", "num_questions": 1, "context": 5}),
        json!([1, 2]),
    ];
    for body in bodies {
        let api_accepts = parse_request_body(body.to_string().as_bytes(), &Limits::default()).is_ok();
        let schema_accepts = schema_errors("http-request.schema.json", &body).is_empty();
        assert_eq!(schema_accepts, api_accepts, "{body}");
    }
}

#[test]
fn the_openapi_document_documents_every_status_the_api_answers() {
    let openapi = contract("openapi.json");
    let responses = &openapi["paths"][qgen_contract::api::ROUTE]["post"]["responses"];
    for status in ["202", "400", "405", "413", "415", "503"] {
        assert!(responses.get(status).is_some(), "{status}");
    }
    assert_eq!(openapi["security"], json!([{"sigv4": []}]));
}

#[test]
fn error_bodies_match_their_schema() {
    let body = serde_json::to_value(qgen_contract::api::ErrorResponse::new(
        ApiErrorCode::InvalidField,
        "topic is required",
        Some("topic"),
    ))
    .unwrap();
    assert_matches_schema("http-error.schema.json", &body);
}

#[test]
fn the_error_schema_and_the_openapi_document_list_every_error_code_the_api_answers_with() {
    let codes: Vec<&str> = ApiErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    let schema = contract("schemas/http-error.schema.json");
    let in_schema: Vec<&str> = schema["properties"]["error"]["properties"]["code"]["oneOf"]
        .as_array()
        .expect("code is a oneOf of its values")
        .iter()
        .filter_map(|choice| choice["const"].as_str())
        .collect();
    assert_eq!(in_schema, codes);
    let openapi = contract("openapi.json");
    let in_openapi: Vec<&str> =
        openapi["components"]["schemas"]["ErrorResponse"]["properties"]["error"]["properties"]["code"]["oneOf"]
            .as_array()
            .expect("code is a oneOf of its values")
            .iter()
            .filter_map(|choice| choice["enum"][0].as_str())
            .collect();
    assert_eq!(in_openapi, codes);
}

/// A completed response carrying `questions`, for the response-event schema.
fn completed_with(questions: Value) -> Value {
    json!({
        "eventId": "evt_qgen_response_1",
        "eventType": "question.generation.response",
        "timestamp": "2026-12-02T10:00:00.000Z",
        "userId": "ai-service",
        "eventData": {
            "request_id": "req-1",
            "status": "completed",
            "questions": questions,
            "total_questions": 1
        }
    })
}

#[test]
fn the_question_schema_agrees_with_the_validator_on_every_field_rule() {
    use qgen_contract::events::{Difficulty, GenerationRequest, Question};
    use qgen_contract::validation::validate_questions;

    let request = GenerationRequest {
        request_id: "req-1".into(),
        topic: "Python Loops".into(),
        num_questions: 1,
        difficulty: Difficulty::Medium,
        context: None,
    };
    let good = json!({
        "question": "What does this print?\nfor i in range(2):\n    print(i)",
        "type": "multiple_choice",
        "options": ["0 then 1", "1 then 2", "0, 1 then 2"],
        "correct_answer": "0 then 1",
        "explanation": "range(2) yields 0 and 1.",
        "difficulty": "medium"
    });
    let with = |field: &str, value: Value| {
        let mut q = good.clone();
        q[field] = value;
        q
    };
    // The rules a JSON Schema can state: the schema and the validator agree on each.
    let cases = [
        good.clone(),
        with("question", json!(" padded?")),
        with("question", json!("")),
        with("question", json!("tab\tinside?")),
        with("explanation", json!("   ")),
        with("explanation", json!("bell \u{7}")),
        with("options", json!(["0 then 1"])),
        with("options", json!(["a", "b", "c", "d", "e", "f", "0 then 1"])),
        with("options", json!(["0 then 1", "0 then 1", "x"])),
        with("options", json!(["0 then 1", "two\nlines", "x"])),
        with("options", json!(["0 then 1", "", "x"])),
        with("correct_answer", json!(" 0 then 1")),
    ];
    let mut accepted = 0;
    for question in cases {
        let parsed: Question = serde_json::from_value(question.clone()).unwrap();
        let validator_accepts = validate_questions(&[parsed], &request).is_ok();
        accepted += usize::from(validator_accepts);
        let schema_accepts = schema_errors(
            "response-event.schema.json",
            &completed_with(json!([question.clone()])),
        )
        .is_empty();
        assert_eq!(schema_accepts, validator_accepts, "{question}");
    }
    assert_eq!(accepted, 1, "only the good question passes");
    // The rules it cannot (Markdown, tells, one option "all of the above"): the validator is
    // the stricter, never the other way round.
    let markdown = with("question", json!("Is `x` set?"));
    assert!(
        schema_errors(
            "response-event.schema.json",
            &completed_with(json!([markdown.clone()]))
        )
        .is_empty()
    );
    let parsed: Question = serde_json::from_value(markdown).unwrap();
    assert!(validate_questions(&[parsed], &request).is_err());
}

//! The malformed HTTP requests the API must refuse, each with the status, code and field its
//! JSON error must name.

use qgen_contract::api::ApiErrorCode;
use serde_json::{Value, json};

pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) method: &'static str,
    pub(super) content_type: Option<&'static str>,
    pub(super) body: Vec<u8>,
    pub(super) status: u16,
    pub(super) code: ApiErrorCode,
    pub(super) field: Option<&'static str>,
}

/// A JSON body with one field wrong: 400 `invalid_field` naming it.
pub(super) fn json_case(name: &'static str, body: Value, field: &'static str) -> Case {
    raw_case(
        name,
        body.to_string().into_bytes(),
        400,
        ApiErrorCode::InvalidField,
        Some(field),
    )
}

/// A JSON body without a required field (absent or null): 400 `missing_field` naming it.
pub(super) fn missing_case(name: &'static str, body: Value, field: &'static str) -> Case {
    raw_case(
        name,
        body.to_string().into_bytes(),
        400,
        ApiErrorCode::MissingField,
        Some(field),
    )
}

pub(super) fn raw_case(
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: ApiErrorCode,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method: "POST",
        content_type: Some("application/json"),
        body,
        status,
        code,
        field,
    }
}

pub(super) fn corpus() -> Vec<Case> {
    let ok = |extra: Value| {
        let mut body = json!({"topic": "Python Loops", "num_questions": 3});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let mut cases = vec![
        missing_case("empty object", json!({}), "topic"),
        missing_case("no num_questions", json!({"topic": "x"}), "num_questions"),
        json_case("zero questions", ok(json!({"num_questions": 0})), "num_questions"),
        json_case(
            "negative questions",
            ok(json!({"num_questions": -1})),
            "num_questions",
        ),
        json_case(
            "too many questions",
            ok(json!({"num_questions": 21})),
            "num_questions",
        ),
        json_case(
            "fractional questions",
            ok(json!({"num_questions": 2.5})),
            "num_questions",
        ),
        json_case(
            "questions as text",
            ok(json!({"num_questions": "3"})),
            "num_questions",
        ),
        json_case(
            "questions as bool",
            ok(json!({"num_questions": true})),
            "num_questions",
        ),
        missing_case(
            "questions null",
            ok(json!({"num_questions": null})),
            "num_questions",
        ),
        json_case(
            "questions array",
            ok(json!({"num_questions": [3]})),
            "num_questions",
        ),
        json_case(
            "questions object",
            ok(json!({"num_questions": {"n": 3}})),
            "num_questions",
        ),
        json_case(
            "huge questions",
            ok(json!({"num_questions": 1e300})),
            "num_questions",
        ),
        json_case("topic number", ok(json!({"topic": 7})), "topic"),
        json_case("topic empty", ok(json!({"topic": ""})), "topic"),
        json_case("topic blank", ok(json!({"topic": "   "})), "topic"),
        json_case("topic NUL", ok(json!({"topic": "a\u{0}b"})), "topic"),
        json_case("topic newline", ok(json!({"topic": "a\nb"})), "topic"),
        json_case("topic escape char", ok(json!({"topic": "a\u{1b}[31m"})), "topic"),
        json_case("topic too long", ok(json!({"topic": "t".repeat(201)})), "topic"),
        missing_case("topic null", ok(json!({"topic": null})), "topic"),
        json_case("topic array", ok(json!({"topic": ["x"]})), "topic"),
        json_case(
            "difficulty capitalised",
            ok(json!({"difficulty": "Easy"})),
            "difficulty",
        ),
        json_case(
            "difficulty unknown",
            ok(json!({"difficulty": "extreme"})),
            "difficulty",
        ),
        json_case("difficulty number", ok(json!({"difficulty": 1})), "difficulty"),
        json_case("difficulty empty", ok(json!({"difficulty": ""})), "difficulty"),
        json_case("request_id empty", ok(json!({"request_id": ""})), "request_id"),
        json_case("request_id space", ok(json!({"request_id": "a b"})), "request_id"),
        json_case(
            "request_id too long",
            ok(json!({"request_id": "r".repeat(129)})),
            "request_id",
        ),
        json_case("request_id number", ok(json!({"request_id": 5})), "request_id"),
        json_case(
            "request_id unicode",
            ok(json!({"request_id": "ü-1"})),
            "request_id",
        ),
        json_case("request_id slash", ok(json!({"request_id": "a/b"})), "request_id"),
        json_case("context number", ok(json!({"context": 5})), "context"),
        json_case(
            "context control char",
            ok(json!({"context": "a\u{7}"})),
            "context",
        ),
        raw_case(
            "empty body",
            Vec::new(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "truncated JSON",
            b"{\"topic\": \"x\"".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "array body",
            b"[1, 2]".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "string body",
            b"\"topic\"".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "null body",
            b"null".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "number body",
            b"123".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "trailing comma",
            b"{\"topic\": \"x\", \"num_questions\": 1,}".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "invalid UTF-8",
            b"{\"topic\": \"\xff\xfe\", \"num_questions\": 1}".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "deep nesting",
            format!(
                "{{\"topic\": {}{}, \"num_questions\": 1}}",
                "[".repeat(5000),
                "]".repeat(5000)
            )
            .into_bytes(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "duplicate key",
            b"{\"topic\": \"x\", \"topic\": \"y\", \"num_questions\": 1}".to_vec(),
            400,
            ApiErrorCode::InvalidField,
            Some("topic"),
        ),
        raw_case(
            "body over 64 KiB",
            json!({"topic": "x", "num_questions": 1, "pad": "p".repeat(70_000)})
                .to_string()
                .into_bytes(),
            413,
            ApiErrorCode::PayloadTooLarge,
            Some("body"),
        ),
        raw_case(
            "body over 1 MiB",
            vec![b' '; 2 * 1024 * 1024],
            413,
            ApiErrorCode::PayloadTooLarge,
            Some("body"),
        ),
    ];
    let valid = ok(json!({})).to_string().into_bytes();
    for (name, content_type) in [
        ("text/plain", Some("text/plain")),
        ("xml", Some("application/xml")),
        ("form", Some("application/x-www-form-urlencoded")),
        ("multipart", Some("multipart/form-data; boundary=x")),
        ("no content type", None),
    ] {
        cases.push(Case {
            name,
            method: "POST",
            content_type,
            body: valid.clone(),
            status: 415,
            code: ApiErrorCode::UnsupportedMediaType,
            field: Some("content-type"),
        });
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        cases.push(Case {
            name: method,
            method,
            content_type: Some("application/json"),
            body: valid.clone(),
            status: 405,
            code: ApiErrorCode::MethodNotAllowed,
            field: None,
        });
    }
    cases
}

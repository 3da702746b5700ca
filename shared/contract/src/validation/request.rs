//! The request rules: limits, the fields as they arrive, and [`parse_request_body`] and
//! [`validate`], which apply every rule and name the field at fault.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::rejection::{RejectionCode, ValidationError};
use crate::events::{Difficulty, GenerationRequest};

/// Largest accepted HTTP body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `request_id`.
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// Longest `topic`, after trimming.
pub const MAX_TOPIC_CHARS: usize = 200;
/// Longest `context` (grounding text), after trimming.
pub const MAX_CONTEXT_CHARS: usize = 20_000;
/// Default upper bound of `num_questions`.
pub const DEFAULT_MAX_QUESTIONS: u32 = 20;

/// Limits that configuration may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Upper bound of `num_questions` (inclusive).
    pub max_questions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_questions: DEFAULT_MAX_QUESTIONS,
        }
    }
}

/// The request fields as they arrive, before any rule is applied. Each is kept as raw JSON so
/// that a wrong type is reported against its field rather than as a generic parse error.
/// Only a JSON object is accepted; unknown fields are skipped without being built, and a known
/// field given twice is an error (a map would silently keep the last one).
#[derive(Debug, Default)]
pub struct RawRequest {
    request_id: Option<Value>,
    topic: Option<Value>,
    num_questions: Option<Value>,
    difficulty: Option<Value>,
    context: Option<Value>,
}

impl<'de> Deserialize<'de> for RawRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;

        impl<'de> Visitor<'de> for Fields {
            type Value = RawRequest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRequest, A::Error> {
                let mut raw = RawRequest::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "request_id" => &mut raw.request_id,
                        "topic" => &mut raw.topic,
                        "num_questions" => &mut raw.num_questions,
                        "difficulty" => &mut raw.difficulty,
                        "context" => &mut raw.context,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(raw)
            }
        }

        deserializer.deserialize_map(Fields)
    }
}

impl RawRequest {
    /// The `request_id` if it is present and valid (the generator needs it to address a reply
    /// even when another field is wrong).
    pub fn valid_request_id(&self) -> Option<&str> {
        match &self.request_id {
            Some(Value::String(id)) if check_request_id(id).is_ok() => Some(id),
            _ => None,
        }
    }
}

/// Parses and validates an HTTP body. A missing `request_id` is filled with a new UUID.
pub fn parse_request_body(body: &[u8], limits: &Limits) -> Result<GenerationRequest, ValidationError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ValidationError::invalid(
            "body",
            format!("body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let raw: RawRequest = serde_json::from_slice(body).map_err(body_error)?;
    validate(raw, limits)
}

/// Applies every rule to a parsed request, in field order, and reports the first broken one.
pub fn validate(raw: RawRequest, limits: &Limits) -> Result<GenerationRequest, ValidationError> {
    let request_id = match raw.request_id {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(id)) => {
            check_request_id(&id)?;
            id
        }
        Some(_) => {
            return Err(ValidationError::invalid(
                "request_id",
                "request_id must be a string",
            ));
        }
    };

    let topic = match raw.topic {
        None | Some(Value::Null) => return Err(ValidationError::missing("topic")),
        Some(Value::String(topic)) => check_topic(&topic)?,
        Some(_) => return Err(ValidationError::invalid("topic", "topic must be a string")),
    };

    let num_questions = match raw.num_questions {
        None | Some(Value::Null) => return Err(ValidationError::missing("num_questions")),
        Some(Value::Number(n)) => check_num_questions(&n, limits)?,
        Some(_) => {
            return Err(ValidationError::invalid(
                "num_questions",
                "num_questions must be an integer",
            ));
        }
    };

    let difficulty = match raw.difficulty {
        None | Some(Value::Null) => Difficulty::default(),
        Some(Value::String(d)) => Difficulty::parse(&d).ok_or_else(|| {
            ValidationError::invalid("difficulty", "difficulty must be one of easy, medium, hard")
        })?,
        Some(_) => {
            return Err(ValidationError::invalid(
                "difficulty",
                "difficulty must be one of easy, medium, hard",
            ));
        }
    };

    let context = match raw.context {
        None | Some(Value::Null) => None,
        Some(Value::String(context)) => check_context(&context)?,
        Some(_) => return Err(ValidationError::invalid("context", "context must be a string")),
    };

    Ok(GenerationRequest {
        request_id,
        topic,
        num_questions,
        difficulty,
        context,
    })
}

fn body_error(error: serde_json::Error) -> ValidationError {
    let message = error.to_string();
    // serde names the field in its own words: "duplicate field `topic` at line 1 column 9".
    if let Some(field) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ValidationError::invalid(field, format!("{field} appears more than once"));
    }
    if error.is_data() {
        return ValidationError::new(RejectionCode::InvalidJson, "body", "body must be a JSON object");
    }
    ValidationError::new(
        RejectionCode::InvalidJson,
        "body",
        format!("body is not valid JSON: {message}"),
    )
}

fn check_request_id(id: &str) -> Result<(), ValidationError> {
    let valid_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if id.is_empty() || id.len() > MAX_REQUEST_ID_CHARS || !valid_chars {
        return Err(ValidationError::invalid(
            "request_id",
            format!("request_id must be 1-{MAX_REQUEST_ID_CHARS} characters of A-Z a-z 0-9 . _ : -"),
        ));
    }
    Ok(())
}

fn check_topic(topic: &str) -> Result<String, ValidationError> {
    let topic = topic.trim();
    if topic.is_empty() {
        return Err(ValidationError::invalid("topic", "topic must not be empty"));
    }
    if topic.chars().count() > MAX_TOPIC_CHARS {
        return Err(ValidationError::invalid(
            "topic",
            format!("topic must be at most {MAX_TOPIC_CHARS} characters"),
        ));
    }
    if topic.chars().any(char::is_control) {
        return Err(ValidationError::invalid(
            "topic",
            "topic must not contain control characters",
        ));
    }
    Ok(topic.to_owned())
}

/// Grounding text: multi-line, so newlines and tabs are fine; blank means none.
fn check_context(context: &str) -> Result<Option<String>, ValidationError> {
    let context = context.trim();
    if context.is_empty() {
        return Ok(None);
    }
    if context.chars().count() > MAX_CONTEXT_CHARS {
        return Err(ValidationError::invalid(
            "context",
            format!("context must be at most {MAX_CONTEXT_CHARS} characters"),
        ));
    }
    if context
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ValidationError::invalid(
            "context",
            "context must not contain control characters other than newlines and tabs",
        ));
    }
    Ok(Some(context.to_owned()))
}

fn check_num_questions(n: &serde_json::Number, limits: &Limits) -> Result<u32, ValidationError> {
    let range = format!(
        "num_questions must be an integer from 1 to {}",
        limits.max_questions
    );
    let Some(n) = n.as_u64() else {
        // Negative, or not an integer (3.5, and also 3.0: JSON integers have no fraction).
        return Err(ValidationError::invalid("num_questions", range));
    };
    match u32::try_from(n) {
        Ok(n) if (1..=limits.max_questions).contains(&n) => Ok(n),
        _ => Err(ValidationError::invalid("num_questions", range)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<GenerationRequest, ValidationError> {
        parse_request_body(body.as_bytes(), &Limits::default())
    }

    fn field_of(body: &str) -> String {
        parse(body).expect_err("should be rejected").field
    }

    #[test]
    fn accepts_the_readme_example() {
        let r = parse(
            r#"{"request_id":"test-123","topic":"Python Basics","num_questions":3,"difficulty":"easy"}"#,
        )
        .unwrap();
        assert_eq!(r.request_id, "test-123");
        assert_eq!(r.topic, "Python Basics");
        assert_eq!(r.num_questions, 3);
        assert_eq!(r.difficulty, Difficulty::Easy);
    }

    #[test]
    fn fills_request_id_and_difficulty_when_absent_and_trims_topic() {
        let r = parse(r#"{"topic":"  Loops  ","num_questions":1}"#).unwrap();
        assert!(uuid::Uuid::parse_str(&r.request_id).is_ok());
        assert_eq!(r.topic, "Loops");
        assert_eq!(r.difficulty, Difficulty::Medium);
    }

    #[test]
    fn ignores_unknown_fields() {
        assert!(parse(r#"{"topic":"x","num_questions":1,"extra":{"a":[1]}}"#).is_ok());
    }

    #[test]
    fn names_the_field_at_fault() {
        let cases = [
            (r#"{"num_questions":1}"#, "topic"),
            (r#"{"topic":"   ","num_questions":1}"#, "topic"),
            (r#"{"topic":"a\u0007b","num_questions":1}"#, "topic"),
            (r#"{"topic":7,"num_questions":1}"#, "topic"),
            (r#"{"topic":"x"}"#, "num_questions"),
            (r#"{"topic":"x","num_questions":0}"#, "num_questions"),
            (r#"{"topic":"x","num_questions":21}"#, "num_questions"),
            (r#"{"topic":"x","num_questions":-1}"#, "num_questions"),
            (r#"{"topic":"x","num_questions":2.5}"#, "num_questions"),
            (r#"{"topic":"x","num_questions":"3"}"#, "num_questions"),
            (r#"{"topic":"x","num_questions":99999999999}"#, "num_questions"),
            (
                r#"{"topic":"x","num_questions":1,"difficulty":"Easy"}"#,
                "difficulty",
            ),
            (r#"{"topic":"x","num_questions":1,"difficulty":1}"#, "difficulty"),
            (r#"{"topic":"x","num_questions":1,"context":["a"]}"#, "context"),
            (
                r#"{"topic":"x","num_questions":1,"context":"a\u0000b"}"#,
                "context",
            ),
            (r#"{"request_id":"","topic":"x","num_questions":1}"#, "request_id"),
            (
                r#"{"request_id":"a b","topic":"x","num_questions":1}"#,
                "request_id",
            ),
            (r#"{"request_id":5,"topic":"x","num_questions":1}"#, "request_id"),
            (r#"{"topic":"x","topic":"y","num_questions":1}"#, "topic"),
            ("[1,2]", "body"),
            ("\"text\"", "body"),
            ("{", "body"),
            ("", "body"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body), field, "body: {body}");
        }
    }

    #[test]
    fn topic_and_request_id_limits_are_inclusive() {
        let ok_topic = "t".repeat(MAX_TOPIC_CHARS);
        let long_topic = "t".repeat(MAX_TOPIC_CHARS + 1);
        assert!(parse(&format!(r#"{{"topic":"{ok_topic}","num_questions":1}}"#)).is_ok());
        assert_eq!(
            field_of(&format!(r#"{{"topic":"{long_topic}","num_questions":1}}"#)),
            "topic"
        );
        let ok_id = "a".repeat(MAX_REQUEST_ID_CHARS);
        let long_id = "a".repeat(MAX_REQUEST_ID_CHARS + 1);
        assert!(
            parse(&format!(
                r#"{{"request_id":"{ok_id}","topic":"x","num_questions":1}}"#
            ))
            .is_ok()
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"request_id":"{long_id}","topic":"x","num_questions":1}}"#
            )),
            "request_id"
        );
    }

    #[test]
    fn context_is_optional_multi_line_and_limited() {
        let none = parse(r#"{"topic":"x","num_questions":1}"#).unwrap();
        let blank = parse(r#"{"topic":"x","num_questions":1,"context":"  "}"#).unwrap();
        let text = parse(r#"{"topic":"x","num_questions":1,"context":" Line one.\n\tLine two. "}"#).unwrap();
        let longest = "c".repeat(MAX_CONTEXT_CHARS);
        let too_long = "c".repeat(MAX_CONTEXT_CHARS + 1);

        assert_eq!((none.context, blank.context), (None, None));
        assert_eq!(text.context.as_deref(), Some("Line one.\n\tLine two."));
        assert!(
            parse(&format!(
                r#"{{"topic":"x","num_questions":1,"context":"{longest}"}}"#
            ))
            .is_ok()
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"topic":"x","num_questions":1,"context":"{too_long}"}}"#
            )),
            "context"
        );
    }

    #[test]
    fn max_questions_is_configurable() {
        let limits = Limits { max_questions: 5 };
        let err = parse_request_body(br#"{"topic":"x","num_questions":6}"#, &limits).unwrap_err();
        assert_eq!(err.field, "num_questions");
        assert!(err.message.contains("1 to 5"), "{}", err.message);
    }

    #[test]
    fn rejects_a_body_over_the_limit() {
        let body = format!(
            r#"{{"topic":"x","num_questions":1,"pad":"{}"}}"#,
            "p".repeat(MAX_BODY_BYTES)
        );
        assert_eq!(field_of(&body), "body");
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        // In a known field it is rejected (serde_json's recursion limit)...
        assert_eq!(
            field_of(&format!(r#"{{"topic":{deep},"num_questions":1}}"#)),
            "body"
        );
        // ...and in an unknown one it is skipped without being built.
        assert!(parse(&format!(r#"{{"topic":"x","num_questions":1,"deep":{deep}}}"#)).is_ok());
    }

    #[test]
    fn a_body_of_exactly_the_size_limit_is_read() {
        let mut body = br#"{"topic":"Loops","num_questions":1}"#.to_vec();
        body.resize(MAX_BODY_BYTES, b' ');

        assert!(parse_request_body(&body, &Limits::default()).is_ok());
        body.push(b' ');
        assert_eq!(
            parse_request_body(&body, &Limits::default()).unwrap_err().field,
            "body"
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_says_an_object_was_expected() {
        let error = parse("[1, 2]").unwrap_err();
        assert!(error.message.contains("a JSON object"), "{}", error.message);
    }

    #[test]
    fn only_a_well_formed_request_id_addresses_a_reply() {
        let raw = |id: serde_json::Value| RawRequest {
            request_id: Some(id),
            ..RawRequest::default()
        };
        assert_eq!(raw("req-1".into()).valid_request_id(), Some("req-1"));
        assert_eq!(raw("bad id!".into()).valid_request_id(), None);
        assert_eq!(raw(7.into()).valid_request_id(), None);
    }
}

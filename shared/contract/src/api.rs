//! The HTTP contract of `POST /llm/questions/generate-for-content-service`: the request body as
//! documented, and the bodies the API answers with.
//!
//! The API validates bodies with [`crate::validation`] (which names the field at fault); the
//! [`HttpRequest`] type here is the documented shape, and a contract test keeps the schema
//! generated from it in agreement with that validator.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::{CONTEXT_PATTERN, Difficulty, REQUEST_ID_PATTERN, TOPIC_PATTERN};
use crate::validation::RejectionCode;

/// The endpoint's path.
pub const ROUTE: &str = "/llm/questions/generate-for-content-service";

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "GenerationHttpRequest")]
pub struct HttpRequest {
    /// Your id for the request; generated (a UUID) when absent, and returned in the 202.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(REQUEST_ID_PATTERN))]
    pub request_id: Option<String>,
    /// What the questions are about: 1–200 characters, not all blank, no control characters.
    #[schemars(length(min = 1, max = 200), pattern(TOPIC_PATTERN))]
    pub topic: String,
    /// How many questions: 1 to 20 (the deployment's `MAX_QUESTIONS_PER_REQUEST`).
    #[schemars(range(min = 1, max = 20))]
    pub num_questions: u32,
    /// `easy`, `medium` (the default) or `hard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<Difficulty>,
    /// Optional grounding text (course material) the questions must be based on: at most
    /// 20,000 characters; newlines and tabs allowed, other control characters not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20_000), pattern(CONTEXT_PATTERN))]
    pub context: Option<String>,
}

/// The `Retry-After` of a 503, in seconds: a 503 means the broker did not acknowledge within
/// the message timeout (5 s); a broker restart or a leader election takes seconds, and the
/// clients reconnect at least once a second, so a caller that waits this long usually gets its
/// 202 on the next try without piling on while the broker recovers.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// `status` of a 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AcceptedStatus {
    /// Stored on the request topic.
    Accepted,
}

/// The 202 body: the request is stored in Kafka and will be answered on `question.response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Accepted")]
pub struct Accepted {
    /// Always `accepted`.
    pub status: AcceptedStatus,
    /// The request's id (yours, or the generated one).
    pub request_id: String,
    /// The `eventId` of the request event; the response's `eventId` is derived from it.
    pub event_id: String,
}

/// The body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "ErrorResponse")]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The stable `code` of an error answer, listed in the OpenAPI document. Callers branch on
/// these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// 400: the body is not JSON, or not a JSON object.
    InvalidJson,
    /// 400: a required field is absent.
    MissingField,
    /// 400: a field breaks its rule (`field` names it).
    InvalidField,
    /// 405: only POST is allowed.
    MethodNotAllowed,
    /// 404: no such route.
    NotFound,
    /// 413: the body is over the size limit.
    PayloadTooLarge,
    /// 415: the content type is not `application/json`.
    UnsupportedMediaType,
    /// 503: the request could not be stored; retry later.
    Unavailable,
}

impl ApiErrorCode {
    /// Every code, in the order of the OpenAPI document.
    pub const ALL: [ApiErrorCode; 8] = [
        ApiErrorCode::InvalidJson,
        ApiErrorCode::MissingField,
        ApiErrorCode::InvalidField,
        ApiErrorCode::MethodNotAllowed,
        ApiErrorCode::NotFound,
        ApiErrorCode::PayloadTooLarge,
        ApiErrorCode::UnsupportedMediaType,
        ApiErrorCode::Unavailable,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiErrorCode::InvalidJson => "invalid_json",
            ApiErrorCode::MissingField => "missing_field",
            ApiErrorCode::InvalidField => "invalid_field",
            ApiErrorCode::MethodNotAllowed => "method_not_allowed",
            ApiErrorCode::NotFound => "not_found",
            ApiErrorCode::PayloadTooLarge => "payload_too_large",
            ApiErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ApiErrorCode::Unavailable => "unavailable",
        }
    }
}

impl From<RejectionCode> for ApiErrorCode {
    fn from(code: RejectionCode) -> Self {
        match code {
            RejectionCode::InvalidJson => ApiErrorCode::InvalidJson,
            RejectionCode::MissingField => ApiErrorCode::MissingField,
            RejectionCode::InvalidField => ApiErrorCode::InvalidField,
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ApiErrorCode,
    /// For a person.
    pub message: String,
    /// The field at fault (`body` for the document itself, `content-type` for the header),
    /// when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorResponse {
    /// An error body.
    pub fn new(code: ApiErrorCode, message: &str, field: Option<&str>) -> Self {
        ErrorResponse {
            error: ErrorDetail {
                code,
                message: message.to_owned(),
                field: field.map(str::to_owned),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_stable_names() {
        for code in ApiErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_eq!(
                serde_json::from_value::<ApiErrorCode>(code.as_str().into()).unwrap(),
                code
            );
        }
        for rejection in [
            RejectionCode::InvalidJson,
            RejectionCode::MissingField,
            RejectionCode::InvalidField,
        ] {
            assert_eq!(ApiErrorCode::from(rejection).as_str(), rejection.as_str());
        }
    }
}

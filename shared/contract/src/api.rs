//! The HTTP contract of `POST /llm/questions/generate-for-content-service`: the request body as
//! documented, and the bodies the API answers with.
//!
//! The API validates bodies with [`crate::validation`] (which names the field at fault); the
//! [`HttpRequest`] type here is the documented shape, and a contract test keeps the schema
//! generated from it in agreement with that validator.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::{CONTEXT_PATTERN, Difficulty, REQUEST_ID_PATTERN, TOPIC_PATTERN};

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

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable code: `invalid_json`, `missing_field`, `invalid_field`, `method_not_allowed`,
    /// `not_found`, `payload_too_large`, `unsupported_media_type` or `unavailable`.
    pub code: String,
    /// For a person.
    pub message: String,
    /// The field at fault (`body` for the document itself, `content-type` for the header),
    /// when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorResponse {
    /// An error body.
    pub fn new(code: &str, message: &str, field: Option<&str>) -> Self {
        ErrorResponse {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
                field: field.map(str::to_owned),
            },
        }
    }
}

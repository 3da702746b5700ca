//! The wire contract: one JSON envelope per Kafka record (see docs/DESIGN.md, "The wire contract").
//!
//! Envelope keys are camelCase and `eventData` keys snake_case. Readers ignore unknown fields;
//! writers always write every field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `eventType` of a generation request.
pub const REQUEST_EVENT_TYPE: &str = "question.generation.request";
/// `eventType` of a generation response.
pub const RESPONSE_EVENT_TYPE: &str = "question.generation.response";
/// `userId` written on request events (the caller of the API is the content service).
pub const REQUEST_USER_ID: &str = "content-service";
/// `userId` written on response events.
pub const RESPONSE_USER_ID: &str = "ai-service";

/// Namespace of the UUIDv5 that turns a request `eventId` into its response `eventId`.
const RESPONSE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a0c_3f5e_2b41_4f0e_9d4c_51c3_a8e2_77b1);

/// The envelope every record on `question.request` and `question.response` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<D> {
    /// Unique per event; a response's is derived from its request's.
    pub event_id: String,
    /// [`REQUEST_EVENT_TYPE`] or [`RESPONSE_EVENT_TYPE`].
    pub event_type: String,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T10:00:00.000Z`.
    pub timestamp: String,
    /// Who the event speaks for.
    pub user_id: String,
    /// The payload.
    pub event_data: D,
}

/// A request event on `question.request`.
pub type RequestEvent = Envelope<GenerationRequest>;
/// A response event on `question.response`.
pub type ResponseEvent = Envelope<GenerationResponse>;

/// How hard the questions should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Difficulty {
    /// Recall and recognition.
    Easy,
    /// Application of the concept (the default).
    #[default]
    Medium,
    /// Analysis, edge cases, combinations.
    Hard,
}

impl Difficulty {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }

    /// Parses the wire name (exact, lowercase).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "easy" => Some(Difficulty::Easy),
            "medium" => Some(Difficulty::Medium),
            "hard" => Some(Difficulty::Hard),
            _ => None,
        }
    }
}

/// The validated content of a request (`eventData` of a request event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GenerationRequest {
    /// Caller-chosen or generated id; the Kafka key of both the request and its response.
    #[schemars(length(min = 1, max = 128), pattern(crate::validation::REQUEST_ID_PATTERN))]
    pub request_id: String,
    /// What the questions are about (trimmed).
    #[schemars(length(min = 1, max = 200), pattern(crate::validation::TOPIC_PATTERN))]
    pub topic: String,
    /// How many questions to generate (at most the deployment's `MAX_QUESTIONS_PER_REQUEST`, 20
    /// by default).
    #[schemars(range(min = 1, max = 20))]
    pub num_questions: u32,
    /// How hard they should be.
    pub difficulty: Difficulty,
    /// Optional grounding text (≤ 20 000 characters) the questions must be based on. Absent
    /// from the JSON when there is none, so requests without it look exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20_000), pattern(crate::validation::CONTEXT_PATTERN))]
    pub context: Option<String>,
}

/// The kind of a question. Only multiple choice is produced today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    /// One correct answer among 2–6 options.
    MultipleChoice,
}

/// One generated question. This type is also the source of the schema sent to Gemini.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Question {
    /// The question text.
    pub question: String,
    /// Always `multiple_choice`.
    #[serde(rename = "type")]
    pub kind: QuestionType,
    /// The answer options, 2–6, unique.
    pub options: Vec<String>,
    /// Exactly one of `options`.
    pub correct_answer: String,
    /// Why the correct answer is correct.
    pub explanation: String,
    /// The requested difficulty.
    pub difficulty: Difficulty,
}

/// Whether a request produced questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `questions` holds the validated questions.
    Completed,
    /// `questions` is empty and `error` says why.
    Failed,
}

/// Stable error codes of a failed response. Consumers branch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request event was decodable but a field broke the rules.
    InvalidRequest,
    /// Gemini could not be reached, kept failing, or the circuit breaker is open.
    GeminiUnavailable,
    /// Gemini refused the prompt or stopped for safety.
    GeminiBlocked,
    /// Gemini rejected our call (bad request, permission, unknown model): a configuration fault.
    GeminiRejected,
    /// Gemini answered, but not with questions that pass validation.
    InvalidModelOutput,
    /// The invocation ran out of time before questions were ready.
    DeadlineExceeded,
    /// The `request_id` was already used for a request with different content; the first one
    /// is the one answered, this one never is.
    IdempotencyConflict,
    /// A code this reader does not know (written by a newer writer).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::GeminiUnavailable => "gemini_unavailable",
            ErrorCode::GeminiBlocked => "gemini_blocked",
            ErrorCode::GeminiRejected => "gemini_rejected",
            ErrorCode::InvalidModelOutput => "invalid_model_output",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResponseError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable detail; never contains secrets.
    pub message: String,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
}

/// The content of a response (`eventData` of a response event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GenerationResponse {
    /// The request this answers.
    pub request_id: String,
    /// `completed` or `failed`.
    pub status: Status,
    /// The questions; empty when failed.
    pub questions: Vec<Question>,
    /// `questions.len()`.
    pub total_questions: usize,
    /// Present exactly when `status` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponseError>,
    /// What produced the questions when it is not Gemini (the local stack's offline source says
    /// `offline` here, so nobody mistakes its output for a model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The current time as the wire writes it: RFC 3339, UTC, milliseconds, `Z`.
pub fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A fresh request `eventId`.
pub fn new_request_event_id() -> String {
    format!("evt_qgen_request_{}", Uuid::new_v4().simple())
}

/// The response `eventId` for a request `eventId`: the same input always gives the same id, so
/// a retried batch re-publishes an event that consumers recognise as a duplicate.
pub fn response_event_id(request_event_id: &str) -> String {
    let id = Uuid::new_v5(&RESPONSE_ID_NAMESPACE, request_event_id.as_bytes());
    format!("evt_qgen_response_{}", id.simple())
}

impl RequestEvent {
    /// Wraps a validated request in a new envelope (fresh `eventId`, current time).
    pub fn new_request(request: GenerationRequest) -> Self {
        Envelope {
            event_id: new_request_event_id(),
            event_type: REQUEST_EVENT_TYPE.to_owned(),
            timestamp: now_timestamp(),
            user_id: REQUEST_USER_ID.to_owned(),
            event_data: request,
        }
    }
}

impl ResponseEvent {
    /// The `completed` response to the request event `request_event_id`.
    pub fn completed(request_event_id: &str, request_id: &str, questions: Vec<Question>) -> Self {
        Self::response(
            request_event_id,
            GenerationResponse {
                request_id: request_id.to_owned(),
                status: Status::Completed,
                total_questions: questions.len(),
                questions,
                error: None,
                source: None,
            },
        )
    }

    /// The `failed` response to the request event `request_event_id`.
    pub fn failed(request_event_id: &str, request_id: &str, error: ResponseError) -> Self {
        Self::response(
            request_event_id,
            GenerationResponse {
                request_id: request_id.to_owned(),
                status: Status::Failed,
                questions: Vec::new(),
                total_questions: 0,
                error: Some(error),
                source: None,
            },
        )
    }

    fn response(request_event_id: &str, data: GenerationResponse) -> Self {
        Envelope {
            event_id: response_event_id(request_event_id),
            event_type: RESPONSE_EVENT_TYPE.to_owned(),
            timestamp: now_timestamp(),
            user_id: RESPONSE_USER_ID.to_owned(),
            event_data: data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_event_id_is_deterministic_and_distinct_per_request() {
        let a = response_event_id("evt_qgen_request_1");
        assert_eq!(a, response_event_id("evt_qgen_request_1"));
        assert_ne!(a, response_event_id("evt_qgen_request_2"));
        assert!(a.starts_with("evt_qgen_response_"));
    }

    #[test]
    fn timestamp_has_milliseconds_and_zulu() {
        let ts = now_timestamp();
        // 2026-11-27T10:00:00.000Z
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(&ts[19..20], ".");
    }

    #[test]
    fn failed_response_has_every_field_of_the_contract() {
        let event = ResponseEvent::failed(
            "evt_qgen_request_x",
            "req-1",
            ResponseError {
                code: ErrorCode::InvalidRequest,
                message: "topic is required".into(),
                retryable: false,
            },
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["eventType"], RESPONSE_EVENT_TYPE);
        assert_eq!(json["userId"], RESPONSE_USER_ID);
        assert_eq!(json["eventData"]["status"], "failed");
        assert_eq!(json["eventData"]["questions"], serde_json::json!([]));
        assert_eq!(json["eventData"]["total_questions"], 0);
        assert_eq!(json["eventData"]["error"]["code"], "invalid_request");
        assert_eq!(json["eventData"]["error"]["retryable"], false);
    }

    #[test]
    fn error_codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::GeminiUnavailable,
            ErrorCode::GeminiBlocked,
            ErrorCode::GeminiRejected,
            ErrorCode::InvalidModelOutput,
            ErrorCode::DeadlineExceeded,
            ErrorCode::IdempotencyConflict,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn readers_ignore_unknown_fields_and_codes() {
        let json = r#"{"code":"brand_new_code","message":"m","retryable":true,"extra":1}"#;
        let error: ResponseError = serde_json::from_str(json).unwrap();
        assert_eq!(error.code, ErrorCode::Unknown);
    }
}

//! The wire contract: one JSON envelope per Kafka record (see docs/DESIGN.md, "The wire contract").
//!
//! Envelope keys are camelCase and `eventData` keys snake_case. Readers ignore unknown fields;
//! writers always write every field.
//!
//! The envelope, its ids and timestamps are here; the payloads beside it: the request's in
//! `request.rs`, the response's (questions, status, error codes) in `response.rs`.

mod request;
mod response;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::request::{CONTEXT_PATTERN, Difficulty, GenerationRequest, REQUEST_ID_PATTERN, TOPIC_PATTERN};
pub use self::response::{
    ErrorCode, GenerationResponse, OPTION_PATTERN, Question, QuestionType, ResponseError, Status,
    TEXT_PATTERN,
};

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

/// The current time as the wire writes it: RFC 3339, UTC, milliseconds, `Z`.
pub fn now_timestamp() -> String {
    timestamp(std::time::SystemTime::now())
}

/// `at` as the envelope writes times: RFC 3339, UTC, milliseconds.
pub fn timestamp(at: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
        // Pinned: consumers de-duplicate by it, so it must not change between versions (UUID v5
        // of the request's eventId in the fixed namespace; Python's uuid.uuid5 gives the same).
        assert_eq!(a, "evt_qgen_response_1be0242244f35d7e97de98664944931b");
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
    fn a_request_event_id_is_the_prefix_and_a_new_uuid() {
        let a = new_request_event_id();
        let b = new_request_event_id();

        let hex = a.strip_prefix("evt_qgen_request_").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(Uuid::parse_str(hex).is_ok(), "{a}");
        assert_ne!(a, b);
        assert_eq!(
            RequestEvent::new_request(GenerationRequest {
                request_id: "r".into(),
                topic: "t".into(),
                num_questions: 1,
                difficulty: Difficulty::Hard,
                context: None,
            })
            .event_data
            .difficulty
            .as_str(),
            "hard"
        );
    }

    #[test]
    fn difficulties_name_themselves_as_on_the_wire() {
        for difficulty in [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard] {
            assert_eq!(serde_json::to_value(difficulty).unwrap(), difficulty.as_str());
        }
    }
}

//! The payload of a response event: the questions, or why there are none.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::request::Difficulty;

/// The kind of a question. Only multiple choice is produced today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    /// One correct answer among 2–6 options.
    MultipleChoice,
}

/// `question` and `explanation` as a JSON Schema pattern: plain text, trimmed, not blank, no
/// control characters but line breaks (a question may quote a few lines of code).
pub const TEXT_PATTERN: &str =
    r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$";
/// An option and `correct_answer` as a JSON Schema pattern: one line of plain text, trimmed, not
/// blank, no control characters.
pub const OPTION_PATTERN: &str =
    r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$";

/// One generated question, as docs/DESIGN.md ("Question rules") defines it. This type is also
/// the source of the schema sent to Gemini.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Question {
    /// The question text: plain text (no Markdown), trimmed; may hold line breaks.
    #[schemars(pattern(TEXT_PATTERN))]
    pub question: String,
    /// Always `multiple_choice`.
    #[serde(rename = "type")]
    pub kind: QuestionType,
    /// The answer options, 2–6, unique, each one line of plain text, in an order that says
    /// nothing about which is correct (shuffled per request and question).
    #[schemars(length(min = 2, max = 6), inner(pattern(OPTION_PATTERN)), extend("uniqueItems" = true))]
    pub options: Vec<String>,
    /// Exactly one of `options`.
    #[schemars(pattern(OPTION_PATTERN))]
    pub correct_answer: String,
    /// Why the correct answer is correct: required, plain text, trimmed.
    #[schemars(pattern(TEXT_PATTERN))]
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
    /// Gemini's quota for a longer period than a retry can wait out (per day) is used up; the
    /// message says when Google resets it. Retryable, after that time.
    GeminiQuotaExhausted,
    /// The Gemini project's prepaid credit is used up (HTTP 402): no call succeeds until
    /// someone tops it up. Retryable, after that.
    GeminiCreditExhausted,
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
            ErrorCode::GeminiQuotaExhausted => "gemini_quota_exhausted",
            ErrorCode::GeminiCreditExhausted => "gemini_credit_exhausted",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::GeminiUnavailable,
            ErrorCode::GeminiQuotaExhausted,
            ErrorCode::GeminiCreditExhausted,
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

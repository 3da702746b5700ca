//! The payload of a request event: what to generate questions about, how many, how hard.
//!
//! The field patterns are the JSON Schema form of the request rules in [`crate::validation`];
//! they live here, with the fields they describe, so the schema needs nothing from the
//! validator and the validator depends on the events alone.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `request_id` as a JSON Schema pattern (with length 1–128).
pub const REQUEST_ID_PATTERN: &str = r"^[A-Za-z0-9._:-]+$";
/// `topic` as a JSON Schema pattern (with length 1–200): not all blank, no control characters.
pub const TOPIC_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// `context` as a JSON Schema pattern: no control characters but newlines and tabs.
pub const CONTEXT_PATTERN: &str = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$";

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
    #[schemars(length(min = 1, max = 128), pattern(REQUEST_ID_PATTERN))]
    pub request_id: String,
    /// What the questions are about (trimmed).
    #[schemars(length(min = 1, max = 200), pattern(TOPIC_PATTERN))]
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
    #[schemars(length(max = 20_000), pattern(CONTEXT_PATTERN))]
    pub context: Option<String>,
}

//! Where the local stack's questions come from: Gemini, or an offline source that is not an LLM
//! and says so in every response (`"source": "offline"`) and at start-up.

use qgen_contract::events::{GenerationRequest, Question};
use question_generator::gemini::GeminiClient;
use question_generator::source::{Calls, Deadlines, GenerationError, QuestionSource};
use tokio::time::Instant;

/// The `source` written on responses from [`OfflineSource`].
pub const OFFLINE_LABEL: &str = "offline";

/// Placeholder questions written without a model ([`qgen_contract::offline::questions`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct OfflineSource;

impl QuestionSource for OfflineSource {
    async fn generate(
        &self,
        request: &GenerationRequest,
        _deadline: Instant,
    ) -> Result<Vec<Question>, GenerationError> {
        Ok(qgen_contract::offline::questions(
            &request.topic,
            request.num_questions as usize,
            request.difficulty,
        ))
    }

    fn label(&self) -> Option<&str> {
        Some(OFFLINE_LABEL)
    }
}

/// The source the local stack runs with.
pub enum LocalSource {
    /// The real Gemini API, or whatever `GEMINI_BASE_URL` names.
    Gemini(Box<GeminiClient>),
    /// No model: placeholders.
    Offline(OfflineSource),
}

impl QuestionSource for LocalSource {
    async fn generate(
        &self,
        request: &GenerationRequest,
        deadline: Instant,
    ) -> Result<Vec<Question>, GenerationError> {
        match self {
            LocalSource::Gemini(client) => client.generate(request, deadline).await,
            LocalSource::Offline(offline) => offline.generate(request, deadline).await,
        }
    }

    async fn generate_reported(
        &self,
        request: &GenerationRequest,
        deadlines: Deadlines,
    ) -> (Result<Vec<Question>, GenerationError>, Option<Calls>) {
        match self {
            LocalSource::Gemini(client) => client.generate_reported(request, deadlines).await,
            LocalSource::Offline(offline) => offline.generate_reported(request, deadlines).await,
        }
    }

    fn label(&self) -> Option<&str> {
        match self {
            LocalSource::Gemini(client) => client.label(),
            LocalSource::Offline(offline) => offline.label(),
        }
    }
}

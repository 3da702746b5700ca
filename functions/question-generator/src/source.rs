//! The port through which the handler gets questions, and how its failures map to the stable
//! error codes of a `failed` response.

use std::future::Future;

use qgen_contract::events::{ErrorCode, GenerationRequest, Question, ResponseError};
use tokio::time::Instant;

/// Produces validated questions for a request.
pub trait QuestionSource: Send + Sync {
    /// Questions for `request`, which must be ready by `deadline`. The questions returned have
    /// already passed [`qgen_contract::validation::validate_questions`].
    fn generate(
        &self,
        request: &GenerationRequest,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Question>, GenerationError>> + Send;

    /// What to write as the response's `source` when it is not a model (e.g. `offline`).
    fn label(&self) -> Option<&str> {
        None
    }
}

/// Why a request got no questions. Every variant maps to one stable [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerationError {
    /// Gemini was unreachable, overloaded, or kept failing (429, 5xx, timeouts), or the circuit
    /// breaker is open.
    #[error("gemini unavailable: {0}")]
    Unavailable(String),
    /// Gemini refused the prompt or stopped generating for safety reasons.
    #[error("gemini blocked the request: {0}")]
    Blocked(String),
    /// Gemini rejected the call itself (400, 403, 404): fix the configuration, not the request.
    #[error("gemini rejected the call with status {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Gemini's explanation.
        message: String,
    },
    /// The model answered, but not with questions that pass validation.
    #[error("invalid model output: {0}")]
    InvalidOutput(String),
    /// There was no time left to finish before the invocation's deadline.
    #[error("no time left before the invocation deadline")]
    DeadlineExceeded,
}

impl GenerationError {
    /// The stable code written in the `failed` response.
    pub fn code(&self) -> ErrorCode {
        match self {
            GenerationError::Unavailable(_) => ErrorCode::GeminiUnavailable,
            GenerationError::Blocked(_) => ErrorCode::GeminiBlocked,
            GenerationError::Rejected { .. } => ErrorCode::GeminiRejected,
            GenerationError::InvalidOutput(_) => ErrorCode::InvalidModelOutput,
            GenerationError::DeadlineExceeded => ErrorCode::DeadlineExceeded,
        }
    }

    /// Whether the same request, sent again later, may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            GenerationError::Unavailable(_) | GenerationError::DeadlineExceeded => true,
            // A model's output varies from call to call.
            GenerationError::InvalidOutput(_) => true,
            GenerationError::Blocked(_) | GenerationError::Rejected { .. } => false,
        }
    }

    /// The `error` object of the `failed` response.
    pub fn to_response_error(&self) -> ResponseError {
        ResponseError {
            code: self.code(),
            message: self.to_string(),
            retryable: self.retryable(),
        }
    }
}

impl<T: QuestionSource> QuestionSource for &T {
    fn generate(
        &self,
        request: &GenerationRequest,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Question>, GenerationError>> + Send {
        (**self).generate(request, deadline)
    }

    fn label(&self) -> Option<&str> {
        (**self).label()
    }
}

impl<T: QuestionSource> QuestionSource for std::sync::Arc<T> {
    fn generate(
        &self,
        request: &GenerationRequest,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Question>, GenerationError>> + Send {
        (**self).generate(request, deadline)
    }

    fn label(&self) -> Option<&str> {
        (**self).label()
    }
}

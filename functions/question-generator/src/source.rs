//! The port through which the handler gets questions, and how its failures map to the stable
//! error codes of a `failed` response.

use std::future::Future;

use qgen_contract::events::{ErrorCode, GenerationRequest, Question, ResponseError};
use tokio::time::Instant;

/// How long a source may spend on one request.
///
/// Two bounds, because waiting for Gemini as a whole (an open circuit breaker, a per-minute
/// quota) is not the same as running out of time: a request still young when its invocation
/// ends is *held* ([`GenerationError::Held`]) and comes back with its partition's redelivery,
/// while one that has waited `GEMINI_MAX_WAIT_SECONDS` is answered `gemini_unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// No call runs past this: the invocation's deadline less the time kept to publish.
    pub answer_by: Instant,
    /// Until when the request may wait for Gemini as a whole to answer again: its request
    /// event's `timestamp` plus the maximum wait. Already past for a request that must not wait.
    pub wait_until: Instant,
}

impl Deadlines {
    /// Answer by `answer_by`, never waiting for Gemini to come back: what
    /// [`QuestionSource::generate`] promises.
    pub fn no_wait(answer_by: Instant) -> Self {
        Deadlines {
            answer_by,
            wait_until: Instant::now().min(answer_by),
        }
    }

    /// The latest a wait for Gemini as a whole may end.
    pub fn wait_limit(&self) -> Instant {
        self.answer_by.min(self.wait_until)
    }

    /// Whether the request is still within its maximum wait when the invocation's time is up
    /// (or now, when that is already past): then running out of time holds it instead of
    /// failing it.
    pub fn holds(&self) -> bool {
        self.wait_until > self.answer_by.max(Instant::now())
    }

    /// What a wait for Gemini that cannot end in time comes to: the request is held when it is
    /// young enough to outlast this invocation, and answered `gemini_unavailable` otherwise.
    pub fn gave_up(&self, reason: String) -> GenerationError {
        if self.holds() {
            GenerationError::Held { reason }
        } else {
            GenerationError::unavailable(reason)
        }
    }
}

/// Produces validated questions for a request.
pub trait QuestionSource: Send + Sync {
    /// Questions for `request`, which must be ready by `deadline`, without waiting for Gemini
    /// to come back when it cannot answer. The questions returned have already passed
    /// [`qgen_contract::validation::validate_questions`].
    fn generate(
        &self,
        request: &GenerationRequest,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Question>, GenerationError>> + Send;

    /// [`QuestionSource::generate`] within `deadlines` (a source that depends on Gemini waits
    /// for it until [`Deadlines::wait_limit`]), with what it took: the model calls made, for
    /// the response record's headers (the request's timeline). A source that calls no model
    /// reports none.
    fn generate_reported(
        &self,
        request: &GenerationRequest,
        deadlines: Deadlines,
    ) -> impl Future<Output = (Result<Vec<Question>, GenerationError>, Option<Calls>)> + Send {
        async move { (self.generate(request, deadlines.answer_by).await, None) }
    }

    /// What to write as the response's `source` when it is not a model (e.g. `offline`).
    fn label(&self) -> Option<&str> {
        None
    }
}

/// The model calls made for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calls {
    /// How many.
    pub count: u64,
    /// Their latency, added up.
    pub latency: std::time::Duration,
    /// The model of the last one.
    pub model: String,
}

/// The error underneath a [`GenerationError`] (a reqwest or serde error, a broken rule), kept so
/// that the whole chain reaches the logs and the `failed` response's message.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// `error` as a [`Cause`].
pub fn cause(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
    std::sync::Arc::new(error)
}

/// Why a request got no questions. Every variant maps to one stable [`ErrorCode`]. Its
/// `Display` is its own context; [`GenerationError::message`] adds the chain of sources.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GenerationError {
    /// Gemini was unreachable, overloaded, or kept failing (429, 5xx, timeouts), or the circuit
    /// breaker is open.
    #[error("gemini unavailable: {reason}")]
    Unavailable {
        /// What failed, in a few words.
        reason: String,
        /// The transport error behind it, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Gemini as a whole could not answer (the breaker open, the per-minute quota used up, every
    /// call failing) before the invocation's time was up, and the request may still wait: it
    /// is not answered, its record is redelivered. Only [`Deadlines::gave_up`] makes one.
    #[error("gemini unavailable: {reason}; held for redelivery")]
    Held {
        /// What it was waiting for, in a few words.
        reason: String,
    },
    /// The project's prepaid credit is used up (HTTP 402, `Payment Required`): no call can
    /// succeed until it is topped up, so the breaker stops every call of the environment.
    #[error("gemini prepaid credit is used up; this function calls Gemini again in {}s", retry_in.as_secs())]
    CreditExhausted {
        /// When the circuit breaker lets the next call through.
        retry_in: std::time::Duration,
    },
    /// A per-day Gemini quota is used up: no retry within the invocation can succeed. Google
    /// resets per-day quotas at midnight Pacific time
    /// (<https://ai.google.dev/gemini-api/docs/rate-limits>).
    #[error(
        "gemini quota {quota} is used up; Google resets per-day quotas at midnight Pacific time \
         (08:00 UTC, 07:00 UTC in summer); this function calls Gemini again in {}s",
        retry_in.as_secs()
    )]
    QuotaExhausted {
        /// The `quotaId` Gemini named, e.g. `GenerateRequestsPerDayPerProjectPerModel`.
        quota: String,
        /// When the circuit breaker lets the next call through.
        retry_in: std::time::Duration,
    },
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
    #[error("invalid model output: {problem}")]
    InvalidOutput {
        /// What is wrong with the answer.
        problem: String,
        /// The parse error or the broken rule behind it, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// There was no time left to finish before the invocation's deadline.
    #[error("no time left before the invocation deadline")]
    DeadlineExceeded,
}

impl GenerationError {
    /// [`GenerationError::Unavailable`] for `reason`, with no source.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        GenerationError::Unavailable {
            reason: reason.into(),
            source: None,
        }
    }

    /// [`GenerationError::InvalidOutput`] for `problem`, caused by `source`.
    pub fn invalid_output(problem: impl Into<String>, source: Option<Cause>) -> Self {
        GenerationError::InvalidOutput {
            problem: problem.into(),
            source,
        }
    }

    /// The stable code written in the `failed` response.
    pub fn code(&self) -> ErrorCode {
        match self {
            GenerationError::Unavailable { .. } | GenerationError::Held { .. } => {
                ErrorCode::GeminiUnavailable
            }
            GenerationError::CreditExhausted { .. } => ErrorCode::GeminiCreditExhausted,
            GenerationError::QuotaExhausted { .. } => ErrorCode::GeminiQuotaExhausted,
            GenerationError::Blocked(_) => ErrorCode::GeminiBlocked,
            GenerationError::Rejected { .. } => ErrorCode::GeminiRejected,
            GenerationError::InvalidOutput { .. } => ErrorCode::InvalidModelOutput,
            GenerationError::DeadlineExceeded => ErrorCode::DeadlineExceeded,
        }
    }

    /// Whether the same request, sent again later, may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            GenerationError::Unavailable { .. }
            | GenerationError::Held { .. }
            | GenerationError::DeadlineExceeded => true,
            // Once the quota is reset (or raised), or the credit topped up.
            GenerationError::QuotaExhausted { .. } | GenerationError::CreditExhausted { .. } => true,
            // A model's output varies from call to call.
            GenerationError::InvalidOutput { .. } => true,
            GenerationError::Blocked(_) | GenerationError::Rejected { .. } => false,
        }
    }

    /// This error and each of its sources, joined by `: ` — for the `failed` response, the
    /// repair prompt and the logs.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }

    /// The `error` object of the `failed` response.
    pub fn to_response_error(&self) -> ResponseError {
        ResponseError {
            code: self.code(),
            message: self.message(),
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

    fn generate_reported(
        &self,
        request: &GenerationRequest,
        deadlines: Deadlines,
    ) -> impl Future<Output = (Result<Vec<Question>, GenerationError>, Option<Calls>)> + Send {
        (**self).generate_reported(request, deadlines)
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

    fn generate_reported(
        &self,
        request: &GenerationRequest,
        deadlines: Deadlines,
    ) -> impl Future<Output = (Result<Vec<Question>, GenerationError>, Option<Calls>)> + Send {
        (**self).generate_reported(request, deadlines)
    }

    fn label(&self) -> Option<&str> {
        (**self).label()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that answers nothing, labelled or not.
    struct Labelled(Option<&'static str>);

    impl QuestionSource for Labelled {
        async fn generate(
            &self,
            _: &GenerationRequest,
            _: Instant,
        ) -> Result<Vec<Question>, GenerationError> {
            Err(GenerationError::DeadlineExceeded)
        }

        fn label(&self) -> Option<&str> {
            self.0
        }
    }

    /// A source that keeps the trait's default label.
    struct Unlabelled;

    impl QuestionSource for Unlabelled {
        async fn generate(
            &self,
            _: &GenerationRequest,
            _: Instant,
        ) -> Result<Vec<Question>, GenerationError> {
            Err(GenerationError::DeadlineExceeded)
        }
    }

    #[test]
    fn a_source_is_unlabelled_unless_it_says_and_references_and_arcs_pass_its_label_on() {
        use std::sync::Arc;
        assert_eq!(Unlabelled.label(), None);
        for label in [Some("offline"), None] {
            let source = Labelled(label);
            // Through the forwarding impls themselves, not the inner type's by auto-deref.
            assert_eq!(<&Labelled as QuestionSource>::label(&&source), label);
            assert_eq!(
                <Arc<Labelled> as QuestionSource>::label(&Arc::new(Labelled(label))),
                label
            );
        }
    }

    #[test]
    fn a_request_is_held_only_while_it_may_outlast_the_invocation() {
        let now = Instant::now();
        let minute = std::time::Duration::from_secs(60);
        let young = Deadlines {
            answer_by: now + minute,
            wait_until: now + 30 * minute,
        };
        let old = Deadlines {
            answer_by: now + minute,
            wait_until: now + minute / 2,
        };
        // An invocation whose time is already up, for a request that could wait no longer.
        let late = Deadlines {
            answer_by: now - minute,
            wait_until: now - minute / 2,
        };

        // One whose wait ends with the invocation has no later invocation to wait in.
        let at_the_end = Deadlines {
            answer_by: now + minute,
            wait_until: now + minute,
        };

        assert!(young.holds() && !old.holds() && !late.holds() && !at_the_end.holds());
        assert!(!Deadlines::no_wait(now + minute).holds());
        assert_eq!(young.wait_limit(), now + minute);
        assert_eq!(old.wait_limit(), now + minute / 2);
        assert!(matches!(young.gave_up("x".into()), GenerationError::Held { .. }));
        assert_eq!(old.gave_up("x".into()).code(), ErrorCode::GeminiUnavailable);
        assert!(!matches!(old.gave_up("x".into()), GenerationError::Held { .. }));
    }

    #[test]
    fn the_message_carries_the_whole_chain_of_sources() {
        let parse = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let error = GenerationError::invalid_output("text does not match the schema", Some(cause(parse)));

        let response = error.to_response_error();

        assert_eq!(
            error.to_string(),
            "invalid model output: text does not match the schema"
        );
        assert_eq!(
            response.message,
            "invalid model output: text does not match the schema: EOF while parsing an object at line 1 column 1"
        );
        assert_eq!(
            (response.code, response.retryable),
            (ErrorCode::InvalidModelOutput, true)
        );
        assert_eq!(
            GenerationError::unavailable("timed out").message(),
            "gemini unavailable: timed out"
        );
    }

    #[test]
    fn every_error_has_its_stable_code_and_retryable_flag() {
        let quota = GenerationError::QuotaExhausted {
            quota: "GenerateRequestsPerDayPerProjectPerModel".into(),
            retry_in: std::time::Duration::from_secs(30),
        };
        let rejected = GenerationError::Rejected {
            status: 403,
            message: "denied".into(),
        };
        for (error, code, retryable) in [
            (GenerationError::unavailable("x"), "gemini_unavailable", true),
            (quota.clone(), "gemini_quota_exhausted", true),
            (GenerationError::Blocked("SAFETY".into()), "gemini_blocked", false),
            (rejected, "gemini_rejected", false),
            (
                GenerationError::invalid_output("x", None),
                "invalid_model_output",
                true,
            ),
            (GenerationError::DeadlineExceeded, "deadline_exceeded", true),
            (
                GenerationError::Held { reason: "x".into() },
                "gemini_unavailable",
                true,
            ),
            (
                GenerationError::CreditExhausted {
                    retry_in: std::time::Duration::from_secs(30),
                },
                "gemini_credit_exhausted",
                true,
            ),
        ] {
            let response = error.to_response_error();
            assert_eq!(
                (response.code.as_str(), response.retryable),
                (code, retryable),
                "{error}"
            );
        }
        assert_eq!(
            quota.message(),
            "gemini quota GenerateRequestsPerDayPerProjectPerModel is used up; Google resets \
             per-day quotas at midnight Pacific time (08:00 UTC, 07:00 UTC in summer); this \
             function calls Gemini again in 30s"
        );
    }
}

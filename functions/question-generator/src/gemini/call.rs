//! One HTTP call to `generateContent` and what it came to. Classifying every outcome into an
//! [`Attempt`] here keeps the retry policy ([`super::policy`]) free of status codes and
//! reqwest's errors.

use std::time::{Duration, SystemTime};

use qgen_contract::events::{GenerationRequest, Question};
use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use tokio::time::Instant;

use super::GeminiClient;
use super::reply::{Usage, error_message, read_reply};
use crate::retry::parse_retry_after;
use crate::source::{Cause, GenerationError, cause};

/// What one HTTP call came to.
pub(super) enum Attempt {
    /// Valid questions.
    Questions(Vec<Question>),
    /// Worth the same call again after a wait: 429, 500, 503, 504, timeouts, connection errors.
    Transient {
        /// What failed, in a few words.
        reason: String,
        /// The transport error, when the call itself failed.
        source: Option<Cause>,
        /// The server's `Retry-After`, which wins over the computed backoff.
        retry_after: Option<Duration>,
    },
    /// The model answered, but the answer is unusable: worth one repair call.
    Unusable(GenerationError),
    /// Final: another call would get the same answer.
    Final(GenerationError),
}

/// Totals over the calls made for one request, recorded on the request's span.
#[derive(Default)]
pub(super) struct Tally {
    calls: u64,
    latency_ms: u64,
    usage: Usage,
}

impl Tally {
    /// Counts one call.
    fn add(&mut self, latency_ms: u64, usage: Usage) {
        self.calls += 1;
        self.latency_ms += latency_ms;
        self.usage.prompt_token_count += usage.prompt_token_count;
        self.usage.candidates_token_count += usage.candidates_token_count;
        self.usage.total_token_count += usage.total_token_count;
    }

    /// Writes the totals on the current span (the request's).
    pub(super) fn record(&self) {
        let span = tracing::Span::current();
        span.record("gemini_calls", self.calls);
        span.record("gemini_latency_ms", self.latency_ms);
        span.record("prompt_tokens", self.usage.prompt_token_count);
        span.record("output_tokens", self.usage.candidates_token_count);
        span.record("total_tokens", self.usage.total_token_count);
    }
}

impl GeminiClient {
    /// One `generateContent` call, classified. Reports to the circuit breaker.
    pub(super) async fn call(
        &self,
        body: &Value,
        request: &GenerationRequest,
        deadline: Instant,
        tally: &mut Tally,
    ) -> Attempt {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        let sent = self
            .http
            .post(&self.endpoint)
            .header("x-goog-api-key", self.api_key.clone())
            .timeout(self.timeout.min(remaining))
            .json(body)
            .send()
            .await;
        let received = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                response.bytes().await.map(|body| (status, retry_after, body))
            }
            Err(e) => Err(e),
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let (status, retry_after, reply) = match received {
            Ok(received) => received,
            Err(e) => {
                tally.add(latency_ms, Usage::default());
                self.breaker.record_failure();
                // Without its URL, as everything this function logs.
                let e = e.without_url();
                let reason = describe(&e);
                tracing::warn!(latency_ms, reason, error = %e, "gemini call failed");
                return Attempt::Transient {
                    reason: reason.to_owned(),
                    source: Some(cause(e)),
                    retry_after: None,
                };
            }
        };
        let (usage, outcome) = if status == 200 {
            read_reply(&reply, request)
        } else {
            (Usage::default(), Ok(Vec::new()))
        };
        tally.add(latency_ms, usage);
        if status == 200 {
            tracing::info!(
                status,
                latency_ms,
                prompt_tokens = usage.prompt_token_count,
                output_tokens = usage.candidates_token_count,
                total_tokens = usage.total_token_count,
                "gemini answered"
            );
        } else {
            tracing::warn!(status, latency_ms, "gemini answered with an error status");
        }
        if status == 429 || status >= 500 {
            self.breaker.record_failure();
        } else {
            self.breaker.record_success();
        }
        match status {
            200 => match outcome {
                Ok(questions) => Attempt::Questions(questions),
                Err(error) => Attempt::Unusable(error),
            },
            429 | 500 | 503 | 504 => Attempt::Transient {
                reason: format!("status {status}: {}", error_message(&reply)),
                source: None,
                retry_after,
            },
            400 | 401 | 403 | 404 => {
                if status == 404 {
                    tracing::error!(
                        model = %self.model,
                        endpoint = %self.endpoint,
                        "configuration error: gemini does not know this model; check GEMINI_MODEL"
                    );
                }
                Attempt::Final(GenerationError::Rejected {
                    status,
                    message: error_message(&reply),
                })
            }
            _ => Attempt::Final(GenerationError::unavailable(format!(
                "status {status}: {}",
                error_message(&reply)
            ))),
        }
    }
}

/// A reqwest error in a few words (the error itself travels as the source).
fn describe(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

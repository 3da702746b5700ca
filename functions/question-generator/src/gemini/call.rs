//! One HTTP call to `generateContent`, in three steps: [`GeminiClient::send`] (HTTP and nothing
//! else), the pure classification of what came back ([`super::classify`]), and
//! [`GeminiClient::report`], the one place a call updates the circuit breaker. What the call came
//! to is an [`Attempt`], which keeps the retry policy ([`super::policy`]) free of status codes
//! and reqwest's errors.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::events::{GenerationRequest, Question};
use qgen_contract::metrics::GENERATOR;
use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use tokio::time::Instant;

use super::classify::{self, Signal, Verdict};
use super::error_body::read_error;
use super::reply::{Read, Usage, read_reply};
use super::tally::Tally;
use super::{GeminiClient, Model};
use crate::retry::parse_retry_after;
use crate::source::{Cause, GenerationError, cause};

/// What one HTTP call came to, for the retry policy.
pub(super) enum Attempt {
    /// Valid questions.
    Questions(Vec<Question>),
    /// Worth the same call again after a wait (see [`Verdict::Transient`]).
    Transient {
        /// What failed, in a few words.
        reason: String,
        /// The transport error, when the call itself failed.
        source: Option<Cause>,
        /// How long the server asked us to wait. It wins over the computed backoff.
        retry_after: Option<Duration>,
    },
    /// The model answered, but the answer is unusable: worth one repair call.
    Unusable(GenerationError),
    /// A per-minute quota is used up: a pacing signal, not a failure. Every call of the
    /// environment waits `retry_after` ([`super::Pacer`]); the breaker and the request's
    /// attempts are left alone.
    Throttled {
        /// What Gemini said, in a few words.
        reason: String,
        /// Gemini's `retryDelay`.
        retry_after: Duration,
    },
    /// Gemini does not serve the model (404) and `GEMINI_MODEL` names another: call it at once.
    NextModel,
    /// Final: another call would get the same answer.
    Final(GenerationError),
}

/// What came back from Gemini when the call itself went through.
struct Received {
    status: u16,
    /// A proxy's `Retry-After`.
    retry_after: Option<Duration>,
    body: Bytes,
}

impl GeminiClient {
    /// One `generateContent` call: sent, classified, reported to the circuit breaker.
    pub(super) async fn call(
        &self,
        body: &Value,
        request: &GenerationRequest,
        deadline: Instant,
        tally: &mut Tally,
    ) -> Attempt {
        let index = self.current.load(Ordering::Relaxed);
        let model = &self.models[index];
        let started = Instant::now();
        let received = self.send(model, body, deadline).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let (verdict, signal) = match received {
            Err(e) => {
                tally.add(&model.name, latency_ms, Usage::default());
                // Without its URL, as everything this function logs.
                let e = e.without_url();
                let reason = describe(&e);
                tracing::warn!(model = %model.name, latency_ms, reason, error = %e, "gemini call failed");
                classify::failed(reason, cause(e))
            }
            Ok(Received {
                status: 200, body, ..
            }) => {
                let Read {
                    usage,
                    model_version,
                    outcome,
                } = read_reply(&body, request);
                // The model that answered is the one reported; Google may forward a retired one.
                let answered = model_version.as_deref().unwrap_or(&model.name);
                if answered != model.name {
                    self.forwarded_once(&model.name, answered);
                }
                tally.add(answered, latency_ms, usage);
                tracing::info!(
                    status = 200_u16,
                    model = %answered,
                    latency_ms,
                    prompt_tokens = usage.prompt_token_count,
                    cached_tokens = usage.cached_content_token_count,
                    output_tokens = usage.candidates_token_count,
                    thoughts_tokens = usage.thoughts_token_count,
                    total_tokens = usage.total_token_count,
                    "gemini answered"
                );
                classify::answered(outcome)
            }
            Ok(Received {
                status,
                retry_after,
                body,
            }) => {
                tally.add(&model.name, latency_ms, Usage::default());
                let error = read_error(&body);
                tracing::warn!(status, model = %model.name, latency_ms, message = %error.message, "gemini answered with an error status");
                classify::status(status, retry_after, error)
            }
        };
        let retry_in = self.report(signal);
        self.attempt(verdict, retry_in, index)
    }

    /// Sends `body` to `model`, within `deadline` and the configured timeout; reads the whole
    /// reply. HTTP only: what it means is [`classify`]'s.
    async fn send(&self, model: &Model, body: &Value, deadline: Instant) -> Result<Received, reqwest::Error> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let response = self
            .http
            .post(&model.endpoint)
            .header("x-goog-api-key", self.api_key.clone())
            .timeout(self.timeout.min(remaining))
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = response.bytes().await?;
        Ok(Received {
            status,
            retry_after,
            body,
        })
    }

    /// Tells the circuit breaker what a call said of Gemini: the one place a call updates it.
    /// Returns how long a trip keeps the circuit open.
    fn report(&self, signal: Signal) -> Option<Duration> {
        match signal {
            Signal::Up => self.breaker.record_success(),
            Signal::Down => self.breaker.record_failure(),
            Signal::Trip { at_least, label } => return Some(self.breaker.trip(at_least, &label)),
            Signal::Quiet => {}
        }
        None
    }

    /// The [`Attempt`] a `verdict` comes to, once the breaker has been told (`retry_in`: how long
    /// its trip keeps the circuit open); the metrics and error logs of the verdicts that have
    /// them. A 404 moves this environment on to the next model, when there is one.
    fn attempt(&self, verdict: Verdict, retry_in: Option<Duration>, index: usize) -> Attempt {
        let retry_in = retry_in.unwrap_or_default();
        match verdict {
            Verdict::Questions(questions) => Attempt::Questions(questions),
            Verdict::Unusable(error) => Attempt::Unusable(error),
            Verdict::Transient {
                reason,
                source,
                retry_after,
            } => Attempt::Transient {
                reason,
                source,
                retry_after,
            },
            Verdict::Throttled { reason, retry_after } => {
                Metrics::new(GENERATOR).count(Metric::GeminiThrottled, 1).emit();
                Attempt::Throttled { reason, retry_after }
            }
            Verdict::CreditExhausted => {
                Metrics::new(GENERATOR)
                    .count(Metric::GeminiCreditExhausted, 1)
                    .emit();
                tracing::error!(
                    model = %self.models[index].name,
                    retry_in_s = retry_in.as_secs(),
                    "gemini prepaid credit is used up (402); top it up in AI Studio"
                );
                Attempt::Final(GenerationError::CreditExhausted { retry_in })
            }
            Verdict::QuotaExhausted { quota } => {
                Attempt::Final(GenerationError::QuotaExhausted { quota, retry_in })
            }
            Verdict::NotServed { .. } if self.fall_back(index) => Attempt::NextModel,
            Verdict::NotServed { message } => {
                tracing::error!(
                    model = %self.models[index].name,
                    "configuration error: gemini does not serve this model and GEMINI_MODEL names no other; check GEMINI_MODEL"
                );
                Attempt::Final(GenerationError::Rejected { status: 404, message })
            }
            Verdict::Final(error) => Attempt::Final(error),
        }
    }

    /// Logs, once per execution environment, that `answered` replied to calls for
    /// `configured`: Google forwards retired models silently instead of answering 404.
    fn forwarded_once(&self, configured: &str, answered: &str) {
        if !self.forwarded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                configured,
                answered,
                "gemini answered with another model than GEMINI_MODEL names (retired and forwarded?); metrics and logs report the model that answered"
            );
        }
    }

    /// Gemini answered 404 for the model at `index`: moves on to the next model of
    /// `GEMINI_MODEL`, if there is one, for this request and every later one of the execution
    /// environment. Logs the configuration error once, whichever request saw it first.
    fn fall_back(&self, index: usize) -> bool {
        let next = index + 1;
        if next >= self.models.len() {
            return false;
        }
        if self
            .current
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::error!(
                model = %self.models[index].name,
                next = %self.models[next].name,
                "configuration error: gemini does not serve this model (retired?); using the next model of GEMINI_MODEL"
            );
        }
        true
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

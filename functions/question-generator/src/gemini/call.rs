//! One HTTP call to `generateContent` and what it came to. Classifying every outcome into an
//! [`Attempt`] here keeps the retry policy ([`super::policy`]) free of status codes and
//! reqwest's errors. Status codes as Gemini documents them:
//! <https://ai.google.dev/gemini-api/docs/troubleshooting>.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::events::{GenerationRequest, Question};
use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use tokio::time::Instant;

use super::GeminiClient;
use super::error_body::read_error;
use super::reply::{Read, Usage, read_reply};
use super::tally::Tally;
use crate::breaker::PREPAID_CREDIT;
use crate::handler::SERVICE;
use crate::retry::parse_retry_after;
use crate::source::{Cause, GenerationError, cause};

/// What one HTTP call came to.
pub(super) enum Attempt {
    /// Valid questions.
    Questions(Vec<Question>),
    /// Worth the same call again after a wait: 408, 429 (but a per-day quota), 500, 503, 504,
    /// timeouts, connection errors.
    Transient {
        /// What failed, in a few words.
        reason: String,
        /// The transport error, when the call itself failed.
        source: Option<Cause>,
        /// How long the server asked us to wait: Gemini's `RetryInfo.retryDelay`, or a proxy's
        /// `Retry-After`. It wins over the computed backoff.
        retry_after: Option<Duration>,
    },
    /// The model answered, but the answer is unusable: worth one repair call.
    Unusable(GenerationError),
    /// A per-minute quota is used up (429 with `RetryInfo`, no per-day quota): a pacing signal,
    /// not a failure. Every call of the environment waits `retry_after` ([`super::Pacer`]);
    /// the breaker and the request's attempts are left alone.
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

impl GeminiClient {
    /// One `generateContent` call, classified. Reports to the circuit breaker.
    pub(super) async fn call(
        &self,
        body: &Value,
        request: &GenerationRequest,
        deadline: Instant,
        tally: &mut Tally,
    ) -> Attempt {
        let index = self.current.load(Ordering::Relaxed);
        let model = &self.models[index];
        let remaining = deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        let sent = self
            .http
            .post(&model.endpoint)
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
                tally.add(&model.name, latency_ms, Usage::default());
                self.breaker.record_failure();
                // Without its URL, as everything this function logs.
                let e = e.without_url();
                let reason = describe(&e);
                tracing::warn!(model = %model.name, latency_ms, reason, error = %e, "gemini call failed");
                return Attempt::Transient {
                    reason: reason.to_owned(),
                    source: Some(cause(e)),
                    retry_after: None,
                };
            }
        };
        if status == 200 {
            let Read {
                usage,
                model_version,
                outcome,
            } = read_reply(&reply, request);
            // The model that answered is the one reported; Google may forward a retired one.
            let answered = model_version.as_deref().unwrap_or(&model.name);
            if answered != model.name {
                self.forwarded_once(&model.name, answered);
            }
            tally.add(answered, latency_ms, usage);
            tracing::info!(
                status,
                model = %answered,
                latency_ms,
                prompt_tokens = usage.prompt_token_count,
                cached_tokens = usage.cached_content_token_count,
                output_tokens = usage.candidates_token_count,
                thoughts_tokens = usage.thoughts_token_count,
                total_tokens = usage.total_token_count,
                "gemini answered"
            );
            self.breaker.record_success();
            return match outcome {
                Ok(questions) => Attempt::Questions(questions),
                Err(error) => Attempt::Unusable(error),
            };
        }
        tally.add(&model.name, latency_ms, Usage::default());
        let error = read_error(&reply);
        tracing::warn!(status, model = %model.name, latency_ms, message = %error.message, "gemini answered with an error status");
        if status == 402 {
            // Prepaid credit used up: nothing succeeds until someone tops it up, so stop every
            // call of the environment for a while instead of spending one per request.
            let retry_in = self.breaker.trip(CREDIT_RECHECK, PREPAID_CREDIT);
            Metrics::new(SERVICE)
                .count(Metric::GeminiCreditExhausted, 1)
                .emit();
            tracing::error!(
                model = %model.name,
                retry_in_s = retry_in.as_secs(),
                "gemini prepaid credit is used up (402); top it up in AI Studio"
            );
            return Attempt::Final(GenerationError::CreditExhausted { retry_in });
        }
        if let (429, Some(quota)) = (status, &error.daily_quota) {
            // Waiting cannot help before the quota resets: stop every call of this environment
            // for a window instead of spending one call per request.
            let retry_in = self.breaker.trip(error.retry_delay.unwrap_or_default(), quota);
            return Attempt::Final(GenerationError::QuotaExhausted {
                quota: quota.clone(),
                retry_in,
            });
        }
        if let (429, Some(retry_after)) = (status, error.retry_delay) {
            // A per-minute quota: Gemini is up and says when to come back.
            Metrics::new(SERVICE).count(Metric::GeminiThrottled, 1).emit();
            return Attempt::Throttled {
                reason: format!("status 429: {}", error.message),
                retry_after,
            };
        }
        // 408: a proxy or front end gave up waiting for the request; RFC 9110 §15.5.9 lets the
        // client repeat it. Google does not list it for Gemini; we treat it as a timeout.
        if matches!(status, 408 | 429 | 500 | 503 | 504) {
            self.breaker.record_failure();
            return Attempt::Transient {
                reason: format!("status {status}: {}", error.message),
                source: None,
                retry_after: error.retry_delay.or(retry_after),
            };
        }
        if status >= 500 {
            self.breaker.record_failure();
        } else {
            // Gemini is up, whatever it thinks of the call.
            self.breaker.record_success();
        }
        match status {
            404 if self.fall_back(index) => Attempt::NextModel,
            400 | 401 | 403 | 404 => {
                if status == 404 {
                    tracing::error!(
                        model = %model.name,
                        "configuration error: gemini does not serve this model and GEMINI_MODEL names no other; check GEMINI_MODEL"
                    );
                }
                Attempt::Final(GenerationError::Rejected {
                    status,
                    message: error.message,
                })
            }
            _ => Attempt::Final(GenerationError::unavailable(format!(
                "status {status}: {}",
                error.message
            ))),
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

/// How long a used-up prepaid credit (402) stops the calls of an execution environment: one
/// call per five minutes notices a top-up soon enough without spending a call per request.
const CREDIT_RECHECK: Duration = Duration::from_secs(300);

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

//! The failure policy of docs/DESIGN.md around the calls: transient failures retried with
//! backoff (or after Gemini's `retryDelay`), one repair call for an unusable answer, the next
//! model after a 404, never past the caller's deadline and never while the circuit is open. Kept apart from the call itself so the policy reads in one screen.

use qgen_contract::events::{GenerationRequest, Question};
use tokio::time::Instant;

use super::GeminiClient;
use super::call::{Attempt, Tally};
use super::prompt::{build_repair_request, build_request};
use crate::retry::{backoff, jitter};
use crate::source::GenerationError;

impl GeminiClient {
    /// Calls until there are valid questions: transient failures retried with backoff (at
    /// most `max_attempts` calls), one repair call for an unusable answer, never past
    /// `deadline`, never while the circuit is open.
    pub(super) async fn generate_until(
        &self,
        request: &GenerationRequest,
        deadline: Instant,
        tally: &mut Tally,
    ) -> Result<Vec<Question>, GenerationError> {
        let mut body = build_request(request, self.thinking);
        let mut transient_failures = 0;
        let mut repaired = false;
        loop {
            if Instant::now() >= deadline {
                return Err(GenerationError::DeadlineExceeded);
            }
            self.breaker.admit().map_err(|refused| match refused.quota {
                Some(quota) => GenerationError::QuotaExhausted {
                    quota: quota.to_string(),
                    retry_in: refused.retry_in,
                },
                None => GenerationError::unavailable(refused.to_string()),
            })?;
            match self.call(&body, request, deadline, tally).await {
                Attempt::Questions(questions) => return Ok(questions),
                // A model that moved on is never moved back to, so this loop ends.
                Attempt::NextModel => {}
                Attempt::Final(error) => return Err(error),
                Attempt::Unusable(error) if repaired => return Err(error),
                Attempt::Unusable(error) => {
                    let problem = error.message();
                    tracing::info!(problem, "asking gemini to repair its answer");
                    body = build_repair_request(request, &problem, self.thinking);
                    repaired = true;
                }
                Attempt::Transient {
                    reason,
                    source,
                    retry_after,
                } => {
                    transient_failures += 1;
                    if transient_failures >= self.retry.max_attempts {
                        return Err(GenerationError::Unavailable {
                            reason: format!("{reason} (gave up after {transient_failures} attempts)"),
                            source,
                        });
                    }
                    let wait =
                        retry_after.unwrap_or_else(|| backoff(&self.retry, transient_failures, jitter()));
                    if Instant::now() + wait >= deadline {
                        return Err(GenerationError::Unavailable {
                            reason: format!("{reason} (no time left to retry before the deadline)"),
                            source,
                        });
                    }
                    tracing::info!(
                        reason,
                        retry = transient_failures,
                        wait_ms = wait.as_millis() as u64,
                        "retrying gemini"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

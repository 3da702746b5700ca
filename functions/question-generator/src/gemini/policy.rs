//! The failure policy of docs/DESIGN.md around the calls: transient failures retried with
//! backoff (or after Gemini's `retryDelay`), one repair call for an unusable answer, the next
//! model after a 404, never past the caller's deadline, calls paced to the quota, and waiting
//! for Gemini as a whole to answer again. Kept apart from the call itself so the policy reads
//! in one screen.
//!
//! "Gemini as a whole cannot answer" is decided here, from what the environment saw rather
//! than from one reply: the circuit breaker is open, a per-minute quota asked for a wait, or
//! every call Gemini got since this request began failing failed too. Then the request waits
//! (the breaker's probes and the pace decide when calls go out) until [`Deadlines::wait_limit`],
//! and is held or answered `gemini_unavailable` by [`Deadlines::gave_up`]. A request that keeps
//! failing while Gemini answers others ends as before: `gemini_unavailable` after its attempts.

use qgen_contract::events::{GenerationRequest, Question};
use tokio::time::Instant;

use super::GeminiClient;
use super::call::Attempt;
use super::prompt::{build_repair_request, build_request};
use super::tally::Tally;
use crate::breaker::{PREPAID_CREDIT, Refused};
use crate::retry::{backoff, jitter};
use crate::source::{Deadlines, GenerationError};

impl GeminiClient {
    /// Calls until there are valid questions: transient failures retried with backoff (at
    /// most `max_attempts` calls while Gemini answers other requests), one repair call for an
    /// unusable answer, never past `deadlines.answer_by`, waiting for Gemini as a whole until
    /// `deadlines.wait_limit()`.
    pub(super) async fn generate_until(
        &self,
        request: &GenerationRequest,
        deadlines: Deadlines,
        tally: &mut Tally,
    ) -> Result<Vec<Question>, GenerationError> {
        let mut body = build_request(request, self.thinking);
        let mut transient_failures = 0;
        let mut repaired = false;
        // Gemini's answers to anyone in this environment when this request's failures began.
        let mut answered_before_failing: Option<u64> = None;
        loop {
            if Instant::now() >= deadlines.answer_by {
                return Err(GenerationError::DeadlineExceeded);
            }
            self.breaker
                .wait_for_admission(deadlines.wait_limit())
                .await
                .map_err(|refused| refusal(refused, &deadlines))?;
            self.wait_for_slot(&deadlines).await?;
            let answered_so_far = self.breaker.successes();
            match self.call(&body, request, deadlines.answer_by, tally).await {
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
                Attempt::Throttled { reason, retry_after } => {
                    if Instant::now() + retry_after >= deadlines.answer_by {
                        return Err(deadlines.gave_up(format!(
                            "{reason} (no time left to wait for the quota before the deadline)"
                        )));
                    }
                    tracing::info!(
                        wait_ms = retry_after.as_millis() as u64,
                        "gemini's per-minute quota is used up: every call of this environment waits"
                    );
                    self.pacer.pause_until(Instant::now() + retry_after);
                }
                Attempt::Transient {
                    reason,
                    source,
                    retry_after,
                } => {
                    transient_failures += 1;
                    let before = *answered_before_failing.get_or_insert(answered_so_far);
                    // Gemini answered someone since: the fault is this request's own.
                    let own = self.breaker.successes() > before;
                    let exhausted = transient_failures >= self.retry.max_attempts;
                    let wait =
                        retry_after.unwrap_or_else(|| backoff(&self.retry, transient_failures, jitter()));
                    // While Gemini answers others, a request has its attempts and the deadline;
                    // while it answers nobody, a request past its attempts goes on for as long
                    // as it may wait for Gemini (the breaker soon stops its calls).
                    let limit = if exhausted && !own {
                        deadlines.wait_limit()
                    } else {
                        deadlines.answer_by
                    };
                    if (exhausted && own) || Instant::now() + wait >= limit {
                        let why = if exhausted {
                            format!("gave up after {transient_failures} attempts")
                        } else {
                            "no time left to retry before the deadline".to_owned()
                        };
                        let reason = format!("{reason} ({why})");
                        // Held only for Gemini as a whole (see [`Deadlines::gave_up`]).
                        if !own && deadlines.holds() {
                            return Err(GenerationError::Held { reason });
                        }
                        return Err(GenerationError::Unavailable { reason, source });
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

    /// Waits for this environment's next slot of the quota (and the end of a per-minute
    /// pause), as long as it comes before the invocation's time is up.
    async fn wait_for_slot(&self, deadlines: &Deadlines) -> Result<(), GenerationError> {
        let now = Instant::now();
        let Some(slot) = self.pacer.reserve(now, deadlines.answer_by) else {
            return Err(
                deadlines.gave_up("gemini's per-minute quota leaves no call before the deadline".to_owned())
            );
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        Ok(())
    }
}

/// What a refusal of the circuit breaker comes to for a request: a trip for a quota or the
/// credit is final; an open circuit holds the request, or fails it once it has waited enough.
fn refusal(refused: Refused, deadlines: &Deadlines) -> GenerationError {
    match refused.quota {
        Some(label) if &*label == PREPAID_CREDIT => GenerationError::CreditExhausted {
            retry_in: refused.retry_in,
        },
        Some(quota) => GenerationError::QuotaExhausted {
            quota: quota.to_string(),
            retry_in: refused.retry_in,
        },
        None => deadlines.gave_up(refused.to_string()),
    }
}

//! Answering one request of the batch and its duplicates: a request answered before is
//! re-published from the idempotency store, one held by another invocation is left to it, and
//! only a request this invocation holds (or that the store cannot vouch for) is generated.

use std::time::SystemTime;

use qgen_adapters::kafka::{EventPublisher, PublishError};
use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::decode::Coordinates;
use qgen_contract::events::ResponseEvent;
use qgen_contract::order::shuffle_options;
use tokio::time::Instant;
use tracing::Instrument;

use super::plan::{Job, conflict};
use super::report::Outcome;
use super::respond::ResponseRecord;
use super::{Batch, Generator, SERVICE};
use crate::deadline;
use crate::idempotency::{Claim, IdempotencyStore};
use crate::source::{Calls, Deadlines, GenerationError, QuestionSource};

impl<S: QuestionSource, P: EventPublisher, I: IdempotencyStore> Generator<S, P, I> {
    /// Answers a request and its duplicates in the batch: from the store when it was answered
    /// before, otherwise by generating once.
    pub(super) async fn answer(
        &self,
        job: Job,
        batch: &Batch,
    ) -> Vec<(Coordinates, Result<Outcome, PublishError>)> {
        let request_id = job.request.request_id.clone();
        // The request's trace (a new one when its record had none): every log line of the span
        // and the response record carry it.
        let trace = job.origin.trace_or_new();
        // The question source fills in the call counts, latency, model and token usage.
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            trace_id = %trace.trace_id(),
            partition = job.source.partition,
            offset = job.source.offset,
            gemini_calls = tracing::field::Empty,
            gemini_latency_ms = tracing::field::Empty,
            gemini_model = tracing::field::Empty,
            prompt_tokens = tracing::field::Empty,
            cached_tokens = tracing::field::Empty,
            output_tokens = tracing::field::Empty,
            thoughts_tokens = tracing::field::Empty,
            total_tokens = tracing::field::Empty,
        );
        async {
            let claim = match self.store.claim(&request_id, &job.hash, batch.claim_until).await {
                Ok(claim) => Some(claim),
                Err(e) => {
                    // Losing a request is worse than paying for a duplicate generation.
                    tracing::warn!(error = %e, "idempotency store unavailable; generating without it");
                    None
                }
            };
            let response = match claim {
                Some(Claim::Completed(stored)) => {
                    tracing::info!(event_id = %stored.event_id, "answered before: re-publishing the stored response");
                    Metrics::new(SERVICE).count(Metric::IdempotentReplays, 1).emit();
                    Some(*stored)
                }
                Some(Claim::InProgress { until }) => {
                    let seconds_left = until
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .as_secs();
                    tracing::info!(seconds_left, "being answered by another invocation; its partition will be redelivered from here");
                    None
                }
                Some(Claim::Conflict) => {
                    tracing::warn!("request_id reused for different content");
                    Some(conflict(&job.event_id, &request_id))
                }
                Some(Claim::Acquired) | None => {
                    let Some((response, calls)) = self.generate(&job, batch).await else {
                        // Held: nothing published; the claim goes, so the redelivery may answer it.
                        if claim.is_some() {
                            self.release(&job).await;
                        }
                        return self
                            .answer_duplicates(&job, None, Ok(Outcome::Held), batch)
                            .await;
                    };
                    let record = ResponseRecord {
                        trace,
                        requested_at: job.origin.requested_at,
                        invoked_at: batch.invoked_at,
                        calls: calls.as_ref(),
                    };
                    let published = self.publish_response(&response, &record).await;
                    if claim.is_some() {
                        self.settle(&job, &response).await;
                    }
                    return self
                        .answer_duplicates(&job, Some(&response), published, batch)
                        .await;
                }
            };
            let record = ResponseRecord {
                trace,
                requested_at: job.origin.requested_at,
                invoked_at: batch.invoked_at,
                calls: None,
            };
            let published = match &response {
                Some(response) => self.publish_response(response, &record).await,
                None => Ok(Outcome::InProgress),
            };
            self.answer_duplicates(&job, response.as_ref(), published, batch)
                .await
        }
        .instrument(span)
        .await
    }

    /// Questions for the job's request, as its response event, and the model calls made; or
    /// `None` when the request is held ([`held`]).
    async fn generate(&self, job: &Job, batch: &Batch) -> Option<(ResponseEvent, Option<Calls>)> {
        let request = &job.request;
        let started = std::time::Instant::now();
        let deadlines = Deadlines {
            answer_by: batch.deadline,
            wait_until: deadline::wait_until(
                job.origin.requested_at,
                self.max_wait,
                Instant::now(),
                SystemTime::now(),
            ),
        };
        let (outcome, calls) = tokio::time::timeout_at(
            deadlines.answer_by,
            self.source.generate_reported(request, deadlines),
        )
        .await
        .unwrap_or((Err(GenerationError::DeadlineExceeded), None));
        if held(&outcome, &deadlines) {
            let waited = job
                .origin
                .requested_at
                .and_then(|at| SystemTime::now().duration_since(at).ok())
                .unwrap_or_default();
            tracing::info!(
                waited_ms = waited.as_millis() as u64,
                reason = %outcome.as_ref().err().map(GenerationError::message).unwrap_or_default(),
                "held: gemini could not answer in time; the record is redelivered"
            );
            Metrics::new(SERVICE)
                .count(Metric::Held, 1)
                .duration(Metric::HeldFor, waited)
                .emit();
            return None;
        }
        // Outcome: `completed` or the failure's stable code, a small closed set.
        let label = match &outcome {
            Ok(_) => "completed",
            Err(e) => e.code().as_str(),
        };
        Metrics::new(SERVICE)
            .dimension("Outcome", label)
            .count(Metric::Responses, 1)
            .duration(Metric::GenerationLatency, started.elapsed())
            .emit();
        match outcome {
            Ok(mut questions) => {
                // Emitted inside the span, so the usage the source recorded on it is logged.
                tracing::info!(questions = questions.len(), "generation completed");
                // Whatever the source's order, the published one says nothing about the answer.
                shuffle_options(&mut questions, &request.request_id);
                let mut response = ResponseEvent::completed(&job.event_id, &request.request_id, questions);
                response.event_data.source = self.source.label().map(str::to_owned);
                Some((response, calls))
            }
            Err(e) => {
                tracing::warn!(code = e.code().as_str(), error = e.message(), "generation failed");
                let response =
                    ResponseEvent::failed(&job.event_id, &request.request_id, e.to_response_error());
                Some((response, calls))
            }
        }
    }

    /// Gives up the claim on a request, so another invocation may answer it.
    async fn release(&self, job: &Job) {
        if let Err(e) = self.store.release(&job.request.request_id, &job.hash).await {
            // The claim expires at the deadline; the redelivery waits for it.
            tracing::warn!(error = %e, "could not release the claim in the idempotency store");
        }
    }

    /// Keeps a `completed` response for duplicates — even when publishing it failed, so the
    /// batch's retry re-publishes it without generating again — and gives up the claim on a
    /// `failed` one, so a retry of the request may succeed.
    async fn settle(&self, job: &Job, response: &ResponseEvent) {
        let request_id = &job.request.request_id;
        let result = match response.event_data.error {
            None => self.store.complete(request_id, &job.hash, response).await,
            Some(_) => return self.release(job).await,
        };
        if let Err(e) = result {
            // The claim expires at the deadline; a duplicate after it generates again.
            tracing::warn!(error = %e, "could not record the outcome in the idempotency store");
        }
    }

    /// The job's outcome followed by its duplicates': each gets the job's response (the same
    /// event), or its own `idempotency_conflict` when its content differs.
    async fn answer_duplicates(
        &self,
        job: &Job,
        response: Option<&ResponseEvent>,
        first: Result<Outcome, PublishError>,
        batch: &Batch,
    ) -> Vec<(Coordinates, Result<Outcome, PublishError>)> {
        let mut outcomes = vec![(job.source.clone(), first)];
        for duplicate in &job.duplicates {
            let record = ResponseRecord {
                trace: duplicate.origin.trace_or_new(),
                requested_at: duplicate.origin.requested_at,
                invoked_at: batch.invoked_at,
                calls: None,
            };
            let outcome = if duplicate.conflicting {
                tracing::warn!(event_id = %duplicate.event_id, "request_id reused for different content in the batch");
                let response = conflict(&duplicate.event_id, &job.request.request_id);
                self.publish_response(&response, &record).await
            } else {
                match response {
                    Some(response) => self.publish_response(response, &record).await,
                    None => Ok(Outcome::InProgress),
                }
            };
            outcomes.push((duplicate.source.clone(), outcome));
        }
        outcomes
    }
}

/// Whether a request that came to `outcome` is held rather than answered (pure): the source
/// said so, or the invocation's time ran out while the request may still wait. Every other
/// failure is answered, as it always was.
pub(super) fn held(
    outcome: &Result<Vec<qgen_contract::events::Question>, GenerationError>,
    deadlines: &Deadlines,
) -> bool {
    match outcome {
        Err(GenerationError::Held { .. }) => true,
        Err(GenerationError::DeadlineExceeded) => deadlines.holds(),
        _ => false,
    }
}

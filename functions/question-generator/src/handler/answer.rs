//! Answering one request of the batch and its duplicates, around the pure decisions of
//! `decision`: the idempotency store's claim decides between re-publishing a stored answer,
//! leaving the request to the invocation that holds it, a conflict, and generating; the answer
//! is published, the store is told how a claimed request ended, and the duplicates get the same
//! answer.

use std::time::SystemTime;

use qgen_adapters::kafka::{EventPublisher, PublishError};
use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::decode::Coordinates;
use qgen_contract::events::ResponseEvent;
use qgen_contract::metrics::GENERATOR;
use qgen_contract::order::shuffle_options;
use qgen_contract::trace::TraceContext;
use tokio::time::Instant;
use tracing::Instrument;

use super::decision::{Answer, Decision, Settlement, decide, held, settlement};
use super::plan::{Job, conflict};
use super::report::Outcome;
use super::respond::ResponseRecord;
use super::{Batch, Generator};
use crate::deadline;
use crate::idempotency::{Claim, IdempotencyStore};
use crate::source::{Deadlines, GenerationError, QuestionSource};

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
            let (answer, claimed) = match decide(self.claim(&job, batch).await) {
                Decision::Replay(stored) => {
                    tracing::info!(event_id = %stored.event_id, "answered before: re-publishing the stored response");
                    Metrics::new(GENERATOR).count(Metric::IdempotentReplays, 1).emit();
                    (Answer::Publish(stored, None), false)
                }
                Decision::LeaveToOther { until } => {
                    let seconds_left = until
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .as_secs();
                    tracing::info!(seconds_left, "being answered by another invocation; its partition will be redelivered from here");
                    (Answer::InProgress, false)
                }
                Decision::Conflict => {
                    tracing::warn!("request_id reused for different content");
                    let response = conflict(&job.event_id, &request_id);
                    (Answer::Publish(Box::new(response), None), false)
                }
                Decision::Generate { claimed } => (self.generate(&job, batch).await, claimed),
            };
            // Published before the store hears of it: a `completed` answer is kept even when
            // publishing failed, so the batch's retry re-publishes it without generating again.
            let first = self.publish_answer(&answer, &job, trace, batch).await;
            self.settle(&job, settlement(claimed, &answer)).await;
            self.answer_duplicates(&job, answer.response(), first, batch)
                .await
        }
        .instrument(span)
        .await
    }

    /// The store's claim on the job's request, until this invocation's deadline; `None` when
    /// there is no store or it did not answer.
    async fn claim(&self, job: &Job, batch: &Batch) -> Option<Claim> {
        let store = self.store.as_ref()?;
        match store
            .claim(&job.request.request_id, &job.hash, batch.claim_until)
            .await
        {
            Ok(claim) => Some(claim),
            Err(e) => {
                // Losing a request is worse than paying for a duplicate generation.
                tracing::warn!(error = %e, "idempotency store unavailable; generating without it");
                None
            }
        }
    }

    /// Publishes the job's own answer, in its request's trace; nothing for one held or left to
    /// another invocation.
    async fn publish_answer(
        &self,
        answer: &Answer,
        job: &Job,
        trace: TraceContext,
        batch: &Batch,
    ) -> Result<Outcome, PublishError> {
        match answer {
            Answer::Publish(response, calls) => {
                let record = ResponseRecord {
                    trace,
                    requested_at: job.origin.requested_at,
                    invoked_at: batch.invoked_at,
                    calls: calls.as_ref(),
                };
                self.publish_response(response, &record).await
            }
            Answer::Held => Ok(Outcome::Held),
            Answer::InProgress => Ok(Outcome::InProgress),
        }
    }

    /// Questions for the job's request, as its response event, and the model calls made; or
    /// [`Answer::Held`] ([`held`]).
    async fn generate(&self, job: &Job, batch: &Batch) -> Answer {
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
            Metrics::new(GENERATOR)
                .count(Metric::Held, 1)
                .duration(Metric::HeldFor, waited)
                .emit();
            return Answer::Held;
        }
        // Outcome: `completed` or the failure's stable code, a small closed set.
        let label = match &outcome {
            Ok(_) => "completed",
            Err(e) => e.code().as_str(),
        };
        Metrics::new(GENERATOR)
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
                Answer::Publish(Box::new(response), calls)
            }
            Err(e) => {
                tracing::warn!(code = e.code().as_str(), error = e.message(), "generation failed");
                let response =
                    ResponseEvent::failed(&job.event_id, &request.request_id, e.to_response_error());
                Answer::Publish(Box::new(response), calls)
            }
        }
    }

    /// Tells the store how a claimed request ended ([`settlement`]): keeps a `completed` answer
    /// for duplicates, or gives up the claim so a retry or the redelivery may answer.
    async fn settle(&self, job: &Job, settled: Settlement<'_>) {
        let Some(store) = &self.store else { return };
        let request_id = &job.request.request_id;
        match settled {
            Settlement::Keep(response) => {
                if let Err(e) = store.complete(request_id, &job.hash, response).await {
                    // The claim expires at the deadline; a duplicate after it generates again.
                    tracing::warn!(error = %e, "could not record the outcome in the idempotency store");
                }
            }
            Settlement::Release => {
                if let Err(e) = store.release(request_id, &job.hash).await {
                    // The claim expires at the deadline; the redelivery waits for it.
                    tracing::warn!(error = %e, "could not release the claim in the idempotency store");
                }
            }
            Settlement::Nothing => {}
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

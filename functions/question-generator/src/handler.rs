//! The batch handler: decode every record, generate questions for every request concurrently
//! (at most `GENERATION_CONCURRENCY` at a time), publish one response per request and send
//! poison to the DLQ.
//!
//! The handler never fails the whole batch for one record. It answers the MSK trigger with a
//! partial batch response ([`KafkaBatchResponse`], `FunctionResponseTypes:
//! [ReportBatchItemFailures]` in `template.yaml`): for each partition where a record could not be
//! published, or is being answered by another invocation, the lowest such offset. The trigger
//! commits everything before it and redelivers the partition from there; the other partitions
//! are committed whole. A retry re-publishes what was answered (from the idempotency store when
//! one is configured), or takes over a request whose claim expired. Everything about a single
//! request ends as a `failed` response instead. Invocation-wide faults (an event the runtime
//! cannot parse, a crash, a timeout) are the runtime's `Err`, and the trigger retries the batch.
//!
//! Duplicates are answered once: within a batch, requests are grouped by `request_id` before
//! anything is generated; across batches, an [`IdempotencyStore`] remembers the answers.

use crate::config::GeneratorConfig;
use aws_lambda_events::event::kafka::KafkaEvent;
use futures::StreamExt;
use qgen_adapters::kafka::{EventPublisher, OutboundRecord, PublishError, publish_event};
use qgen_adapters::telemetry::Metrics;
use qgen_contract::events::{ErrorCode, GenerationRequest, ResponseError, ResponseEvent};
use qgen_contract::msk::KafkaBatchResponse;
use qgen_contract::validation::{Limits, ValidationError};
use serde::Serialize;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::Instrument;

use crate::idempotency::{Claim, IdempotencyStore, NoStore, payload_hash};
use crate::source::{GenerationError, QuestionSource};
use qgen_contract::decode::{Coordinates, Decoded, decode_batch};

/// The `Service` dimension of this function's metrics.
pub const SERVICE: &str = "question-generator";

/// DLQ header: the topic the record came from.
pub const DLQ_SOURCE_TOPIC: &str = "dlq-source-topic";
/// DLQ header: the partition the record came from.
pub const DLQ_SOURCE_PARTITION: &str = "dlq-source-partition";
/// DLQ header: the offset the record had.
pub const DLQ_SOURCE_OFFSET: &str = "dlq-source-offset";
/// DLQ header: why it is poison.
pub const DLQ_ERROR: &str = "dlq-error";

/// What a batch came to. [`BatchReport::response`] is what the function returns to the trigger.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// `completed` responses published.
    pub completed: usize,
    /// `failed` responses published.
    pub failed: usize,
    /// Records sent to the DLQ.
    pub dead_lettered: usize,
    /// Records whose response (or DLQ record) could not be published.
    pub unpublished: usize,
    /// Records left unanswered because another invocation holds their request.
    pub in_progress: usize,
    /// The partitions to redeliver, each from its first record left unanswered.
    pub response: KafkaBatchResponse,
}

impl BatchReport {
    /// The partial batch response for the trigger.
    pub fn response(&self) -> &KafkaBatchResponse {
        &self.response
    }
}

enum Outcome {
    Completed,
    Failed,
    DeadLettered,
    /// Another invocation holds the request; nothing was published.
    InProgress,
}

/// A request of the batch and the later records of the batch with the same `request_id`.
struct Job {
    source: Coordinates,
    event_id: String,
    request: GenerationRequest,
    hash: String,
    duplicates: Vec<Duplicate>,
}

/// A later record of the batch with the `request_id` of a [`Job`].
struct Duplicate {
    source: Coordinates,
    event_id: String,
    /// Its content differs from the job's: it gets `idempotency_conflict`.
    conflicting: bool,
}

/// What the batch is worked as: requests de-duplicated into jobs, the rest as decoded.
enum Work {
    Request(Job),
    Invalid {
        source: Coordinates,
        event_id: String,
        request_id: String,
        error: ValidationError,
    },
    Poison {
        source: Coordinates,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
        reason: String,
    },
}

/// Groups the batch's requests by `request_id`, keeping the first of each (pure).
fn group(decoded: Vec<Decoded>) -> Vec<Work> {
    let mut work: Vec<Work> = Vec::with_capacity(decoded.len());
    let mut by_id: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for record in decoded {
        let (source, event_id, request) = match record {
            Decoded::Request {
                source,
                event_id,
                request,
            } => (source, event_id, request),
            Decoded::Invalid {
                source,
                event_id,
                request_id,
                error,
            } => {
                work.push(Work::Invalid {
                    source,
                    event_id,
                    request_id,
                    error,
                });
                continue;
            }
            Decoded::Poison {
                source,
                key,
                value,
                headers,
                reason,
            } => {
                work.push(Work::Poison {
                    source,
                    key,
                    value,
                    headers,
                    reason,
                });
                continue;
            }
        };
        let hash = payload_hash(&request);
        if let Some(Work::Request(job)) = by_id.get(&request.request_id).and_then(|&i| work.get_mut(i)) {
            job.duplicates.push(Duplicate {
                source,
                event_id,
                conflicting: job.hash != hash,
            });
            continue;
        }
        by_id.insert(request.request_id.clone(), work.len());
        work.push(Work::Request(Job {
            source,
            event_id,
            request,
            hash,
            duplicates: Vec::new(),
        }));
    }
    work
}

/// The `failed` response to a request that reused the `request_id` of other content.
fn conflict(event_id: &str, request_id: &str) -> ResponseEvent {
    ResponseEvent::failed(
        event_id,
        request_id,
        ResponseError {
            code: ErrorCode::IdempotencyConflict,
            message: format!("request_id {request_id} was already used for a request with different content"),
            retryable: false,
        },
    )
}

/// The generator: a question source, a publisher and an idempotency store built once per
/// execution environment.
pub struct Generator<S, P, I = NoStore> {
    source: S,
    publisher: P,
    store: I,
    response_topic: String,
    dlq_topic: String,
    concurrency: usize,
    limits: Limits,
    publish_reserve: Duration,
}

impl<S: QuestionSource, P: EventPublisher> Generator<S, P> {
    /// A generator with the topics, concurrency and limits of `config`, and no idempotency
    /// store (duplicates within a batch are still answered once).
    pub fn new(source: S, publisher: P, config: &GeneratorConfig) -> Self {
        Generator {
            source,
            publisher,
            store: NoStore,
            response_topic: config.kafka.response_topic.clone(),
            dlq_topic: config.kafka.dlq_topic.clone(),
            concurrency: config.concurrency.max(1),
            limits: config.limits,
            // Generation stops early enough to publish the outcome within the invocation.
            publish_reserve: config.kafka.message_timeout + Duration::from_millis(500),
        }
    }
}

impl<S: QuestionSource, P: EventPublisher, I: IdempotencyStore> Generator<S, P, I> {
    /// The same generator, remembering answers in `store` so duplicates across batches are not
    /// generated again.
    pub fn with_idempotency<J: IdempotencyStore>(self, store: J) -> Generator<S, P, J> {
        Generator {
            source: self.source,
            publisher: self.publisher,
            store,
            response_topic: self.response_topic,
            dlq_topic: self.dlq_topic,
            concurrency: self.concurrency,
            limits: self.limits,
            publish_reserve: self.publish_reserve,
        }
    }

    /// Handles one MSK batch that must be done by `deadline`.
    #[tracing::instrument(skip_all, fields(records = tracing::field::Empty))]
    pub async fn handle(&self, event: &KafkaEvent, deadline: Instant) -> BatchReport {
        let decoded = decode_batch(event, &self.limits);
        let records = decoded.len();
        tracing::Span::current().record("records", records);
        Metrics::new(SERVICE).count("Records", records as u64).emit();
        let generation_deadline = deadline
            .checked_sub(self.publish_reserve)
            .unwrap_or_else(Instant::now);
        // A claim lasts until this invocation's deadline: after it, a retry may take over.
        let claim_until = SystemTime::now() + deadline.saturating_duration_since(Instant::now());

        let outcomes: Vec<(Coordinates, Result<Outcome, PublishError>)> =
            futures::stream::iter(group(decoded))
                .map(|work| self.process(work, generation_deadline, claim_until))
                .buffer_unordered(self.concurrency)
                .flat_map(futures::stream::iter)
                .collect()
                .await;

        let mut report = BatchReport {
            records,
            ..BatchReport::default()
        };
        let mut first_error = None;
        let mut unanswered = Vec::new();
        for (source, outcome) in outcomes {
            match outcome {
                Ok(Outcome::Completed) => report.completed += 1,
                Ok(Outcome::Failed) => report.failed += 1,
                Ok(Outcome::DeadLettered) => report.dead_lettered += 1,
                Ok(Outcome::InProgress) => {
                    report.in_progress += 1;
                    unanswered.push(source);
                }
                Err(e) => {
                    report.unpublished += 1;
                    unanswered.push(source);
                    first_error.get_or_insert(e);
                }
            }
        }
        report.response = KafkaBatchResponse::retry_from(
            unanswered
                .iter()
                .map(|c| (c.topic.as_str(), c.partition, c.offset)),
        );
        let retry: Vec<String> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| {
                format!(
                    "{}@{}",
                    f.item_identifier.topic_partition, f.item_identifier.offset
                )
            })
            .collect();
        if let Some(first) = &first_error {
            tracing::error!(
                unpublished = report.unpublished,
                in_progress = report.in_progress,
                records,
                ?retry,
                error = %first,
                "batch not fully published; partitions to redeliver from topic-partition@offset"
            );
        } else if report.in_progress > 0 {
            // Expected after a crash or a rebalance: the redelivery answers these records.
            tracing::warn!(
                in_progress = report.in_progress,
                records,
                ?retry,
                "records left to the invocations answering them; partitions to redeliver from topic-partition@offset"
            );
        } else {
            tracing::info!(
                completed = report.completed,
                failed = report.failed,
                dead_lettered = report.dead_lettered,
                "batch done"
            );
        }
        report
    }

    async fn process(
        &self,
        work: Work,
        deadline: Instant,
        claim_until: SystemTime,
    ) -> Vec<(Coordinates, Result<Outcome, PublishError>)> {
        match work {
            Work::Request(job) => self.answer(job, deadline, claim_until).await,
            Work::Invalid {
                source,
                event_id,
                request_id,
                error,
            } => vec![(source, self.invalid(&event_id, &request_id, &error).await)],
            Work::Poison {
                source,
                key,
                value,
                headers,
                reason,
            } => {
                let outcome = self
                    .dead_letter(&source, key.as_deref(), value.as_deref(), &headers, &reason)
                    .await;
                vec![(source, outcome)]
            }
        }
    }

    /// Answers a request and its duplicates in the batch: from the store when it was answered
    /// before, otherwise by generating once.
    async fn answer(
        &self,
        job: Job,
        deadline: Instant,
        claim_until: SystemTime,
    ) -> Vec<(Coordinates, Result<Outcome, PublishError>)> {
        let request_id = job.request.request_id.clone();
        // The question source fills in the call counts, latency and token usage.
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            partition = job.source.partition,
            offset = job.source.offset,
            gemini_calls = tracing::field::Empty,
            gemini_latency_ms = tracing::field::Empty,
            prompt_tokens = tracing::field::Empty,
            output_tokens = tracing::field::Empty,
            total_tokens = tracing::field::Empty,
        );
        async {
            let claim = match self.store.claim(&request_id, &job.hash, claim_until).await {
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
                    Metrics::new(SERVICE).count("IdempotentReplays", 1).emit();
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
                    let response = self.generate(&job, deadline).await;
                    let published = self.publish_response(&response).await;
                    if claim.is_some() {
                        self.settle(&job, &response).await;
                    }
                    return self.answer_duplicates(&job, Some(&response), published).await;
                }
            };
            let published = match &response {
                Some(response) => self.publish_response(response).await,
                None => Ok(Outcome::InProgress),
            };
            self.answer_duplicates(&job, response.as_ref(), published).await
        }
        .instrument(span)
        .await
    }

    /// Questions for the job's request, as its response event.
    async fn generate(&self, job: &Job, deadline: Instant) -> ResponseEvent {
        let request = &job.request;
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout_at(deadline, self.source.generate(request, deadline))
            .await
            .unwrap_or(Err(GenerationError::DeadlineExceeded));
        // Outcome: `completed` or the failure's stable code, a small closed set.
        let label = match &outcome {
            Ok(_) => "completed",
            Err(e) => e.code().as_str(),
        };
        Metrics::new(SERVICE)
            .dimension("Outcome", label)
            .count("Responses", 1)
            .duration("GenerationLatency", started.elapsed())
            .emit();
        match outcome {
            Ok(questions) => {
                // Emitted inside the span, so the usage the source recorded on it is logged.
                tracing::info!(questions = questions.len(), "generation completed");
                let mut response = ResponseEvent::completed(&job.event_id, &request.request_id, questions);
                response.event_data.source = self.source.label().map(str::to_owned);
                response
            }
            Err(e) => {
                tracing::warn!(code = e.code().as_str(), error = %e, "generation failed");
                ResponseEvent::failed(&job.event_id, &request.request_id, e.to_response_error())
            }
        }
    }

    /// Keeps a `completed` response for duplicates — even when publishing it failed, so the
    /// batch's retry re-publishes it without generating again — and gives up the claim on a
    /// `failed` one, so a retry of the request may succeed.
    async fn settle(&self, job: &Job, response: &ResponseEvent) {
        let request_id = &job.request.request_id;
        let result = match response.event_data.error {
            None => self.store.complete(request_id, &job.hash, response).await,
            Some(_) => self.store.release(request_id, &job.hash).await,
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
    ) -> Vec<(Coordinates, Result<Outcome, PublishError>)> {
        let mut outcomes = vec![(job.source.clone(), first)];
        for duplicate in &job.duplicates {
            let outcome = if duplicate.conflicting {
                tracing::warn!(event_id = %duplicate.event_id, "request_id reused for different content in the batch");
                self.publish_response(&conflict(&duplicate.event_id, &job.request.request_id))
                    .await
            } else {
                match response {
                    Some(response) => self.publish_response(response).await,
                    None => Ok(Outcome::InProgress),
                }
            };
            outcomes.push((duplicate.source.clone(), outcome));
        }
        outcomes
    }

    async fn invalid(
        &self,
        event_id: &str,
        request_id: &str,
        error: &ValidationError,
    ) -> Result<Outcome, PublishError> {
        tracing::info!(request_id = %request_id, field = %error.field, "invalid request");
        Metrics::new(SERVICE)
            .dimension("Outcome", ErrorCode::InvalidRequest.as_str())
            .count("Responses", 1)
            .emit();
        let response = ResponseEvent::failed(
            event_id,
            request_id,
            ResponseError {
                code: ErrorCode::InvalidRequest,
                message: error.to_string(),
                retryable: false,
            },
        );
        self.publish_response(&response).await
    }

    async fn publish_response(&self, response: &ResponseEvent) -> Result<Outcome, PublishError> {
        let data = &response.event_data;
        let delivered =
            publish_event(&self.publisher, &self.response_topic, &data.request_id, response).await?;
        tracing::info!(
            request_id = %data.request_id,
            event_id = %response.event_id,
            status = ?data.status,
            partition = delivered.partition,
            offset = delivered.offset,
            "response published"
        );
        Ok(match data.error {
            None => Outcome::Completed,
            Some(_) => Outcome::Failed,
        })
    }

    async fn dead_letter(
        &self,
        source: &Coordinates,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        original_headers: &[(String, Vec<u8>)],
        reason: &str,
    ) -> Result<Outcome, PublishError> {
        tracing::warn!(
            topic = %source.topic,
            partition = source.partition,
            offset = source.offset,
            reason,
            "poison record sent to the DLQ"
        );
        Metrics::new(SERVICE).count("DeadLettered", 1).emit();
        let partition = source.partition.to_string();
        let offset = source.offset.to_string();
        let mut headers: Vec<(&str, &[u8])> = original_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        headers.extend([
            (DLQ_SOURCE_TOPIC, source.topic.as_bytes()),
            (DLQ_SOURCE_PARTITION, partition.as_bytes()),
            (DLQ_SOURCE_OFFSET, offset.as_bytes()),
            (DLQ_ERROR, reason.as_bytes()),
        ]);
        self.publisher
            .publish(OutboundRecord {
                topic: &self.dlq_topic,
                key,
                payload: value,
                headers: &headers,
            })
            .await?;
        Ok(Outcome::DeadLettered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_contract::events::Difficulty;

    fn request(offset: i64, request_id: &str, topic: &str) -> Decoded {
        Decoded::Request {
            source: Coordinates {
                topic: "question.request".into(),
                partition: 0,
                offset,
            },
            event_id: format!("evt-{offset}"),
            request: GenerationRequest {
                request_id: request_id.into(),
                topic: topic.into(),
                num_questions: 1,
                difficulty: Difficulty::Easy,
                context: None,
            },
        }
    }

    #[test]
    fn grouping_keeps_the_first_of_each_request_id_and_flags_other_content() {
        let batch = vec![
            request(1, "a", "Loops"),
            request(2, "b", "Joins"),
            request(3, "a", "Loops"),
            request(4, "a", "Closures"),
        ];

        let work = group(batch);

        let jobs: Vec<(&str, Vec<(&str, bool)>)> = work
            .iter()
            .filter_map(|w| match w {
                Work::Request(job) => Some((
                    job.event_id.as_str(),
                    job.duplicates
                        .iter()
                        .map(|d| (d.event_id.as_str(), d.conflicting))
                        .collect(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            jobs,
            [
                ("evt-1", vec![("evt-3", false), ("evt-4", true)]),
                ("evt-2", vec![])
            ]
        );
    }
}

//! The batch handler: decode every record, generate questions for every request concurrently
//! (at most `GENERATION_CONCURRENCY` at a time), publish one response per request and send
//! poison to the DLQ.
//!
//! The handler never fails the whole batch for one record. It answers the MSK trigger with a
//! partial batch response ([`qgen_contract::msk::KafkaBatchResponse`], `FunctionResponseTypes:
//! [ReportBatchItemFailures]` in `template.yaml`): for each partition where a record could not be
//! published, or is being answered by another invocation, the lowest such offset. The trigger
//! commits everything before it and redelivers the partition from there; the other partitions
//! are committed whole. A retry re-publishes what was answered (from the idempotency store when
//! one is configured), or takes over a request whose claim expired. Everything about a single
//! request ends as a `failed` response instead, but for one Gemini as a whole could not answer
//! in time while it may still wait (`GEMINI_MAX_WAIT_SECONDS`): that one is *held*, named in the
//! partial batch response like an unpublished one, and waits in Kafka. Invocation-wide faults (an event the runtime
//! cannot parse, a crash, a timeout) are the runtime's `Err`, and the trigger retries the batch.
//!
//! Duplicates are answered once: within a batch, requests are grouped by `request_id` before
//! anything is generated; across batches, an [`IdempotencyStore`] remembers the answers.
//!
//! # Layout
//!
//! [`Generator`]'s methods are split by step over three files: here, the batch (plan it, work it
//! concurrently, answer the invalid requests, dead-letter the poison, report); `answer`, one
//! request; `respond`, publishing one response.
//!
//! - `plan`: the records as work, duplicates grouped under the first of their `request_id` (pure).
//! - `answer`: one request: the idempotency claim, generation, and its duplicates' answers,
//!   around the decisions of `decision`.
//! - `decision`: what to do from the store's claim, whether a request is held, what the store
//!   is told afterwards (pure).
//! - `report`: the [`BatchReport`] and the partial batch response it carries (pure).
//! - `dead_letter`: the DLQ copy of a poison record and its `dlq-*` headers (pure).
//! - `respond`: publishing a response: its trace, its timeline headers, the request-to-response
//!   latency.

mod answer;
mod dead_letter;
mod decision;
mod plan;
mod report;
mod respond;

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::StreamExt;
use lambda_runtime::LambdaEvent;
use qgen_adapters::kafka::{EventPublisher, OutboundRecord, PublishError};
use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::decode::{Coordinates, InvalidRequest, Origin, PoisonRecord, decode_batch};
use qgen_contract::events::{ErrorCode, ResponseError, ResponseEvent};
use qgen_contract::metrics::GENERATOR;
use qgen_contract::validation::{Limits, ValidationError};
use tokio::time::Instant;

use crate::config::GeneratorConfig;
use crate::deadline;
use crate::idempotency::{DynamoDbStore, IdempotencyStore};
use crate::source::QuestionSource;
use dead_letter::dlq_headers;
use plan::{Work, group};
use report::Outcome;
use respond::ResponseRecord;

pub use report::BatchReport;

/// The invocation, as each of its records sees it.
pub(super) struct Batch {
    /// When generation must stop, leaving time to publish.
    pub(super) deadline: Instant,
    /// How long an idempotency claim made now lasts.
    pub(super) claim_until: SystemTime,
    /// When the invocation started.
    pub(super) invoked_at: SystemTime,
}

/// The generator: a question source, a publisher and an idempotency store built once per
/// execution environment.
pub struct Generator<S, P, I = DynamoDbStore> {
    source: S,
    publisher: P,
    /// `None`: no store; every request is generated (duplicates within a batch still once).
    store: Option<I>,
    response_topic: String,
    dlq_topic: String,
    concurrency: usize,
    limits: Limits,
    publish_reserve: Duration,
    /// `GEMINI_MAX_WAIT_SECONDS`: how long a request may be held.
    max_wait: Duration,
}

impl<S: QuestionSource, P: EventPublisher> Generator<S, P> {
    /// A generator with the topics, concurrency and limits of `config`, and no idempotency
    /// store (duplicates within a batch are still answered once).
    pub fn new(source: S, publisher: P, config: &GeneratorConfig) -> Self {
        Generator {
            source,
            publisher,
            store: None,
            response_topic: config.kafka.response_topic.clone(),
            dlq_topic: config.kafka.dlq_topic.clone(),
            concurrency: config.concurrency.max(1),
            limits: config.limits,
            // Generation stops early enough to publish the outcome within the invocation.
            publish_reserve: deadline::publish_reserve(config.kafka.message_timeout),
            max_wait: config.max_wait,
        }
    }
}

impl<S: QuestionSource, P: EventPublisher, I: IdempotencyStore> Generator<S, P, I> {
    /// The same generator, remembering answers in `store` so duplicates across batches are not
    /// generated again; `None` (what [`crate::idempotency::store_from_env`] gives without
    /// `IDEMPOTENCY_TABLE`) keeps it without a store.
    pub fn with_idempotency<J: IdempotencyStore>(self, store: Option<J>) -> Generator<S, P, J> {
        Generator {
            source: self.source,
            publisher: self.publisher,
            store,
            response_topic: self.response_topic,
            dlq_topic: self.dlq_topic,
            concurrency: self.concurrency,
            limits: self.limits,
            publish_reserve: self.publish_reserve,
            max_wait: self.max_wait,
        }
    }

    /// Handles one invocation of the Lambda runtime: its batch, done by the invocation's
    /// deadline (`Lambda-Runtime-Deadline-Ms`, epoch milliseconds; see [`deadline::instant_of`]).
    pub async fn invoke(&self, event: &LambdaEvent<KafkaEvent>) -> BatchReport {
        let deadline = deadline::instant_of(event.context.deadline);
        self.handle(&event.payload, deadline).await
    }

    /// Handles one MSK batch that must be done by `deadline`.
    #[tracing::instrument(skip_all, fields(records = tracing::field::Empty))]
    pub async fn handle(&self, event: &KafkaEvent, deadline: Instant) -> BatchReport {
        let invoked_at = SystemTime::now();
        let decoded = decode_batch(event, &self.limits);
        let records = decoded.len();
        tracing::Span::current().record("records", records);
        Metrics::new(GENERATOR)
            .count(Metric::Records, records as u64)
            .emit();
        let generation_deadline = deadline::generation_deadline(deadline, self.publish_reserve);
        // A claim lasts until this invocation's deadline: after it, a retry may take over.
        let claim_until = deadline::claim_until(deadline, Instant::now(), SystemTime::now());
        let batch = Batch {
            deadline: generation_deadline,
            claim_until,
            invoked_at,
        };

        let outcomes: Vec<(Coordinates, Result<Outcome, PublishError>)> =
            futures::stream::iter(group(decoded))
                .map(|work| self.process(work, &batch))
                .buffer_unordered(self.concurrency)
                .flat_map(futures::stream::iter)
                .collect()
                .await;

        let (report, first_error) = BatchReport::of(records, outcomes);
        report.log(first_error.as_ref());
        report
    }

    /// Works one item of the plan; a job answers its duplicates too, hence several outcomes.
    async fn process(&self, work: Work, batch: &Batch) -> Vec<(Coordinates, Result<Outcome, PublishError>)> {
        match work {
            Work::Request(job) => self.answer(job, batch).await,
            Work::Invalid(InvalidRequest {
                source,
                event_id,
                request_id,
                error,
                origin,
            }) => vec![(
                source,
                self.invalid(&event_id, &request_id, &error, origin, batch).await,
            )],
            Work::Poison(PoisonRecord {
                source,
                key,
                value,
                headers,
                reason,
            }) => {
                let outcome = self
                    .dead_letter(&source, key.as_deref(), value.as_deref(), &headers, &reason)
                    .await;
                vec![(source, outcome)]
            }
        }
    }

    /// The `invalid_request` response to a request that failed validation.
    async fn invalid(
        &self,
        event_id: &str,
        request_id: &str,
        error: &ValidationError,
        origin: Origin,
        batch: &Batch,
    ) -> Result<Outcome, PublishError> {
        let trace = origin.trace_or_new();
        tracing::info!(request_id = %request_id, trace_id = %trace.trace_id(), field = %error.field, "invalid request");
        Metrics::new(GENERATOR)
            .dimension("Outcome", ErrorCode::InvalidRequest.as_str())
            .count(Metric::Responses, 1)
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
        let record = ResponseRecord {
            trace,
            requested_at: origin.requested_at,
            invoked_at: batch.invoked_at,
            calls: None,
        };
        self.publish_response(&response, &record).await
    }

    /// Sends a poison record, as it came, to the DLQ.
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
        Metrics::new(GENERATOR).count(Metric::DeadLettered, 1).emit();
        let headers = dlq_headers(source, original_headers, reason);
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
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

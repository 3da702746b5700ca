//! The batch handler: decode every record, generate questions for every request concurrently
//! (at most `GENERATION_CONCURRENCY` at a time), publish one response per request and send
//! poison to the DLQ.
//!
//! The event-source mapping retries a whole batch when the handler returns `Err`, so `Err` is
//! kept for the one fault a retry can fix: a record that could not be published. Everything
//! about a single request ends as a `failed` response instead.

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::StreamExt;
use qgen::config::GeneratorConfig;
use qgen::events::{ErrorCode, ResponseError, ResponseEvent};
use qgen::kafka::{EventPublisher, OutboundRecord, PublishError, publish_event};
use qgen::telemetry::Metrics;
use qgen::validation::Limits;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

use crate::decode::{Coordinates, Decoded, decode_batch};
use crate::source::{GenerationError, QuestionSource};

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

/// What a batch came to; returned to the runtime, so `cargo lambda invoke` shows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// `completed` responses published.
    pub completed: usize,
    /// `failed` responses published.
    pub failed: usize,
    /// Records sent to the DLQ.
    pub dead_lettered: usize,
}

/// The batch must be retried: some record could not be published.
#[derive(Debug, thiserror::Error)]
#[error("{failures} of {records} records could not be published; the batch will be retried")]
pub struct BatchError {
    /// Records whose publish failed.
    pub failures: usize,
    /// Records in the batch.
    pub records: usize,
    /// The first failure.
    #[source]
    pub first: PublishError,
}

enum Outcome {
    Completed,
    Failed,
    DeadLettered,
}

/// The generator: a question source and a publisher built once per execution environment.
pub struct Generator<S, P> {
    source: S,
    publisher: P,
    response_topic: String,
    dlq_topic: String,
    concurrency: usize,
    limits: Limits,
    publish_reserve: Duration,
}

impl<S: QuestionSource, P: EventPublisher> Generator<S, P> {
    /// A generator with the topics, concurrency and limits of `config`.
    pub fn new(source: S, publisher: P, config: &GeneratorConfig) -> Self {
        Generator {
            source,
            publisher,
            response_topic: config.kafka.response_topic.clone(),
            dlq_topic: config.kafka.dlq_topic.clone(),
            concurrency: config.concurrency.max(1),
            limits: config.limits,
            // Generation stops early enough to publish the outcome within the invocation.
            publish_reserve: config.kafka.message_timeout + Duration::from_millis(500),
        }
    }

    /// Handles one MSK batch that must be done by `deadline`.
    #[tracing::instrument(skip_all, fields(records = tracing::field::Empty))]
    pub async fn handle(&self, event: &KafkaEvent, deadline: Instant) -> Result<BatchReport, BatchError> {
        let decoded = decode_batch(event, &self.limits);
        let records = decoded.len();
        tracing::Span::current().record("records", records);
        Metrics::new(SERVICE).count("Records", records as u64).emit();
        let generation_deadline = deadline
            .checked_sub(self.publish_reserve)
            .unwrap_or_else(Instant::now);

        let outcomes: Vec<Result<Outcome, PublishError>> = futures::stream::iter(decoded)
            .map(|record| self.process(record, generation_deadline))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let mut report = BatchReport {
            records,
            ..BatchReport::default()
        };
        let mut first_error = None;
        let mut failures = 0;
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Completed) => report.completed += 1,
                Ok(Outcome::Failed) => report.failed += 1,
                Ok(Outcome::DeadLettered) => report.dead_lettered += 1,
                Err(e) => {
                    failures += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(first) = first_error {
            tracing::error!(failures, records, error = %first, "batch not fully published");
            return Err(BatchError {
                failures,
                records,
                first,
            });
        }
        tracing::info!(
            completed = report.completed,
            failed = report.failed,
            dead_lettered = report.dead_lettered,
            "batch done"
        );
        Ok(report)
    }

    async fn process(&self, record: Decoded, deadline: Instant) -> Result<Outcome, PublishError> {
        match record {
            Decoded::Request {
                event_id,
                request,
                source,
            } => {
                // The question source fills in the call counts, latency and token usage.
                let span = tracing::info_span!(
                    "request",
                    request_id = %request.request_id,
                    offset = source.offset,
                    gemini_calls = tracing::field::Empty,
                    gemini_latency_ms = tracing::field::Empty,
                    prompt_tokens = tracing::field::Empty,
                    output_tokens = tracing::field::Empty,
                    total_tokens = tracing::field::Empty,
                );
                async {
                    let started = std::time::Instant::now();
                    let outcome = tokio::time::timeout_at(deadline, self.source.generate(&request, deadline))
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
                    let response = match outcome {
                        Ok(questions) => {
                            // Emitted inside the span, so the usage the source recorded on it is logged.
                            tracing::info!(questions = questions.len(), "generation completed");
                            let mut response =
                                ResponseEvent::completed(&event_id, &request.request_id, questions);
                            response.event_data.source = self.source.label().map(str::to_owned);
                            response
                        }
                        Err(e) => {
                            tracing::warn!(code = e.code().as_str(), error = %e, "generation failed");
                            ResponseEvent::failed(&event_id, &request.request_id, e.to_response_error())
                        }
                    };
                    self.publish_response(&response).await
                }
                .instrument(span)
                .await
            }
            Decoded::Invalid {
                event_id,
                request_id,
                error,
                ..
            } => {
                tracing::info!(request_id = %request_id, field = %error.field, "invalid request");
                Metrics::new(SERVICE)
                    .dimension("Outcome", ErrorCode::InvalidRequest.as_str())
                    .count("Responses", 1)
                    .emit();
                let response = ResponseEvent::failed(
                    &event_id,
                    &request_id,
                    ResponseError {
                        code: ErrorCode::InvalidRequest,
                        message: error.to_string(),
                        retryable: false,
                    },
                );
                self.publish_response(&response).await
            }
            Decoded::Poison {
                source,
                key,
                value,
                headers,
                reason,
            } => {
                self.dead_letter(&source, key.as_deref(), value.as_deref(), &headers, &reason)
                    .await
            }
        }
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

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(error: BatchError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "BatchError".into(),
            error_message: format!("{error}: {}", error.first),
        }
    }
}

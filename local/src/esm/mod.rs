//! An emulator of Lambda's MSK event-source mapping, faithful where it matters to the function:
//! a consumer group reading from the earliest offset (`TRIM_HORIZON`), batches of up to
//! `BatchSize` records or whatever arrived within the batching window, real `KafkaEvent` JSON
//! (records grouped by `topic-partition`, base64 values, headers as signed bytes), offsets
//! committed only after the function succeeded, and a failed batch retried — the same records,
//! with backoff — while the partitions stay blocked, as on AWS.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen::kafka::EventPublisher;
use qgen::msk::{kafka_event, record_json};
use question_generator::handler::Generator;
use question_generator::idempotency::IdempotencyStore;
use question_generator::source::QuestionSource;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the emulator batches and retries.
#[derive(Debug, Clone)]
pub struct EsmConfig {
    /// The topic to consume (`question.request`).
    pub topic: String,
    /// The consumer group (`question-generator`, as the template's `ConsumerGroupId`).
    pub group_id: String,
    /// Most records per invocation (`BatchSize`).
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first record arrived
    /// (`MaximumBatchingWindowInSeconds`).
    pub batching_window: Duration,
    /// The function timeout: the deadline given to each invocation.
    pub function_timeout: Duration,
    /// First delay before retrying a failed batch; doubles up to `retry_max`.
    pub retry_base: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// `eventSourceArn` written into each event.
    pub event_source_arn: String,
}

impl EsmConfig {
    /// The defaults of the local stack for `topic`.
    pub fn new(topic: &str) -> Self {
        EsmConfig {
            topic: topic.to_owned(),
            group_id: "question-generator".to_owned(),
            batch_size: 100,
            batching_window: Duration::from_millis(500),
            function_timeout: Duration::from_secs(60),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            event_source_arn: "arn:aws:kafka:local:000000000000:cluster/qgen-local/local".to_owned(),
        }
    }
}

/// The emulator's own failures (a failing function is retried, not an error).
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// The consumer could not be created, subscribed or committed.
    #[error("kafka consumer failed")]
    Kafka(#[from] KafkaError),
}

/// An invocation failed; the batch will be retried.
#[derive(Debug, thiserror::Error)]
#[error("invocation failed: {0}")]
pub struct InvokeError(pub String);

/// Invokes the function with one batch.
pub trait Invoker: Send + Sync {
    /// Runs the function on `event`, which must finish by `deadline`.
    fn invoke(
        &self,
        event: &KafkaEvent,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send;
}

impl<S: QuestionSource, P: EventPublisher, I: IdempotencyStore> Invoker for Generator<S, P, I> {
    async fn invoke(&self, event: &KafkaEvent, deadline: Instant) -> Result<(), InvokeError> {
        self.handle(event, deadline)
            .await
            .map(|_| ())
            .map_err(|e| match &e.first {
                Some(first) => InvokeError(format!("{e}: {first}")),
                None => InvokeError(e.to_string()),
            })
    }
}

impl<T: Invoker> Invoker for &T {
    fn invoke(
        &self,
        event: &KafkaEvent,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send {
        (**self).invoke(event, deadline)
    }
}

/// Invokes a function through the Lambda Invoke API, as served by `cargo lambda watch`
/// (`http://127.0.0.1:9000` by default): the real binary runs.
pub struct HttpInvoker {
    http: reqwest::Client,
    url: String,
}

impl HttpInvoker {
    /// An invoker of `function` behind the Invoke API at `base_url`.
    pub fn new(base_url: &str, function: &str) -> Self {
        HttpInvoker {
            http: reqwest::Client::new(),
            url: format!(
                "{}/2015-03-31/functions/{function}/invocations",
                base_url.trim_end_matches('/')
            ),
        }
    }
}

impl Invoker for HttpInvoker {
    async fn invoke(&self, event: &KafkaEvent, deadline: Instant) -> Result<(), InvokeError> {
        let response = self
            .http
            .post(&self.url)
            .timeout(deadline.saturating_duration_since(Instant::now()))
            .json(event)
            .send()
            .await
            .map_err(|e| InvokeError(format!("invoke API unreachable: {e}")))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() || function_error {
            return Err(InvokeError(format!("status {status}: {body}")));
        }
        tracing::debug!(%body, "function returned");
        Ok(())
    }
}

/// The emulator: one consumer in the group, one batch in flight at a time.
pub struct Emulator<I> {
    consumer: StreamConsumer,
    invoker: I,
    config: EsmConfig,
    bootstrap: String,
}

impl<I: Invoker> Emulator<I> {
    /// Joins the consumer group described by `config` on the broker of `client` (which carries
    /// `bootstrap.servers` and security settings).
    pub fn new(client: &ClientConfig, config: EsmConfig, invoker: I) -> Result<Self, EsmError> {
        let bootstrap = client.get("bootstrap.servers").unwrap_or_default().to_owned();
        let consumer: StreamConsumer = client
            .clone()
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A batch being retried blocks the loop for as long as the function keeps failing;
            // staying in the group meanwhile keeps the partitions blocked, as on AWS.
            .set("max.poll.interval.ms", "86400000")
            // A stopped emulator that could not say goodbye is noticed within seconds.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .create()?;
        consumer.subscribe(&[&config.topic])?;
        Ok(Emulator {
            consumer,
            invoker,
            config,
            bootstrap,
        })
    }

    /// Consumes, batches and invokes until `shutdown` is cancelled. A batch in flight finishes
    /// (and is committed) first; a batch being retried is left uncommitted for the next run.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), EsmError> {
        loop {
            let Some(batch) = self.next_batch(&shutdown).await else {
                return Ok(());
            };
            if !self.invoke_until_success(&batch, &shutdown).await {
                return Ok(());
            }
            self.commit(&batch)?;
        }
    }

    /// Waits for a first record, then gathers more until the batch is full or the window closes.
    /// Consumer errors (a broker restarting, a connection dropped) are logged and waited out:
    /// librdkafka reconnects by itself, and the mapping must outlive a broker outage.
    async fn next_batch(&self, shutdown: &CancellationToken) -> Option<Vec<OwnedMessage>> {
        let first = loop {
            tokio::select! {
                message = self.consumer.recv() => match message {
                    Ok(message) => break message.detach(),
                    Err(e) => self.consumer_error(&e).await,
                },
                () = shutdown.cancelled() => return None,
            }
        };
        let window_closes = Instant::now() + self.config.batching_window;
        let mut batch = vec![first];
        while batch.len() < self.config.batch_size {
            match tokio::time::timeout_at(window_closes, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(e)) => self.consumer_error(&e).await,
                Err(_window_closed) => break,
            }
        }
        Some(batch)
    }

    async fn consumer_error(&self, error: &KafkaError) {
        tracing::warn!(error = %error, "consumer error; retrying");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Invokes until the function succeeds; `false` when shut down first.
    async fn invoke_until_success(&self, batch: &[OwnedMessage], shutdown: &CancellationToken) -> bool {
        let event = kafka_event(
            batch.iter().map(record_json),
            &self.config.event_source_arn,
            &self.bootstrap,
        );
        let mut delay = self.config.retry_base;
        for attempt in 1.. {
            let started = Instant::now();
            let deadline = started + self.config.function_timeout;
            match self.invoker.invoke(&event, deadline).await {
                Ok(()) => {
                    tracing::info!(
                        records = batch.len(),
                        partitions = ?partitions(batch),
                        attempt,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "batch invoked"
                    );
                    return true;
                }
                Err(e) => {
                    tracing::warn!(records = batch.len(), attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "batch failed; it will be retried");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return false,
            }
            delay = (delay * 2).min(self.config.retry_max);
        }
        false
    }

    /// Commits, for every partition in the batch, the offset after its last record.
    fn commit(&self, batch: &[OwnedMessage]) -> Result<(), EsmError> {
        let mut next = std::collections::BTreeMap::new();
        for message in batch {
            let entry = next.entry(message.partition()).or_insert(message.offset() + 1);
            *entry = (*entry).max(message.offset() + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in next {
            offsets.add_partition_offset(&self.config.topic, partition, Offset::Offset(offset))?;
        }
        self.consumer.commit(&offsets, CommitMode::Sync)?;
        Ok(())
    }
}

fn partitions(batch: &[OwnedMessage]) -> Vec<i32> {
    let mut partitions: Vec<i32> = batch.iter().map(Message::partition).collect();
    partitions.sort_unstable();
    partitions.dedup();
    partitions
}

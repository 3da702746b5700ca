//! An emulator of Lambda's MSK event-source mapping as `template.yaml` configures it: a consumer
//! group reading from the earliest offset (`TRIM_HORIZON`); batches of up to `BatchSize` records
//! or whatever arrived within the batching window, as real `KafkaEvent` JSON; at most one
//! invocation in flight per partition, several partitions' batches at once; partial batch
//! responses honoured (`ReportBatchItemFailures`: commit up to the reported offset, redeliver
//! from it); failed records retried with backoff while their partitions stay blocked, at most
//! `MaximumRetryAttempts` times and while younger than `MaximumRecordAgeInSeconds`; then written
//! to the on-failure destination topic with the metadata Lambda adds ([`crate::failed`]), and the
//! partition moves on.
//!
//! AWS's pages behind each rule: "Configuring error handling controls for Kafka event sources"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>), "Using a
//! Kafka topic as an on-failure destination"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html>). Where
//! they are silent — the backoff between retries, one destination record per failed record — the
//! README says what the emulator does instead.

pub mod batch;
mod give_up;
mod invoker;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use qgen_adapters::msk::record_json;
use qgen_contract::msk::kafka_event;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::failed::{RECORD_AGE_EXCEEDED, RETRIES_EXHAUSTED};
pub use invoker::{HttpInvoker, InvokeError, Invoker};

/// The defaults of `template.yaml`'s trigger parameters; a test reads the template and checks
/// that they are equal, so the emulator and the deployed trigger cannot drift apart.
pub mod defaults {
    use std::time::Duration;

    /// `BatchSize`.
    pub const BATCH_SIZE: usize = 10;
    /// `MaximumBatchingWindowInSeconds`.
    pub const BATCHING_WINDOW: Duration = Duration::from_secs(1);
    /// The generator's `Timeout`.
    pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(180);
    /// `MaximumRetryAttempts`: retries after the first invocation.
    pub const MAXIMUM_RETRY_ATTEMPTS: i32 = 10;
    /// `MaximumRecordAgeInSeconds`.
    pub const MAXIMUM_RECORD_AGE_SECONDS: i64 = 21_600;
    /// `ConsumerGroupId`.
    pub const CONSUMER_GROUP_ID: &str = "question-generator";
}

/// Lambda's own cap when retries are infinite and an on-failure destination is set: "Lambda
/// automatically applies a maximum of 10 retry attempts" (kafka-on-failure-destination.html).
pub const RETRIES_WITH_A_DESTINATION: u32 = 10;

/// How the emulator batches and retries; [`EsmConfig::new`] gives the template's defaults.
#[derive(Debug, Clone)]
pub struct EsmConfig {
    /// The topic to consume (`question.request`).
    pub topic: String,
    /// The consumer group (`ConsumerGroupId`).
    pub group_id: String,
    /// Most records per invocation (`BatchSize`).
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first record is ready
    /// (`MaximumBatchingWindowInSeconds`).
    pub batching_window: Duration,
    /// The function timeout: the deadline given to each invocation.
    pub function_timeout: Duration,
    /// `MaximumRetryAttempts`: -1 is infinite (capped at [`RETRIES_WITH_A_DESTINATION`] when
    /// there is an on-failure topic), otherwise retries after the first invocation.
    pub maximum_retry_attempts: i32,
    /// `MaximumRecordAgeInSeconds`: records older than this are not invoked; -1 is infinite.
    pub maximum_record_age_seconds: i64,
    /// The on-failure destination (`kafka://question.request.failed`); `None` drops what is
    /// given up, as Lambda does without a destination.
    pub on_failure_topic: Option<String>,
    /// First delay before a retry; doubles up to `retry_max`. AWS documents no backoff for
    /// Kafka; this one keeps a failing partition from spinning.
    pub retry_base: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// `eventSourceArn` written into each event.
    pub event_source_arn: String,
    /// `functionArn` written into on-failure records.
    pub function_arn: String,
}

impl EsmConfig {
    /// The template's defaults, consuming `topic` and giving up to `on_failure_topic`.
    pub fn new(topic: &str, on_failure_topic: &str) -> Self {
        EsmConfig {
            topic: topic.to_owned(),
            group_id: defaults::CONSUMER_GROUP_ID.to_owned(),
            batch_size: defaults::BATCH_SIZE,
            batching_window: defaults::BATCHING_WINDOW,
            function_timeout: defaults::FUNCTION_TIMEOUT,
            maximum_retry_attempts: defaults::MAXIMUM_RETRY_ATTEMPTS,
            maximum_record_age_seconds: defaults::MAXIMUM_RECORD_AGE_SECONDS,
            on_failure_topic: Some(on_failure_topic.to_owned()),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            event_source_arn: "arn:aws:kafka:local:000000000000:cluster/qgen-local/local".to_owned(),
            function_arn: "arn:aws:lambda:local:000000000000:function:question-generator:$LATEST".to_owned(),
        }
    }

    /// Retries allowed after the first invocation; `None` is infinite.
    pub fn retry_limit(&self) -> Option<u32> {
        match u32::try_from(self.maximum_retry_attempts) {
            Ok(limit) => Some(limit),
            Err(_) if self.on_failure_topic.is_some() => Some(RETRIES_WITH_A_DESTINATION),
            Err(_) => None,
        }
    }

    fn max_age_ms(&self) -> Option<i64> {
        (self.maximum_record_age_seconds >= 0).then(|| self.maximum_record_age_seconds * 1000)
    }
}

/// The emulator's own failures (a failing function is retried, not an error).
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// The consumer or producer could not be created, subscribed or committed.
    #[error("kafka client failed")]
    Kafka(#[from] KafkaError),
}

/// Records of one or more partitions, delivered together, and what became of their last try.
struct Batch {
    records: Vec<OwnedMessage>,
    /// Invocations made with these records so far.
    invocations: u32,
    /// The last invocation returned an error (rather than a partial batch response).
    errored: bool,
}

impl Batch {
    fn partitions(&self) -> BTreeSet<i32> {
        self.records.iter().map(Message::partition).collect()
    }
}

enum Attempted {
    /// Tried (or given up); the partitions named are redelivered from the offset given.
    Done(Batch, batch::Redelivery),
    /// Shut down before it was tried: left uncommitted for the next run.
    Abandoned,
}

/// The emulator: one consumer in the group, one invocation in flight per partition.
pub struct Emulator<I> {
    consumer: StreamConsumer,
    producer: FutureProducer,
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
            // A partition being retried blocks for as long as the retries last; staying in the
            // group meanwhile keeps it blocked, as on AWS.
            .set("max.poll.interval.ms", "86400000")
            // A stopped emulator that could not say goodbye is noticed within seconds.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .create()?;
        consumer.subscribe(&[&config.topic])?;
        let producer: FutureProducer = client
            .clone()
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "5000")
            .create()?;
        Ok(Emulator {
            consumer,
            producer,
            invoker,
            config,
            bootstrap,
        })
    }

    /// Consumes, batches and invokes until `shutdown` is cancelled. Batches in flight finish
    /// (and are committed) first; a batch waiting for its retry is left uncommitted for the
    /// next run.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), EsmError> {
        let mut pending: BTreeMap<i32, VecDeque<OwnedMessage>> = BTreeMap::new();
        let mut busy: BTreeSet<i32> = BTreeSet::new();
        let mut attempts = FuturesUnordered::new();
        let mut window: Option<Instant> = None;
        let mut stopping = false;
        loop {
            if stopping {
                if attempts.is_empty() {
                    return Ok(());
                }
                window = None;
            } else {
                let ready: usize = pending
                    .iter()
                    .filter(|(p, _)| !busy.contains(*p))
                    .map(|(_, queue)| queue.len())
                    .sum();
                if ready == 0 {
                    window = None;
                } else {
                    let closes = *window.get_or_insert_with(|| Instant::now() + self.config.batching_window);
                    if ready >= self.config.batch_size || Instant::now() >= closes {
                        let records = take_batch(&mut pending, &busy, self.config.batch_size);
                        let batch = Batch {
                            records,
                            invocations: 0,
                            errored: false,
                        };
                        busy.extend(batch.partitions());
                        attempts.push(self.attempt(batch, Duration::ZERO, &shutdown));
                        window = None;
                        continue;
                    }
                }
            }
            tokio::select! {
                message = self.consumer.recv(), if !stopping => match message {
                    Ok(message) => {
                        let message = message.detach();
                        pending.entry(message.partition()).or_default().push_back(message);
                    }
                    Err(e) => self.consumer_error(&e).await,
                },
                Some(attempted) = attempts.next(), if !attempts.is_empty() => {
                    let Attempted::Done(batch, redelivery) = attempted else { continue };
                    self.commit(&batch.records, &redelivery)?;
                    let again = batch::to_redeliver(&batch.records, &redelivery);
                    let retried: BTreeSet<i32> = again.iter().map(Message::partition).collect();
                    for partition in batch.partitions() {
                        if stopping || !retried.contains(&partition) {
                            busy.remove(&partition);
                        }
                    }
                    if !stopping && !again.is_empty() {
                        let retry = Batch { records: again, invocations: batch.invocations, errored: batch.errored };
                        let delay = self.backoff(retry.invocations);
                        attempts.push(self.attempt(retry, delay, &shutdown));
                    }
                }
                () = tokio::time::sleep_until(window.unwrap_or_else(Instant::now)), if window.is_some() => {}
                () = shutdown.cancelled(), if !stopping => stopping = true,
            }
        }
    }

    /// The delay before the next try of records invoked `invocations` times; none once the
    /// retries are used up (the records go straight to the on-failure topic).
    fn backoff(&self, invocations: u32) -> Duration {
        if self.exhausted(invocations) {
            return Duration::ZERO;
        }
        let doublings = invocations.saturating_sub(1).min(16);
        (self.config.retry_base * 2u32.pow(doublings)).min(self.config.retry_max)
    }

    fn exhausted(&self, invocations: u32) -> bool {
        self.config.retry_limit().is_some_and(|limit| invocations > limit)
    }

    /// One try of `batch` after `delay`: given up when its retries are used up, its old records
    /// given up, the rest invoked.
    async fn attempt(&self, mut batch: Batch, delay: Duration, shutdown: &CancellationToken) -> Attempted {
        if !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return Attempted::Abandoned,
            }
        }
        let done = |batch: Batch| {
            let redelivery = batch.partitions().into_iter().map(|p| (p, None)).collect();
            Attempted::Done(batch, redelivery)
        };
        if self.exhausted(batch.invocations) {
            let records = batch.records.clone();
            if !self.give_up(&records, RETRIES_EXHAUSTED, &batch, shutdown).await {
                return Attempted::Abandoned;
            }
            return done(batch);
        }
        let (expired, live) = batch::split_expired(batch.records.clone(), now_ms(), self.config.max_age_ms());
        if !expired.is_empty()
            && !self
                .give_up(&expired, RECORD_AGE_EXCEEDED, &batch, shutdown)
                .await
        {
            return Attempted::Abandoned;
        }
        if live.is_empty() {
            return done(batch);
        }
        let event = kafka_event(
            live.iter().map(record_json),
            &self.config.event_source_arn,
            &self.bootstrap,
        );
        batch.invocations += 1;
        let started = Instant::now();
        let outcome = self
            .invoker
            .invoke(&event, started + self.config.function_timeout)
            .await;
        batch.errored = outcome.is_err();
        let redelivery = batch::redelivery(&live, outcome.as_ref().map_err(|_| ()));
        let redelivered: Vec<String> = redelivery
            .iter()
            .filter_map(|(p, from)| from.map(|o| format!("{p}@{o}")))
            .collect();
        let duration_ms = started.elapsed().as_millis() as u64;
        match (&outcome, redelivered.is_empty()) {
            (Ok(_), true) => tracing::info!(
                records = live.len(),
                partitions = ?batch.partitions(),
                attempt = batch.invocations,
                duration_ms,
                "batch invoked"
            ),
            (Ok(_), false) => tracing::warn!(
                records = live.len(),
                attempt = batch.invocations,
                redeliver = ?redelivered,
                "partial batch failure; partitions redelivered from partition@offset"
            ),
            (Err(e), _) => tracing::warn!(
                records = live.len(),
                attempt = batch.invocations,
                error = %e,
                "batch failed; it will be retried"
            ),
        }
        Attempted::Done(batch, redelivery)
    }

    async fn consumer_error(&self, error: &KafkaError) {
        // A broker restarting or a connection dropped: librdkafka reconnects by itself, and the
        // mapping must outlive a broker outage.
        tracing::warn!(error = %error, "consumer error; retrying");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Commits, for every partition of `batch`, where it is redelivered from or past its last
    /// record.
    fn commit(&self, batch: &[OwnedMessage], redelivery: &batch::Redelivery) -> Result<(), EsmError> {
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in batch::commits(batch, redelivery) {
            offsets.add_partition_offset(&self.config.topic, partition, Offset::Offset(offset))?;
        }
        // librdkafka refuses an empty commit; nothing moved on is nothing to commit.
        if offsets.count() > 0 {
            self.consumer.commit(&offsets, CommitMode::Sync)?;
        }
        Ok(())
    }
}

/// Up to `size` records of the partitions that have none in flight, oldest partitions' first.
fn take_batch(
    pending: &mut BTreeMap<i32, VecDeque<OwnedMessage>>,
    busy: &BTreeSet<i32>,
    size: usize,
) -> Vec<OwnedMessage> {
    let mut batch = Vec::with_capacity(size);
    for (partition, queue) in pending.iter_mut() {
        if busy.contains(partition) {
            continue;
        }
        while batch.len() < size {
            let Some(message) = queue.pop_front() else { break };
            batch.push(message);
        }
    }
    pending.retain(|_, queue| !queue.is_empty());
    batch
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

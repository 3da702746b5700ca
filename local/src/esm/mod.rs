//! An emulator of Lambda's MSK event-source mapping as `template.yaml` configures it: a consumer
//! group reading from the earliest offset (`TRIM_HORIZON`); batches of up to `BatchSize` records
//! or whatever arrived within the batching window, as real `KafkaEvent` JSON; at most one
//! invocation in flight per partition, several partitions' batches at once; partial batch
//! responses honoured (`ReportBatchItemFailures`: commit up to the reported offset, redeliver
//! from it); failed records retried with backoff while their partitions stay blocked, at most
//! `MaximumRetryAttempts` times and while younger than `MaximumRecordAgeInSeconds`; then written
//! to the on-failure destination topic with the metadata Lambda adds
//! ([`qgen_contract::on_failure`]), and the partition moves on.
//!
//! AWS's pages behind each rule: "Configuring error handling controls for Kafka event sources"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>), "Using a
//! Kafka topic as an on-failure destination"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html>). Where
//! they are silent — the backoff between retries, one destination record per failed record — the
//! docs/operations.md ("What the emulator cannot reproduce") says what the emulator does
//! instead.
//!
//! This file joins the group and runs the dispatch loop (poll, batch, try, commit, retry);
//! `config` and [`defaults`] hold the trigger's settings, `pending` the partitions' state between
//! polls, `attempt` one try of a batch, [`batch`] the pure rules of what an answer redelivers and
//! commits, `give_up` the on-failure records, `invoker` in-process or over the Invoke API.

mod attempt;
pub mod batch;
mod config;
pub mod defaults;
mod give_up;
mod invoker;
mod pending;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::attempt::Attempted;
use self::pending::{Batch, Pending};
pub use config::{EsmConfig, RETRIES_WITH_A_DESTINATION};
pub use invoker::{HttpInvoker, InvokeError, Invoker};

/// The emulator's own failures (a failing function is retried, not an error).
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// The consumer or producer could not be created, subscribed or committed.
    #[error("kafka client failed")]
    Kafka(#[from] KafkaError),
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
        let mut pending = Pending::default();
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
                let ready = pending.ready();
                if ready == 0 {
                    window = None;
                } else {
                    let closes = *window.get_or_insert_with(|| Instant::now() + self.config.batching_window);
                    if ready >= self.config.batch_size || Instant::now() >= closes {
                        let batch = pending.take_batch(self.config.batch_size);
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
                        pending.push(message);
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
                            pending.release(partition);
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

    async fn consumer_error(&self, error: &KafkaError) {
        // A broker restarting or a connection dropped: librdkafka reconnects by itself, and the
        // mapping must outlive a broker outage.
        tracing::warn!(error = %error, "consumer error; retrying");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The wall clock in epoch milliseconds, the unit of Kafka timestamps.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

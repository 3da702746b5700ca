//! One try of a batch: waiting out its backoff, giving up what is too old or out of retries,
//! invoking the function with the rest, reading its answer; then committing what moved on.

use std::time::Duration;

use qgen_adapters::msk::record_json;
use qgen_contract::msk::kafka_event;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pending::Batch;
use super::{Emulator, EsmError, Invoker, batch, now_ms};
use qgen_contract::on_failure::{RECORD_AGE_EXCEEDED, RETRIES_EXHAUSTED};

/// What became of a try of a batch.
pub(super) enum Attempted {
    /// Tried (or given up); the partitions named are redelivered from the offset given.
    Done(Batch, batch::Redelivery),
    /// Shut down before it was tried: left uncommitted for the next run.
    Abandoned,
}

impl<I: Invoker> Emulator<I> {
    /// The delay before the next try of records invoked `invocations` times; none once the
    /// retries are used up (the records go straight to the on-failure topic).
    pub(super) fn backoff(&self, invocations: u32) -> Duration {
        if self.exhausted(invocations) {
            return Duration::ZERO;
        }
        self.config.retry_delay(invocations)
    }

    /// Whether records invoked `invocations` times have used up their retries.
    fn exhausted(&self, invocations: u32) -> bool {
        self.config.retry_limit().is_some_and(|limit| invocations > limit)
    }

    /// One try of `batch` after `delay`: given up when its retries are used up, its old records
    /// given up, the rest invoked.
    pub(super) async fn attempt(
        &self,
        mut batch: Batch,
        delay: Duration,
        shutdown: &CancellationToken,
    ) -> Attempted {
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

    /// Commits, for every partition of `batch`, where it is redelivered from or past its last
    /// record.
    pub(super) fn commit(
        &self,
        batch: &[OwnedMessage],
        redelivery: &batch::Redelivery,
    ) -> Result<(), EsmError> {
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in batch::commits(batch, redelivery) {
            offsets.add_partition_offset(&self.config.topic, partition, Offset::Offset(offset))?;
        }
        // librdkafka refuses an empty commit; nothing moved on is nothing to commit.
        if offsets.count() > 0 {
            self.consumer.commit(&offsets, CommitMode::Sync)?;
            let committed: Vec<String> = offsets
                .elements()
                .iter()
                .map(|e| format!("{}@{}", e.partition(), e.offset().to_raw().unwrap_or(-1)))
                .collect();
            tracing::debug!(?committed, "offsets committed (partition@next offset)");
        }
        Ok(())
    }
}

//! Giving records up: writing them to the on-failure topic as Lambda does
//! ([`qgen_contract::on_failure`]).

use std::time::Duration;

use qgen_adapters::msk::record_json;
use qgen_contract::msk::kafka_event;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use super::pending::Batch;
use super::{Emulator, Invoker, now_ms};
use qgen_contract::on_failure::{
    FailureRecord, KafkaBatchInfo, RecordInfo, RequestContext, ResponseContext, rfc3339_millis,
};

impl<I: Invoker> Emulator<I> {
    /// Writes `records` to the on-failure topic (or, without one, drops them as Lambda does),
    /// retrying until the broker takes them; `false` when shut down first.
    pub(super) async fn give_up(
        &self,
        records: &[OwnedMessage],
        condition: &str,
        batch: &Batch,
        shutdown: &CancellationToken,
    ) -> bool {
        let Some(topic) = &self.config.on_failure_topic else {
            tracing::error!(
                records = records.len(),
                condition,
                "no on-failure destination: records dropped"
            );
            return true;
        };
        let values: Vec<(Option<&[u8]>, Vec<u8>)> = records
            .iter()
            .map(|m| (m.key(), self.failure_value(m, condition, batch)))
            .collect();
        // The same backoff as a failing batch's retries: `retry_base`, doubling to `retry_max`.
        let mut tries = 0;
        loop {
            tries += 1;
            let sends = values.iter().map(|(key, value)| {
                let mut record: FutureRecord<'_, [u8], Vec<u8>> = FutureRecord::to(topic).payload(value);
                if let Some(key) = key {
                    record = record.key(*key);
                }
                self.producer.send(record, Duration::from_secs(5))
            });
            let results = futures::future::join_all(sends).await;
            let failed = results.iter().filter(|r| r.is_err()).count();
            if failed == 0 {
                tracing::warn!(
                    records = records.len(),
                    condition,
                    topic = %topic,
                    offsets = ?records.iter().map(|m| format!("{}@{}", m.partition(), m.offset())).collect::<Vec<_>>(),
                    "records given up: written to the on-failure topic"
                );
                return true;
            }
            // Some may have landed already: the next try writes them again, as a retrying
            // producer would; `replay` is safe with duplicates.
            tracing::error!(failed, topic = %topic, "could not write to the on-failure topic; retrying");
            tokio::select! {
                () = tokio::time::sleep(self.config.retry_delay(tries)) => {}
                () = shutdown.cancelled() => return false,
            }
        }
    }

    /// The on-failure record of `message`, as Lambda writes it ([`qgen_contract::on_failure`]).
    fn failure_value(&self, message: &OwnedMessage, condition: &str, batch: &Batch) -> Vec<u8> {
        let payload = serde_json::to_value(kafka_event(
            [record_json(message)],
            &self.config.event_source_arn,
            &self.bootstrap,
        ))
        .unwrap_or_default();
        let created = message.timestamp().to_millis().unwrap_or(0);
        let record = FailureRecord {
            request_context: RequestContext {
                request_id: uuid::Uuid::new_v4().to_string(),
                function_arn: self.config.function_arn.clone(),
                condition: condition.to_owned(),
                approximate_invoke_count: batch.invocations,
            },
            response_context: (batch.invocations > 0).then(|| ResponseContext {
                status_code: 200,
                executed_version: "$LATEST".to_owned(),
                function_error: batch.errored.then(|| "Unhandled".to_owned()),
            }),
            version: "1.0".to_owned(),
            timestamp: rfc3339_millis(now_ms()),
            batch_info: KafkaBatchInfo {
                batch_size: 1,
                event_source_arn: self.config.event_source_arn.clone(),
                bootstrap_servers: self.bootstrap.clone(),
                payload_size: payload.to_string().len(),
                record_info: RecordInfo {
                    offset: message.offset().to_string(),
                    timestamp: rfc3339_millis(created),
                },
            },
            payload,
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }
}

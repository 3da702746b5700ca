//! Lambda's MSK event shape (`KafkaEvent`): grouping records into a batch as the event-source
//! mapping does, reading a record back into bytes, and the partial batch response.
//!
//! The local stack's event-source-mapping emulator and the end-to-end tests build batches here
//! (from Kafka messages through `qgen_adapters::msk::record_json`), so the generator is always
//! exercised with the same JSON AWS sends: records grouped by `topic-partition`, key and value
//! base64-encoded, headers as arrays of signed bytes.

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

/// A record's key or value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The field is not valid base64.
    #[error("{field} is not valid base64")]
    Base64 {
        /// `key` or `value`.
        field: &'static str,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
}

/// A batch in the form the MSK trigger delivers: records grouped under `topic-partition`, in
/// the order given.
pub fn kafka_event<I>(records: I, event_source_arn: &str, bootstrap_servers: &str) -> KafkaEvent
where
    I: IntoIterator<Item = Value>,
{
    let mut groups = Map::new();
    for record in records {
        let group = topic_partition(
            record["topic"].as_str().unwrap_or_default(),
            record["partition"].as_i64().unwrap_or_default(),
        );
        if let Value::Array(list) = groups.entry(group).or_insert_with(|| Value::Array(Vec::new())) {
            list.push(record);
        }
    }
    let event = json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": event_source_arn,
        "bootstrapServers": bootstrap_servers,
        "records": groups,
    });
    // Every field above has the type KafkaEvent declares, so this cannot fail; an empty
    // batch is the safe answer if it ever did.
    serde_json::from_value(event).unwrap_or_default()
}

/// What the generator returns to the MSK trigger when `FunctionResponseTypes` holds
/// `ReportBatchItemFailures`: for each partition to redeliver, the first record to deliver
/// again. The trigger redelivers a named partition from that offset; the records before it, and
/// every partition not named, count as processed. An empty list is a complete success.
///
/// `aws_lambda_events` 1.2 has no Kafka response type, hence this one. Its JSON is AWS's
/// documented schema, "Configuring error handling controls for Kafka event sources", section
/// partial batch response
/// (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>):
/// `{"batchItemFailures": [{"itemIdentifier": {"topic-partition": "question.request-0",
/// "offset": 100}}]}`. Powertools for Python and aws-lambda-rust-runtime PR #1164 name the key
/// `partition` instead (same value); AWS's page says an identifier that names no record of the
/// event fails the whole batch, so the documented name is the one sent.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchResponse {
    /// The first record to redeliver of each partition that must be retried.
    #[serde(default)]
    pub batch_item_failures: Vec<KafkaBatchItemFailure>,
}

/// One entry of [`KafkaBatchResponse::batch_item_failures`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchItemFailure {
    /// Which record: the trigger redelivers its partition from it.
    pub item_identifier: KafkaItemIdentifier,
}

/// A record of a Kafka batch, named by its `records` group and offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct KafkaItemIdentifier {
    /// `<topic>-<partition>`: the record's key in the event's `records` map.
    #[serde(rename = "topic-partition")]
    pub topic_partition: String,
    /// The record's offset.
    pub offset: i64,
}

/// The `records` key of a partition: `<topic>-<partition>`.
pub fn topic_partition(topic: &str, partition: i64) -> String {
    format!("{topic}-{partition}")
}

impl KafkaBatchResponse {
    /// The response that redelivers each partition from the lowest offset given for it among
    /// `records` (topic, partition, offset): one entry per partition, in topic-partition order.
    pub fn retry_from<'a>(records: impl IntoIterator<Item = (&'a str, i64, i64)>) -> Self {
        let mut lowest = std::collections::BTreeMap::new();
        for (topic, partition, offset) in records {
            let entry = lowest.entry((topic, partition)).or_insert(offset);
            *entry = (*entry).min(offset);
        }
        KafkaBatchResponse {
            batch_item_failures: lowest
                .into_iter()
                .map(|((topic, partition), offset)| KafkaBatchItemFailure {
                    item_identifier: KafkaItemIdentifier {
                        topic_partition: topic_partition(topic, partition),
                        offset,
                    },
                })
                .collect(),
        }
    }

    /// Whether nothing needs to be delivered again.
    pub fn is_success(&self) -> bool {
        self.batch_item_failures.is_empty()
    }
}

/// The decoded key of a record, if it has one.
pub fn record_key(record: &KafkaRecord) -> Result<Option<Vec<u8>>, RecordError> {
    decode_field(record.key.as_deref(), "key")
}

/// The decoded value of a record, if it has one.
pub fn record_value(record: &KafkaRecord) -> Result<Option<Vec<u8>>, RecordError> {
    decode_field(record.value.as_deref(), "value")
}

/// The record's headers as (name, bytes) pairs, in order.
pub fn record_headers(record: &KafkaRecord) -> Vec<(String, Vec<u8>)> {
    record
        .headers
        .iter()
        .flat_map(|map| map.iter())
        .map(|(key, value)| (key.clone(), value.iter().map(|&b| b as u8).collect()))
        .collect()
}

fn decode_field(field: Option<&str>, name: &'static str) -> Result<Option<Vec<u8>>, RecordError> {
    field
        .map(|text| {
            BASE64
                .decode(text)
                .map_err(|source| RecordError::Base64 { field: name, source })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_batch_response_is_the_json_aws_documents() {
        let response = KafkaBatchResponse::retry_from([
            ("question.request", 2, 41),
            ("question.request", 0, 7),
            ("question.request", 2, 40),
        ]);

        // The example of kafka-retry-configurations.html#kafka-partial-batch-response, with this
        // service's topic: the lowest offset of each partition, nothing for the others.
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [
                {"itemIdentifier": {"topic-partition": "question.request-0", "offset": 7}},
                {"itemIdentifier": {"topic-partition": "question.request-2", "offset": 40}},
            ]})
        );
        assert_eq!(
            serde_json::to_value(KafkaBatchResponse::default()).unwrap(),
            json!({"batchItemFailures": []})
        );
    }

    #[test]
    fn records_are_grouped_by_topic_partition_as_lambda_delivers_them() {
        let record = |partition: i64, offset: i64| {
            json!({"topic": "question.request", "partition": partition, "offset": offset,
                "timestamp": 0, "timestampType": "CREATE_TIME", "headers": []})
        };

        let event = kafka_event(
            [record(1, 5), record(0, 3), record(1, 6)],
            "arn:aws:kafka:eu-west-1:1:cluster/c/u",
            "b-1:9098",
        );

        assert_eq!(event.event_source.as_deref(), Some("aws:kafka"));
        assert_eq!(event.bootstrap_servers.as_deref(), Some("b-1:9098"));
        let offsets = |group: &str| -> Vec<i64> { event.records[group].iter().map(|r| r.offset).collect() };
        assert_eq!(offsets("question.request-1"), [5, 6]);
        assert_eq!(offsets("question.request-0"), [3]);
        assert_eq!(event.records.len(), 2);
    }

    #[test]
    fn only_an_empty_response_is_a_success() {
        assert!(KafkaBatchResponse::default().is_success());
        assert!(!KafkaBatchResponse::retry_from([("question.request", 0, 7)]).is_success());
    }
}

//! The records Lambda writes to a Kafka on-failure destination (`question.request.failed`), as
//! the local trigger emulator writes them and the operator's `qgen replay` reads them back.
//!
//! AWS documents the value's shape in "Using a Kafka topic as an on-failure destination",
//! section record format
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html>): a JSON
//! document with `requestContext` (why: `condition`), `responseContext` (the last invocation),
//! `version`, `timestamp`, `KafkaBatchInfo` (`recordInfo` naming the record's offset and time) and
//! `payload`, the invocation event itself with the failed record under `records`, its key and
//! value base64 as in any MSK event. The record is produced with the original record's key
//! ("Lambda uses the same partition key from the original record"). The page is silent on three
//! things, decided here: one destination record per failed record (its example has
//! `batchSize: 1` and a single `recordInfo`); no Kafka headers of its own (the original headers
//! travel inside `payload`); and the condition for a record too old to invoke,
//! `RecordAgeExceeded` (the page shows only `RetriesExhausted`).

use crate::msk::{record_headers, record_key, record_value};
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `requestContext.condition` when the retries ran out.
pub const RETRIES_EXHAUSTED: &str = "RetriesExhausted";
/// `requestContext.condition` when the record was older than the maximum record age.
pub const RECORD_AGE_EXCEEDED: &str = "RecordAgeExceeded";

/// The value of a record on the on-failure destination topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Why the record was given up.
    #[serde(rename = "requestContext")]
    pub request_context: RequestContext,
    /// The last invocation's answer; absent when the record was never invoked.
    #[serde(rename = "responseContext", default, skip_serializing_if = "Option::is_none")]
    pub response_context: Option<ResponseContext>,
    /// `1.0`.
    pub version: String,
    /// When the record was given up (RFC 3339, milliseconds, UTC).
    pub timestamp: String,
    /// Where the record came from.
    #[serde(rename = "KafkaBatchInfo")]
    pub batch_info: KafkaBatchInfo,
    /// The invocation event holding the record, as the function was (or would have been) given it.
    pub payload: Value,
}

/// `requestContext` of a [`FailureRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// An id of this failure.
    pub request_id: String,
    /// The function the record was for.
    pub function_arn: String,
    /// [`RETRIES_EXHAUSTED`] or [`RECORD_AGE_EXCEEDED`].
    pub condition: String,
    /// How many times the record was invoked.
    pub approximate_invoke_count: u32,
}

/// `responseContext` of a [`FailureRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    /// The Invoke API's status (200 when the function ran, even when it failed).
    pub status_code: u16,
    /// `$LATEST`.
    pub executed_version: String,
    /// `Unhandled` when the function returned an error; absent when it reported the record in a
    /// partial batch response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_error: Option<String>,
}

/// `KafkaBatchInfo` of a [`FailureRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchInfo {
    /// Records described (1).
    pub batch_size: usize,
    /// The mapping's event source.
    pub event_source_arn: String,
    /// The brokers.
    pub bootstrap_servers: String,
    /// Bytes of `payload`.
    pub payload_size: usize,
    /// The record's offset and time.
    pub record_info: RecordInfo,
}

/// `KafkaBatchInfo.recordInfo` of a [`FailureRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordInfo {
    /// The record's offset, as a string (as AWS's example writes it).
    pub offset: String,
    /// The record's timestamp (RFC 3339, UTC).
    pub timestamp: String,
}

/// A record as it was on the source topic: what `replay` publishes again, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRecord {
    /// The source topic.
    pub topic: String,
    /// Its partition there.
    pub partition: i64,
    /// Its offset there.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// Its headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A destination record that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum FailureRecordError {
    /// The value is not a failure record.
    #[error("not an on-failure destination record")]
    Json(#[from] serde_json::Error),
    /// The payload holds no record.
    #[error("the payload holds no record")]
    Empty,
    /// A field of the record is not base64.
    #[error(transparent)]
    Record(#[from] crate::msk::RecordError),
}

impl FailureRecord {
    /// The original records inside the payload.
    pub fn originals(&self) -> Result<Vec<OriginalRecord>, FailureRecordError> {
        let event: KafkaEvent = serde_json::from_value(self.payload.clone())?;
        let records: Vec<&KafkaRecord> = event.records.values().flatten().collect();
        if records.is_empty() {
            return Err(FailureRecordError::Empty);
        }
        records
            .into_iter()
            .map(|record| {
                Ok(OriginalRecord {
                    topic: record.topic.clone().unwrap_or_default(),
                    partition: record.partition,
                    offset: record.offset,
                    key: record_key(record)?,
                    value: record_value(record)?,
                    headers: record_headers(record),
                })
            })
            .collect()
    }
}

/// RFC 3339 with milliseconds in UTC, as AWS writes `timestamp`.
pub fn rfc3339_millis(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_example_aws_documents_back_into_the_original_record() {
        // kafka-on-failure-destination.html, section record format (its offset shortened).
        let documented = json!({
            "requestContext": {
                "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:my-function:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": "2019-11-14T18:16:05.568Z",
            "KafkaBatchInfo": {
                "batchSize": 1,
                "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/my-cluster/abc123",
                "bootstrapServers": "b-1.mycluster.abc123.kafka.us-east-1.amazonaws.com:9098",
                "payloadSize": 1162,
                "recordInfo": {"offset": "100", "timestamp": "2019-11-14T18:16:04.835Z"}
            },
            "payload": {
                "bootstrapServers": "b-1.mycluster.abc123.kafka.us-east-1.amazonaws.com:9098",
                "eventSource": "aws:kafka",
                "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/my-cluster/abc123",
                "records": {"my-topic-0": [{
                    "headers": [{"eventType": [113, 46, 114]}],
                    "key": "dGVzdC1rZXk=",
                    "offset": 100,
                    "partition": 0,
                    "timestamp": 1749116692330_i64,
                    "timestampType": "CREATE_TIME",
                    "topic": "my-topic",
                    "value": "dGVzdC12YWx1ZQ=="
                }]}
            }
        });

        let record: FailureRecord = serde_json::from_value(documented.clone()).unwrap();

        assert_eq!(record.request_context.condition, RETRIES_EXHAUSTED);
        assert_eq!(
            record.originals().unwrap(),
            [OriginalRecord {
                topic: "my-topic".into(),
                partition: 0,
                offset: 100,
                key: Some(b"test-key".to_vec()),
                value: Some(b"test-value".to_vec()),
                headers: vec![("eventType".into(), b"q.r".to_vec())],
            }]
        );
        // Written back, it is the same document: the emulator writes what AWS documents.
        assert_eq!(serde_json::to_value(&record).unwrap(), documented);
    }

    #[test]
    fn a_payload_without_records_is_refused() {
        let mut record: FailureRecord = serde_json::from_value(json!({
            "requestContext": {"requestId": "r", "functionArn": "f", "condition": "RecordAgeExceeded", "approximateInvokeCount": 0},
            "version": "1.0", "timestamp": "t",
            "KafkaBatchInfo": {"batchSize": 1, "eventSourceArn": "a", "bootstrapServers": "b", "payloadSize": 0,
                               "recordInfo": {"offset": "1", "timestamp": "t"}},
            "payload": {"eventSource": "aws:kafka", "records": {}}
        }))
        .unwrap();
        assert!(matches!(record.originals(), Err(FailureRecordError::Empty)));
        record.payload = json!("not an event");
        assert!(matches!(record.originals(), Err(FailureRecordError::Json(_))));
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds_in_utc() {
        assert_eq!(rfc3339_millis(1_573_755_365_568), "2019-11-14T18:16:05.568Z");
    }
}

//! [`RecordingPublisher`]: an [`EventPublisher`] that keeps what it is given, or fails every call,
//! for handler tests about HTTP or batch shapes rather than about Kafka.

use std::sync::Mutex;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde_json::Value;

use qgen_adapters::kafka::{Delivered, EventPublisher, OutboundRecord, PublishError};

/// A record captured by [`RecordingPublisher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRecord {
    /// Destination topic.
    pub topic: String,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// When it was "acknowledged" (recorded): the [`Delivered::acked_at`] returned for it.
    pub acked_at: std::time::SystemTime,
}

impl PublishedRecord {
    /// The value parsed as JSON (`Null` when absent or not JSON).
    pub fn json(&self) -> Value {
        self.payload
            .as_deref()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(Value::Null)
    }

    /// The key as text.
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The first header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// An [`EventPublisher`] that records what it is given, or fails every call when built with
/// [`RecordingPublisher::failing`]. What it is given for `question.response` must match the
/// response schema ([`crate::assert_on_contract`]).
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    records: Mutex<Vec<PublishedRecord>>,
    fail: bool,
}

impl RecordingPublisher {
    /// A publisher that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// A publisher whose every call fails, as an unreachable broker would.
    pub fn failing() -> Self {
        RecordingPublisher {
            records: Mutex::new(Vec::new()),
            fail: true,
        }
    }

    /// Everything published so far, in order.
    pub fn records(&self) -> Vec<PublishedRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Everything published to `topic`, in order.
    pub fn on_topic(&self, topic: &str) -> Vec<PublishedRecord> {
        self.records().into_iter().filter(|r| r.topic == topic).collect()
    }
}

impl EventPublisher for RecordingPublisher {
    async fn publish(&self, record: OutboundRecord<'_>) -> Result<Delivered, PublishError> {
        if self.fail {
            // What the rdkafka publisher reports when no broker acknowledged the record within
            // `message.timeout.ms`.
            return Err(PublishError::Delivery {
                topic: record.topic.to_owned(),
                source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            });
        }
        crate::records::assert_on_contract(record.topic, record.payload);
        // A test that panicked while holding the lock has already failed; keep recording.
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let acked_at = std::time::SystemTime::now();
        records.push(PublishedRecord {
            topic: record.topic.to_owned(),
            key: record.key.map(<[u8]>::to_vec),
            payload: record.payload.map(<[u8]>::to_vec),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            acked_at,
        });
        Ok(Delivered {
            partition: 0,
            offset: records.len() as i64 - 1,
            acked_at,
        })
    }
}

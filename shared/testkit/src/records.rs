//! Records on a broker, from the outside: producing a request as the API would, reading a topic
//! back without a consumer group, and looking into the messages read.

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

/// Produces a request event for `request_id` (about `topic`) to `partition` of
/// `question.request` on `bootstrap`, keyed by its id, created at `created_ms` (now when `None`);
/// returns the value's bytes. For tests that need a record on a given partition or of a given age.
pub async fn produce_request(
    bootstrap: &str,
    partition: i32,
    request_id: &str,
    topic: &str,
    created_ms: Option<i64>,
) -> Vec<u8> {
    use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create producer");
    let value = serde_json::to_vec(&RequestEvent::new_request(GenerationRequest {
        request_id: request_id.to_owned(),
        topic: topic.to_owned(),
        num_questions: 1,
        difficulty: Difficulty::Easy,
        context: None,
    }))
    .expect("request event as JSON");
    let mut record = FutureRecord::to("question.request")
        .partition(partition)
        .key(request_id)
        .payload(&value);
    if let Some(created_ms) = created_ms {
        record = record.timestamp(created_ms);
    }
    producer
        .send(record, Duration::from_secs(5))
        .await
        .expect("produce a request");
    value
}

/// The topic only the generator writes, every record of which is a response event.
const RESPONSE_TOPIC: &str = "question.response";

/// Checks a record the tests see against the contract: every record on `question.response` is
/// a response event matching `response-event.schema.json`. Records elsewhere may be poison on
/// purpose (the request topic, the DLQ, the failed topic) and are checked by their own tests.
pub fn assert_on_contract(topic: &str, payload: Option<&[u8]>) {
    if topic != RESPONSE_TOPIC {
        return;
    }
    let event: Value = payload
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or_else(|| panic!("a record on {topic} is not JSON: {payload:?}"));
    crate::assert_matches_schema("response-event.schema.json", &event);
}

/// Reads `topic` from the beginning of every partition, without a consumer group, until
/// `expected` records arrived or `limit` passed; returns what arrived, in arrival order. Every
/// record of `question.response` is checked against the response schema ([`assert_on_contract`]).
pub async fn read_topic(bootstrap: &str, topic: &str, expected: usize, limit: Duration) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "qgen-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .expect("assign partition");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < expected {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, consumer.recv()).await {
            Ok(Ok(message)) => {
                assert_on_contract(topic, message.payload());
                out.push(message.detach());
            }
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    out
}

/// The value of a Kafka message parsed as JSON (`Null` when absent or not JSON).
pub fn message_json(message: &OwnedMessage) -> Value {
    message
        .payload()
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(Value::Null)
}

/// The `eventData.request_id` of each response message, sorted.
pub fn response_request_ids(messages: &[OwnedMessage]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| {
            message_json(m)["eventData"]["request_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// The first header called `name` of a Kafka message, as text.
pub fn message_header(message: &OwnedMessage, name: &str) -> Option<String> {
    message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

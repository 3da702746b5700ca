//! `replay`: publish again, byte for byte, the records the MSK trigger gave up on
//! (`question.request.failed`) or the generator dead-lettered (`question.request.dlq`), so they
//! are answered after the fault is fixed.
//!
//! A replayed record has the key, value and headers it had on `question.request` (so the same
//! `eventId` and `request_id`): the generator's idempotency store answers one that was answered
//! meanwhile without a second Gemini call, which makes a second run harmless. The topic is read
//! from its start (or the offsets given) up to its end when the command started, so it stops.

use std::collections::BTreeMap;
use std::time::Duration;

use qgen_adapters::kafka::{EventPublisher, OutboundRecord};
use qgen_contract::headers::{DLQ_ERROR, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

use qgen_contract::on_failure::{FailureRecord, OriginalRecord};

/// Which records to replay; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only these `request_id`s (the record key, or the request's `eventData.request_id`).
    pub request_ids: Vec<String>,
    /// Only this partition of the topic read.
    pub partition: Option<i32>,
    /// Only offsets from this one on (of the topic read).
    pub from_offset: Option<i64>,
    /// Only offsets up to this one, inclusive.
    pub to_offset: Option<i64>,
    /// Only records written to the topic read at or after this time (epoch ms).
    pub since_ms: Option<i64>,
    /// Only records written before this time (epoch ms).
    pub until_ms: Option<i64>,
}

/// What to replay, from where, to where.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The topic to read (`question.request.failed` or `question.request.dlq`).
    pub from: String,
    /// The topic to publish to (`question.request`).
    pub to: String,
    /// List what would be published, publish nothing.
    pub dry_run: bool,
    /// Which records.
    pub filter: ReplayFilter,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records read from the topic.
    pub read: usize,
    /// Records the filters kept.
    pub selected: usize,
    /// Records published to the target topic.
    pub published: usize,
    /// Records that are neither an on-failure record nor a DLQ record (left alone).
    pub unreadable: usize,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading and writing one topic would replay forever.
    #[error("refusing to read and write the same topic {0}")]
    SameTopic(String),
    /// The topic to read does not exist.
    #[error("topic {0} does not exist")]
    NoSuchTopic(String),
    /// The broker could not be read.
    #[error("kafka consumer failed")]
    Kafka(#[from] KafkaError),
    /// Nothing arrived for a while before the end was reached.
    #[error("no record arrived for {0:?} before the end of the topic was reached")]
    Stalled(Duration),
    /// A record could not be published; the ones before it were.
    #[error("publishing {what} failed after {published} records were published")]
    Publish {
        /// Which record.
        what: String,
        /// Records published before it.
        published: usize,
        /// Why.
        #[source]
        source: Box<qgen_adapters::kafka::PublishError>,
    },
}

/// How long to wait for the next record before giving up.
const STALL: Duration = Duration::from_secs(30);

/// Replays the records of `options.from` that match the filters to `options.to` through
/// `publisher`, printing each one in a dry run and progress otherwise. `client` carries the
/// brokers and security settings, `context` the authentication (IAM tokens).
pub async fn replay<C: ConsumerContext + 'static, P: EventPublisher>(
    client: &ClientConfig,
    context: C,
    publisher: &P,
    options: &ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    if options.from == options.to {
        return Err(ReplayError::SameTopic(options.from.clone()));
    }
    let consumer: StreamConsumer<C> = client
        .clone()
        .set("group.id", "qgen-replay")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create_with_context(context)?;
    let ends = assign(&consumer, options)?;
    let mut summary = ReplaySummary::default();
    let mut open: BTreeMap<i32, i64> = ends.clone();
    while !open.is_empty() {
        let message = match tokio::time::timeout(STALL, consumer.recv()).await {
            Err(_) => return Err(ReplayError::Stalled(STALL)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "consumer error; retrying");
                continue;
            }
            Ok(Ok(message)) => message,
        };
        let (partition, offset) = (message.partition(), message.offset());
        let Some(&end) = open.get(&partition) else {
            continue;
        };
        if offset >= end {
            open.remove(&partition);
            continue;
        }
        if offset + 1 >= end {
            open.remove(&partition);
        }
        summary.read += 1;
        if !written_in_range(&message, &options.filter) {
            continue;
        }
        let Some(originals) = originals(&message) else {
            summary.unreadable += 1;
            tracing::warn!(partition, offset, "not an on-failure or DLQ record: left alone");
            continue;
        };
        for original in originals {
            if !wanted(&original, &options.filter) {
                continue;
            }
            summary.selected += 1;
            let what = format!(
                "{}/{partition}@{offset} (was {}/{}@{}, request_id {})",
                options.from,
                original.topic,
                original.partition,
                original.offset,
                request_id(&original).unwrap_or_else(|| "?".into())
            );
            if options.dry_run {
                println!("would replay {what}");
                continue;
            }
            let headers: Vec<(&str, &[u8])> = original
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            publisher
                .publish(OutboundRecord {
                    topic: &options.to,
                    key: original.key.as_deref(),
                    payload: original.value.as_deref(),
                    headers: &headers,
                })
                .await
                .map_err(|source| ReplayError::Publish {
                    what,
                    published: summary.published,
                    source: Box::new(source),
                })?;
            summary.published += 1;
            if summary.published.is_multiple_of(100) {
                eprintln!("replayed {} records…", summary.published);
            }
        }
    }
    Ok(summary)
}

/// Assigns the partitions to read at their first offset to read; returns where each ends (the
/// offset after its last record to read), leaving out those with nothing to read.
fn assign<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    options: &ReplayOptions,
) -> Result<BTreeMap<i32, i64>, ReplayError> {
    let timeout = Duration::from_secs(30);
    let metadata = consumer.fetch_metadata(Some(&options.from), timeout)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == options.from && t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| ReplayError::NoSuchTopic(options.from.clone()))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for partition in topic.partitions().iter().map(|p| p.id()) {
        if options.filter.partition.is_some_and(|only| only != partition) {
            continue;
        }
        let (low, high) = consumer.fetch_watermarks(&options.from, partition, timeout)?;
        let start = options.filter.from_offset.map_or(low, |from| from.max(low));
        let end = options.filter.to_offset.map_or(high, |to| (to + 1).min(high));
        if start < end {
            assignment.add_partition_offset(&options.from, partition, Offset::Offset(start))?;
            ends.insert(partition, end);
        }
    }
    if !ends.is_empty() {
        consumer.assign(&assignment)?;
    }
    Ok(ends)
}

fn written_in_range(message: &BorrowedMessage<'_>, filter: &ReplayFilter) -> bool {
    let written = message.timestamp().to_millis();
    let after = filter
        .since_ms
        .is_none_or(|since| written.is_some_and(|w| w >= since));
    let before = filter
        .until_ms
        .is_none_or(|until| written.is_some_and(|w| w < until));
    after && before
}

fn wanted(original: &OriginalRecord, filter: &ReplayFilter) -> bool {
    filter.request_ids.is_empty() || request_id(original).is_some_and(|id| filter.request_ids.contains(&id))
}

/// The record's `request_id`: its key, as the API writes it, else the request's.
fn request_id(original: &OriginalRecord) -> Option<String> {
    if let Some(key) = original.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) {
        return Some(key.to_owned());
    }
    let value: Value = serde_json::from_slice(original.value.as_deref()?).ok()?;
    value["eventData"]["request_id"].as_str().map(str::to_owned)
}

/// The original records a destination record holds: a DLQ record is the original with the
/// generator's `dlq-*` headers added; an on-failure record wraps it in Lambda's metadata.
fn originals(message: &BorrowedMessage<'_>) -> Option<Vec<OriginalRecord>> {
    let headers: Vec<(String, Vec<u8>)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    if let Some(topic) = header(DLQ_SOURCE_TOPIC) {
        const ADDED: [&str; 4] = [
            DLQ_SOURCE_TOPIC,
            DLQ_SOURCE_PARTITION,
            DLQ_SOURCE_OFFSET,
            DLQ_ERROR,
        ];
        return Some(vec![OriginalRecord {
            topic,
            partition: header(DLQ_SOURCE_PARTITION)?.parse().ok()?,
            offset: header(DLQ_SOURCE_OFFSET)?.parse().ok()?,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: headers
                .into_iter()
                .filter(|(k, _)| !ADDED.contains(&k.as_str()))
                .collect(),
        }]);
    }
    let record: FailureRecord = serde_json::from_slice(message.payload()?).ok()?;
    record.originals().ok()
}

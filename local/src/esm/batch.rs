//! What the trigger does with a batch after an invocation (pure: no I/O, no clock).
//!
//! Lambda reads the function's partial batch response and redelivers each partition it names
//! from the offset given, counting the records before it as processed; a function error
//! redelivers the whole batch; "any invalid topic-partition_number or offset returned that was
//! not present in the invoked event will be treated as failure and entire batch will be retried"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>). When one
//! partition is named more than once, the lowest offset wins, as AWS documents for Kinesis
//! (the Kafka page is silent).

use std::collections::BTreeMap;

use qgen_contract::msk::{KafkaBatchResponse, topic_partition};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;

/// Per partition of a batch: the offset to redeliver from, or `None` when it is done.
pub type Redelivery = BTreeMap<i32, Option<i64>>;

/// How an invocation of `invoked` ended, as the trigger reads it.
pub fn redelivery(invoked: &[OwnedMessage], outcome: Result<&KafkaBatchResponse, ()>) -> Redelivery {
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for message in invoked {
        let entry = first.entry(message.partition()).or_insert(message.offset());
        *entry = (*entry).min(message.offset());
    }
    let everything = || first.iter().map(|(&p, &o)| (p, Some(o))).collect();
    let Ok(response) = outcome else {
        return everything();
    };
    let mut redeliver: Redelivery = first.keys().map(|&p| (p, None)).collect();
    for failure in &response.batch_item_failures {
        let id = &failure.item_identifier;
        let named = invoked.iter().find(|m| {
            topic_partition(m.topic(), m.partition().into()) == id.topic_partition && m.offset() == id.offset
        });
        let Some(message) = named else {
            tracing::warn!(
                topic_partition = %id.topic_partition,
                offset = id.offset,
                "the response names a record that was not in the batch: the whole batch is retried"
            );
            return everything();
        };
        let entry = redeliver.entry(message.partition()).or_insert(None);
        *entry = Some(entry.map_or(id.offset, |o| o.min(id.offset)));
    }
    redeliver
}

/// The records of `batch` to deliver again: each named partition's from its offset on.
pub fn to_redeliver(batch: &[OwnedMessage], redelivery: &Redelivery) -> Vec<OwnedMessage> {
    batch
        .iter()
        .filter(|m| matches!(redelivery.get(&m.partition()), Some(Some(from)) if m.offset() >= *from))
        .cloned()
        .collect()
}

/// The offset to commit for each partition of `batch` that moved on: where it is redelivered
/// from, or past its last record. A partition redelivered from its first record is left out.
pub fn commits(batch: &[OwnedMessage], redelivery: &Redelivery) -> BTreeMap<i32, i64> {
    let mut span: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for message in batch {
        let (first, next) = span.entry(message.partition()).or_insert((i64::MAX, i64::MIN));
        *first = (*first).min(message.offset());
        *next = (*next).max(message.offset() + 1);
    }
    span.into_iter()
        .filter_map(|(partition, (first, next))| match redelivery.get(&partition) {
            Some(Some(from)) if *from <= first => None,
            Some(Some(from)) => Some((partition, *from)),
            _ => Some((partition, next)),
        })
        .collect()
}

/// Splits `batch` into the records older than `max_age_ms` at `now_ms` and the others.
pub fn split_expired(
    batch: Vec<OwnedMessage>,
    now_ms: i64,
    max_age_ms: Option<i64>,
) -> (Vec<OwnedMessage>, Vec<OwnedMessage>) {
    let Some(max_age_ms) = max_age_ms else {
        return (Vec::new(), batch);
    };
    batch.into_iter().partition(|m| {
        m.timestamp()
            .to_millis()
            .is_some_and(|created| now_ms - created > max_age_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_contract::msk::{KafkaBatchItemFailure, KafkaItemIdentifier};
    use rdkafka::Timestamp;

    fn message(partition: i32, offset: i64, created_ms: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"v".to_vec()),
            None,
            "question.request".into(),
            Timestamp::CreateTime(created_ms),
            partition,
            offset,
            None,
        )
    }

    fn failures(ids: &[(&str, i64)]) -> KafkaBatchResponse {
        KafkaBatchResponse {
            batch_item_failures: ids
                .iter()
                .map(|(tp, offset)| KafkaBatchItemFailure {
                    item_identifier: KafkaItemIdentifier {
                        topic_partition: (*tp).into(),
                        offset: *offset,
                    },
                })
                .collect(),
        }
    }

    fn batch() -> Vec<OwnedMessage> {
        vec![
            message(0, 5, 0),
            message(0, 6, 0),
            message(1, 9, 0),
            message(1, 10, 0),
            message(1, 11, 0),
        ]
    }

    #[test]
    fn a_named_partition_is_redelivered_from_its_offset_and_the_others_are_done() {
        let batch = batch();
        let response = failures(&[("question.request-1", 11), ("question.request-1", 10)]);

        let redelivery = redelivery(&batch, Ok(&response));

        assert_eq!(redelivery, BTreeMap::from([(0, None), (1, Some(10))]));
        assert_eq!(commits(&batch, &redelivery), BTreeMap::from([(0, 7), (1, 10)]));
        let again: Vec<i64> = to_redeliver(&batch, &redelivery)
            .iter()
            .map(Message::offset)
            .collect();
        assert_eq!(again, [10, 11]);
    }

    #[test]
    fn an_error_or_an_unknown_record_redelivers_the_whole_batch() {
        let batch = batch();
        let whole = BTreeMap::from([(0, Some(5)), (1, Some(9))]);

        assert_eq!(redelivery(&batch, Err(())), whole);
        assert_eq!(
            redelivery(&batch, Ok(&failures(&[("question.request-1", 12)]))),
            whole
        );
        assert_eq!(redelivery(&batch, Ok(&failures(&[("other-1", 10)]))), whole);
        assert!(commits(&batch, &whole).is_empty(), "nothing moved on");
        assert_eq!(to_redeliver(&batch, &whole).len(), 5);
    }

    #[test]
    fn an_empty_response_commits_past_every_record() {
        let batch = batch();
        let redelivery = redelivery(&batch, Ok(&KafkaBatchResponse::default()));

        assert_eq!(commits(&batch, &redelivery), BTreeMap::from([(0, 7), (1, 12)]));
        assert!(to_redeliver(&batch, &redelivery).is_empty());
    }

    #[test]
    fn records_older_than_the_maximum_age_are_split_off() {
        let batch = vec![message(0, 1, 1_000), message(0, 2, 5_000), message(0, 3, 9_000)];

        let (expired, live) = split_expired(batch.clone(), 10_000, Some(5_000));
        let offsets = |v: &[OwnedMessage]| v.iter().map(Message::offset).collect::<Vec<_>>();
        assert_eq!((offsets(&expired), offsets(&live)), (vec![1], vec![2, 3]));

        let (expired, live) = split_expired(batch, 10_000, None);
        assert_eq!((expired.len(), live.len()), (0, 3));
    }
}

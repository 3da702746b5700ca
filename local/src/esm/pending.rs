//! The partitions' state between polls: the records waiting in each partition, and which
//! partitions have a batch in flight (at most one each, as on AWS).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rdkafka::Message;
use rdkafka::message::OwnedMessage;

/// Records of one or more partitions, delivered together, and what became of their last try.
pub(super) struct Batch {
    /// The records, in partition then offset order.
    pub(super) records: Vec<OwnedMessage>,
    /// Invocations made with these records so far.
    pub(super) invocations: u32,
    /// The last invocation returned an error (rather than a partial batch response).
    pub(super) errored: bool,
}

impl Batch {
    /// The partitions the batch holds records of.
    pub(super) fn partitions(&self) -> BTreeSet<i32> {
        self.records.iter().map(Message::partition).collect()
    }
}

/// The records polled but not yet in a batch, per partition, and the partitions in flight.
#[derive(Default)]
pub(super) struct Pending {
    queues: BTreeMap<i32, VecDeque<OwnedMessage>>,
    busy: BTreeSet<i32>,
}

impl Pending {
    /// Queues a record polled from its partition.
    pub(super) fn push(&mut self, message: OwnedMessage) {
        self.queues
            .entry(message.partition())
            .or_default()
            .push_back(message);
    }

    /// How many records wait in partitions that have nothing in flight.
    pub(super) fn ready(&self) -> usize {
        self.queues
            .iter()
            .filter(|(p, _)| !self.busy.contains(*p))
            .map(|(_, queue)| queue.len())
            .sum()
    }

    /// A first try of up to `size` records of the partitions that have none in flight, oldest
    /// partitions' first; those partitions are in flight from now on.
    pub(super) fn take_batch(&mut self, size: usize) -> Batch {
        let mut records = Vec::with_capacity(size);
        for (partition, queue) in self.queues.iter_mut() {
            if self.busy.contains(partition) {
                continue;
            }
            while records.len() < size {
                let Some(message) = queue.pop_front() else { break };
                records.push(message);
            }
        }
        self.queues.retain(|_, queue| !queue.is_empty());
        let batch = Batch {
            records,
            invocations: 0,
            errored: false,
        };
        self.busy.extend(batch.partitions());
        batch
    }

    /// `partition` has nothing in flight any more: its waiting records can be batched again.
    pub(super) fn release(&mut self, partition: i32) {
        self.busy.remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> OwnedMessage {
        let timestamp = rdkafka::Timestamp::CreateTime(0);
        OwnedMessage::new(None, None, "t".to_owned(), timestamp, partition, offset, None)
    }

    fn offsets(batch: &Batch) -> Vec<(i32, i64)> {
        batch
            .records
            .iter()
            .map(|m| (m.partition(), m.offset()))
            .collect()
    }

    #[test]
    fn a_batch_takes_the_free_partitions_in_order_and_holds_them_until_released() {
        let mut pending = Pending::default();
        for (partition, offset) in [(1, 0), (0, 5), (1, 1), (0, 6), (0, 7)] {
            pending.push(record(partition, offset));
        }
        assert_eq!(pending.ready(), 5);

        let first = pending.take_batch(4);
        assert_eq!(offsets(&first), [(0, 5), (0, 6), (0, 7), (1, 0)]);
        pending.push(record(0, 8));
        assert_eq!(pending.ready(), 0, "both partitions are in flight");
        assert!(pending.take_batch(4).records.is_empty());

        pending.release(1);
        assert_eq!(pending.ready(), 1);
        let second = pending.take_batch(4);
        assert_eq!(offsets(&second), [(1, 1)]);

        pending.release(0);
        assert_eq!(offsets(&pending.take_batch(4)), [(0, 8)]);
    }
}

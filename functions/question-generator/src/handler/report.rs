//! What a batch came to, and the partial batch response that follows from it. Pure, so which
//! partitions the trigger redelivers, and from which offset, is tested without a broker.

use qgen_adapters::kafka::PublishError;
use qgen_contract::decode::Coordinates;
use qgen_contract::msk::KafkaBatchResponse;
use serde::Serialize;

/// What a batch came to. [`BatchReport::response`] is what the function returns to the trigger.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// `completed` responses published.
    pub completed: usize,
    /// `failed` responses published.
    pub failed: usize,
    /// Records sent to the DLQ.
    pub dead_lettered: usize,
    /// Records whose response (or DLQ record) could not be published.
    pub unpublished: usize,
    /// Records left unanswered because another invocation holds their request.
    pub in_progress: usize,
    /// Records held: Gemini as a whole could not answer them before this invocation's time was
    /// up, and they may still wait. Redelivered, like the two above.
    pub held: usize,
    /// The partitions to redeliver, each from its first record left unanswered.
    pub response: KafkaBatchResponse,
}

impl BatchReport {
    /// The partial batch response for the trigger.
    pub fn response(&self) -> &KafkaBatchResponse {
        &self.response
    }
}

/// What was published for one record.
pub(super) enum Outcome {
    /// A `completed` response.
    Completed,
    /// A `failed` response.
    Failed,
    /// The record itself, to the DLQ.
    DeadLettered,
    /// Another invocation holds the request; nothing was published.
    InProgress,
    /// Gemini could not answer in time and the request may still wait; nothing was published.
    Held,
}

impl BatchReport {
    /// Counts the outcomes of a batch of `records` records; every record left unanswered (not
    /// published, or held by another invocation) makes its partition redelivered from it. Also
    /// the first publish error, for the log.
    pub(super) fn of(
        records: usize,
        outcomes: Vec<(Coordinates, Result<Outcome, PublishError>)>,
    ) -> (BatchReport, Option<PublishError>) {
        let mut report = BatchReport {
            records,
            ..BatchReport::default()
        };
        let mut first_error = None;
        let mut unanswered = Vec::new();
        for (source, outcome) in outcomes {
            match outcome {
                Ok(Outcome::Completed) => report.completed += 1,
                Ok(Outcome::Failed) => report.failed += 1,
                Ok(Outcome::DeadLettered) => report.dead_lettered += 1,
                Ok(Outcome::InProgress) => {
                    report.in_progress += 1;
                    unanswered.push(source);
                }
                Ok(Outcome::Held) => {
                    report.held += 1;
                    unanswered.push(source);
                }
                Err(e) => {
                    report.unpublished += 1;
                    unanswered.push(source);
                    first_error.get_or_insert(e);
                }
            }
        }
        report.response = KafkaBatchResponse::retry_from(
            unanswered
                .iter()
                .map(|c| (c.topic.as_str(), c.partition, c.offset)),
        );
        (report, first_error)
    }

    /// Logs the batch's end: an error when records could not be published, a warning when they
    /// were left to other invocations, with the partitions to redeliver either way.
    pub(super) fn log(&self, first_error: Option<&PublishError>) {
        let records = self.records;
        let retry: Vec<String> = self
            .response
            .batch_item_failures
            .iter()
            .map(|f| {
                format!(
                    "{}@{}",
                    f.item_identifier.topic_partition, f.item_identifier.offset
                )
            })
            .collect();
        if let Some(first) = first_error {
            tracing::error!(
                unpublished = self.unpublished,
                in_progress = self.in_progress,
                records,
                ?retry,
                error = %first,
                "batch not fully published; partitions to redeliver from topic-partition@offset"
            );
        } else if self.held > 0 {
            // Gemini as a whole could not answer: the records wait in Kafka (OffsetLag rises).
            tracing::warn!(
                held = self.held,
                in_progress = self.in_progress,
                completed = self.completed,
                records,
                ?retry,
                "records held until gemini answers again; partitions to redeliver from topic-partition@offset"
            );
        } else if self.in_progress > 0 {
            // Expected after a crash or a rebalance: the redelivery answers these records.
            tracing::warn!(
                in_progress = self.in_progress,
                records,
                ?retry,
                "records left to the invocations answering them; partitions to redeliver from topic-partition@offset"
            );
        } else {
            tracing::info!(
                completed = self.completed,
                failed = self.failed,
                dead_lettered = self.dead_lettered,
                "batch done"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i64, offset: i64) -> Coordinates {
        Coordinates {
            topic: "question.request".into(),
            partition,
            offset,
        }
    }

    fn unpublished(waited_ms: u64) -> Result<Outcome, PublishError> {
        Err(PublishError::TimedOut(std::time::Duration::from_millis(
            waited_ms,
        )))
    }

    #[test]
    fn counts_each_outcome_and_redelivers_each_partition_from_its_first_record_left_unanswered() {
        let outcomes = vec![
            (at(0, 10), Ok(Outcome::Completed)),
            (at(0, 11), Ok(Outcome::Failed)),
            (at(0, 12), Ok(Outcome::DeadLettered)),
            (at(1, 20), Ok(Outcome::Completed)),
            (at(1, 22), unpublished(100)),
            (at(1, 21), Ok(Outcome::InProgress)),
            (at(2, 30), unpublished(200)),
            (at(3, 41), Ok(Outcome::Completed)),
            (at(3, 40), Ok(Outcome::Held)),
        ];

        let (report, first_error) = BatchReport::of(9, outcomes);

        assert_eq!(
            (
                report.records,
                report.completed,
                report.failed,
                report.dead_lettered,
                report.unpublished,
                report.in_progress,
                report.held
            ),
            (9, 3, 1, 1, 2, 1, 1)
        );
        assert_eq!(
            *report.response(),
            KafkaBatchResponse::retry_from([
                ("question.request", 1, 21),
                ("question.request", 2, 30),
                ("question.request", 3, 40)
            ])
        );
        assert_eq!(
            first_error.map(|e| e.to_string()),
            Some("no acknowledgement within 100ms".to_owned())
        );
    }

    #[test]
    fn a_batch_answered_whole_redelivers_nothing() {
        let outcomes = vec![
            (at(0, 1), Ok(Outcome::Completed)),
            (at(0, 2), Ok(Outcome::Failed)),
            (at(1, 1), Ok(Outcome::DeadLettered)),
        ];

        let (report, first_error) = BatchReport::of(3, outcomes);

        assert!(report.response().is_success(), "{:?}", report.response());
        assert!(first_error.is_none());
        assert_eq!(report.unpublished + report.in_progress, 0);
    }

    #[test]
    fn the_end_of_a_batch_is_an_error_a_warning_or_news_as_it_went() {
        let logged = |outcomes: Vec<(Coordinates, Result<Outcome, PublishError>)>| {
            let (logs, _guard) = qgen_testkit::capture_logs();
            let (report, first_error) = BatchReport::of(outcomes.len(), outcomes);
            report.log(first_error.as_ref());
            logs.text()
        };

        let unpublished = logged(vec![
            (at(0, 1), Ok(Outcome::Completed)),
            (at(1, 4), unpublished(5)),
        ]);
        let left = logged(vec![
            (at(0, 1), Ok(Outcome::Completed)),
            (at(2, 9), Ok(Outcome::InProgress)),
        ]);
        let done = logged(vec![
            (at(0, 1), Ok(Outcome::Completed)),
            (at(0, 2), Ok(Outcome::Failed)),
        ]);
        let held = logged(vec![
            (at(0, 1), Ok(Outcome::Completed)),
            (at(1, 7), Ok(Outcome::Held)),
        ]);

        assert!(
            unpublished.contains("ERROR") && unpublished.contains("question.request-1@4"),
            "{unpublished}"
        );
        assert!(
            left.contains("WARN") && left.contains("question.request-2@9"),
            "{left}"
        );
        assert!(
            done.contains("INFO") && done.contains("batch done") && done.contains("completed=1"),
            "{done}"
        );
        assert!(!done.contains("WARN") && !done.contains("ERROR"), "{done}");
        assert!(
            held.contains("WARN") && held.contains("held=1") && held.contains("question.request-1@7"),
            "{held}"
        );
    }
}

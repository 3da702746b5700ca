//! How the emulator batches and retries ([`EsmConfig`]), with the template's defaults and the
//! retry cap Lambda applies on its own.

use std::time::Duration;

use super::defaults;

/// Lambda's own cap when retries are infinite and an on-failure destination is set: "Lambda
/// automatically applies a maximum of 10 retry attempts" (kafka-on-failure-destination.html).
pub const RETRIES_WITH_A_DESTINATION: u32 = 10;

/// How the emulator batches and retries; [`EsmConfig::new`] gives the template's defaults.
#[derive(Debug, Clone)]
pub struct EsmConfig {
    /// The topic to consume (`question.request`).
    pub topic: String,
    /// The consumer group (`ConsumerGroupId`).
    pub group_id: String,
    /// Most records per invocation (`BatchSize`).
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first record is ready
    /// (`MaximumBatchingWindowInSeconds`).
    pub batching_window: Duration,
    /// The function timeout: the deadline given to each invocation.
    pub function_timeout: Duration,
    /// `MaximumRetryAttempts`: -1 is infinite (capped at [`RETRIES_WITH_A_DESTINATION`] when
    /// there is an on-failure topic), otherwise retries after the first invocation.
    pub maximum_retry_attempts: i32,
    /// `MaximumRecordAgeInSeconds`: records older than this are not invoked; -1 is infinite.
    pub maximum_record_age_seconds: i64,
    /// The on-failure destination (`kafka://question.request.failed`); `None` drops what is
    /// given up, as Lambda does without a destination.
    pub on_failure_topic: Option<String>,
    /// First delay before a retry; doubles up to `retry_max`. AWS documents no backoff for
    /// Kafka; this one keeps a failing partition from spinning.
    pub retry_base: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// `eventSourceArn` written into each event.
    pub event_source_arn: String,
    /// `functionArn` written into on-failure records.
    pub function_arn: String,
}

impl EsmConfig {
    /// The template's defaults, consuming `topic` and giving up to `on_failure_topic`.
    pub fn new(topic: &str, on_failure_topic: &str) -> Self {
        EsmConfig {
            topic: topic.to_owned(),
            group_id: defaults::CONSUMER_GROUP_ID.to_owned(),
            batch_size: defaults::BATCH_SIZE,
            batching_window: defaults::BATCHING_WINDOW,
            function_timeout: defaults::FUNCTION_TIMEOUT,
            maximum_retry_attempts: defaults::MAXIMUM_RETRY_ATTEMPTS,
            maximum_record_age_seconds: defaults::MAXIMUM_RECORD_AGE_SECONDS,
            on_failure_topic: Some(on_failure_topic.to_owned()),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            event_source_arn: "arn:aws:kafka:local:000000000000:cluster/qgen-local/local".to_owned(),
            function_arn: "arn:aws:lambda:local:000000000000:function:question-generator:$LATEST".to_owned(),
        }
    }

    /// The delay before retrying records invoked `invocations` times (1 or more): `retry_base`,
    /// doubling with each invocation, at most `retry_max`.
    pub fn retry_delay(&self, invocations: u32) -> Duration {
        let doublings = invocations.saturating_sub(1).min(16);
        (self.retry_base * 2u32.pow(doublings)).min(self.retry_max)
    }

    /// Retries allowed after the first invocation; `None` is infinite.
    pub fn retry_limit(&self) -> Option<u32> {
        match u32::try_from(self.maximum_retry_attempts) {
            Ok(limit) => Some(limit),
            Err(_) if self.on_failure_topic.is_some() => Some(RETRIES_WITH_A_DESTINATION),
            Err(_) => None,
        }
    }

    /// `MaximumRecordAgeInSeconds` in milliseconds; `None` is infinite.
    pub(super) fn max_age_ms(&self) -> Option<i64> {
        (self.maximum_record_age_seconds >= 0).then(|| self.maximum_record_age_seconds * 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_retries_are_capped_only_when_records_have_somewhere_to_go() {
        let mut config = EsmConfig::new("question.request", "question.request.failed");
        assert_eq!(config.retry_limit(), Some(12));
        config.maximum_retry_attempts = -1;
        assert_eq!(config.retry_limit(), Some(RETRIES_WITH_A_DESTINATION));
        config.on_failure_topic = None;
        assert_eq!(config.retry_limit(), None);
    }
}

//! The defaults of `template.yaml`'s trigger parameters; a test reads the template and checks
//! that they are equal, so the emulator and the deployed trigger cannot drift apart.

use std::time::Duration;

/// `BatchSize`.
pub const BATCH_SIZE: usize = 10;
/// `MaximumBatchingWindowInSeconds`.
pub const BATCHING_WINDOW: Duration = Duration::from_secs(1);
/// The generator's `Timeout`.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(180);
/// `MaximumRetryAttempts`: retries after the first invocation.
pub const MAXIMUM_RETRY_ATTEMPTS: i32 = 12;
/// `MaximumRecordAgeInSeconds`.
pub const MAXIMUM_RECORD_AGE_SECONDS: i64 = 21_600;
/// `ConsumerGroupId`.
pub const CONSUMER_GROUP_ID: &str = "question-generator";

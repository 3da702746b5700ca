//! Integration tests of question-api: one binary (one link of librdkafka and the AWS SDK), one
//! module per subject.

mod api;
mod secrets_in_logs;

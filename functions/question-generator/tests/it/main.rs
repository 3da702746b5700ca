//! Integration tests of question-generator: one binary (one link of librdkafka and the AWS SDK),
//! one module per subject; what they share is in `support`.

mod batch;
mod batch_failures;
mod batch_traces;
mod deadline;
mod dlq_outage;
mod fair_questions;
mod gemini_breaker;
mod gemini_replies;
mod gemini_retries;
mod gemini_setup;
mod holding;
mod idempotency_claims;
mod idempotency_duplicates;
mod idempotency_failures;
mod idempotency_records;
mod support;

//! Integration tests of question-generator: one binary (one link of librdkafka and the AWS SDK),
//! one module per subject.

mod deadline;
mod dlq_outage;
mod fair_questions;
mod gemini;
mod generator;
mod holding;
mod idempotency;

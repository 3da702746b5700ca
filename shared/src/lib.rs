//! `qgen`: what the question functions share — the wire contract, its validation, configuration
//! and the adapters that touch Kafka.
//!
//! Both Lambda functions (`question-api` and `question-generator`) and the local stack depend on
//! this crate, so the JSON that one writes is, by construction, the JSON the other reads.
//!
//! # Layout
//!
//! - [`api`]: the HTTP bodies of the API (request as documented, 202, errors).
//! - [`contracts`]: JSON Schema, OpenAPI and AsyncAPI documents generated from these types.
//! - [`decode`]: an MSK record → a request, an answerable invalid request, or poison (pure).
//! - [`events`]: the request and response envelopes exactly as they travel on the topics.
//! - [`validation`]: request validation (shared by the API and the generator) and the checks on
//!   the questions a model returns.
//! - [`config`]: configuration read from the environment through a lookup closure.
//! - [`kafka`]: the [`kafka::EventPublisher`] port, its rdkafka implementation, the service's
//!   topics, and broker authentication (SCRAM, MSK IAM) in [`kafka::auth`].
//! - [`telemetry`]: metrics as CloudWatch Embedded Metric Format lines on stdout.
//! - [`msk`]: building Lambda `KafkaEvent` batches from Kafka messages, as the MSK trigger does.
//! - [`offline`]: placeholder questions written without a model (local stack, stand-ins).
//! - [`secrets`]: Secrets Manager reads, cached per execution environment.
//! - `testing` (feature `test-util`): fakes and harnesses for tests — a recording publisher, an
//!   in-process broker, a tansu broker process and a Gemini stand-in.
//!
//! The default feature `adapters` brings `kafka`, `secrets` and the Kafka side of `msk`; without
//! it the crate builds without librdkafka and the AWS SDK (the fuzz targets use it so).

pub mod api;
pub mod config;
pub mod contracts;
pub mod decode;
pub mod events;
#[cfg(feature = "adapters")]
pub mod kafka;
pub mod msk;
pub mod offline;
#[cfg(feature = "adapters")]
pub mod secrets;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod validation;

//! `qgen-adapters`: what both question functions use to touch the world. The contract they speak
//! is `qgen-contract`; the design is `docs/DESIGN.md`.
//!
//! # Layout
//!
//! - [`config`]: the Kafka and API configuration read from the environment through a lookup
//!   closure, and the [`config::Vars`] reader the generator's own configuration uses too.
//! - [`kafka`]: the [`kafka::EventPublisher`] port, its records and errors (`kafka/mod.rs`); its
//!   rdkafka implementation [`kafka::KafkaPublisher`] and the client settings
//!   (`kafka/producer.rs`); the service's topics and their creation (`kafka/topics.rs`); broker
//!   authentication in [`kafka::auth`] (`auth/mod.rs`, with SCRAM in `auth/scram.rs` and MSK IAM
//!   in `auth/iam.rs`).
//! - [`secrets`]: Secrets Manager reads, cached per execution environment.
//! - [`msk`]: a Kafka message as a record of Lambda's MSK event.
//! - [`telemetry`]: metrics as CloudWatch Embedded Metric Format lines on stdout.

pub mod config;
pub mod kafka;
pub mod msk;
pub mod secrets;
pub mod telemetry;

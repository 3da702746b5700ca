//! `qgen-contract`: the wire contract of the question service, and nothing else. Pure: no I/O,
//! no async runtime, no Kafka client, no AWS SDK, no features (`cargo tree -p qgen-contract -e
//! normal` shows it). Both Lambda functions, the local stack and the fuzz targets depend on it,
//! so the JSON one writes is, by construction, the JSON the other reads. The contract in prose
//! is `docs/DESIGN.md`.
//!
//! # Layout
//!
//! - [`events`]: the request and response envelopes exactly as they travel on the topics; the
//!   envelope in `events/mod.rs`, the payloads in `events/request.rs` (with the fields' schema
//!   patterns) and `events/response.rs`.
//! - [`validation`]: the request rules (shared by the API and the generator) in
//!   `validation/request.rs`, and the checks on the questions a model returns in
//!   `validation/questions.rs` (plain-text fields in `validation/text.rs`, options that give the
//!   answer away in `validation/tells.rs`). It reads `events`; `events` reads nothing of it.
//! - [`order`]: the order a question's options are published in (shuffled per request).
//! - [`api`]: the HTTP bodies of the API (request as documented, 202, errors).
//! - [`headers`]: the name of every Kafka record header: the envelope's, the trace, a response's
//!   timeline, a dead letter's `dlq-*`.
//! - [`decode`]: an MSK record → a request, an answerable invalid request, or poison.
//! - [`msk`]: Lambda's MSK event (grouping records into a batch, reading one back) and the
//!   partial batch response.
//! - [`contracts`]: JSON Schema (`contracts/schemas.rs`), OpenAPI (`contracts/openapi.rs`) and
//!   AsyncAPI (`contracts/asyncapi.rs`) documents generated from these types.
//! - [`metrics`]: the CloudWatch metrics the functions emit, which the dashboard and alarms read,
//!   and the two services' names ([`metrics::API`], [`metrics::GENERATOR`]).
//! - [`on_failure`]: the records Lambda writes to a Kafka on-failure destination, read back.
//! - [`offline`]: placeholder questions written without a model (local stack, stand-ins).
//! - [`prompt`]: the request data the generator sends Gemini, which every stand-in reads back.
//! - [`trace`]: the W3C `traceparent` every record carries, and how the API starts it.

pub mod api;
pub mod contracts;
pub mod decode;
pub mod events;
pub mod headers;
pub mod metrics;
pub mod msk;
pub mod offline;
pub mod on_failure;
pub mod order;
pub mod prompt;
pub mod trace;
pub mod validation;

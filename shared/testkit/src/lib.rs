//! `qgen-testkit`: test doubles and harnesses of the question service, a dev-dependency only (no
//! Lambda binary links it; `scripts/check-layout` checks).
//!
//! Fakes are only for the edges tests cannot reach: the publisher fake is for handler tests that
//! are about HTTP or batch shapes; everything about Kafka itself runs against [`MockBroker`]
//! (librdkafka's mock cluster, in-process) or [`TansuBroker`] (an independent broker process).
//!
//! # Layout
//!
//! Every item is re-exported here, at the crate root (`qgen_testkit::MockBroker`).
//!
//! - `publisher`: [`RecordingPublisher`], the recording or failing [`qgen_adapters::kafka::EventPublisher`].
//! - `brokers`: [`MockBroker`], [`TansuBroker`], the service's topics and [`free_port`].
//! - `records`: producing a request, reading a topic back, and a message's JSON and headers.
//! - [`GeminiStandIn`], the HTTP stand-in for Gemini, its replies, [`gemini_error`]'s bodies and
//!   its faults ([`Outage`], [`WindowQuota`], [`RateQuota`], [`Latency`]): re-exported from
//!   `qgen-standins`, which the benchmarks and the local stack use too.
//! - `moto`: [`MotoServer`], local AWS APIs, and [`dynamodb_client`].
//! - [`assert_matches_schema`], [`contract`], [`schema_errors`]: re-exported from
//!   `qgen-schema-check`, which the contract crate's tests use without the rest of this kit.
//! - `logs`: [`capture_logs`] (this thread) or [`capture_every_thread`] into a [`LogBuffer`].
//! - `fixtures`: [`env_lookup`] for the configuration readers, [`sample_request`].

mod brokers;
mod fixtures;
mod logs;
mod moto;
mod publisher;
mod records;

pub use brokers::{MockBroker, SERVICE_TOPICS, TansuBroker, free_port};
pub use fixtures::{env_lookup, sample_request};
pub use logs::{LogBuffer, capture_every_thread, capture_logs};
pub use moto::{MotoServer, dynamodb_client};
pub use publisher::{PublishedRecord, RecordingPublisher};
pub use qgen_schema_check::{assert_matches_schema, contract, schema_errors};
pub use qgen_standins::{
    AnswersAsAsked, GeminiStandIn, Latency, Outage, RateQuota, WindowQuota, answer_with_usage, gemini_error,
    gemini_reply, overloaded, sample_questions,
};
pub use records::{
    assert_on_contract, message_header, message_json, produce_request, read_topic, response_request_ids,
};

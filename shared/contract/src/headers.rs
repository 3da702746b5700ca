//! The names of every Kafka record header the service writes or reads, defined here once: the
//! functions write them, the operator's tools and the tests read them, and the AsyncAPI document
//! ([`crate::contracts`]) publishes them.
//!
//! - On every event record: [`HEADER_EVENT_TYPE`], [`HEADER_EVENT_ID`], [`HEADER_CONTENT_TYPE`]
//!   and [`TRACEPARENT`] (also read from the API's HTTP request).
//! - On a response record, its timeline: [`HEADER_BATCH_INVOKED_AT`] and, when Gemini was
//!   called for it, [`HEADER_GEMINI_CALLS`], [`HEADER_GEMINI_MS`] and [`HEADER_GEMINI_MODEL`].
//! - On the DLQ copy of a poison record, after its own headers: [`DLQ_SOURCE_TOPIC`],
//!   [`DLQ_SOURCE_PARTITION`], [`DLQ_SOURCE_OFFSET`] and [`DLQ_ERROR`].

/// Header naming the event type of a record.
pub const HEADER_EVENT_TYPE: &str = "eventType";
/// Header carrying the record's `eventId`, so consumers can de-duplicate without parsing.
pub const HEADER_EVENT_ID: &str = "eventId";
/// Header naming the payload's media type.
pub const HEADER_CONTENT_TYPE: &str = "content-type";
/// Media type of every envelope (the value of [`HEADER_CONTENT_TYPE`]).
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The record (and HTTP) header carrying the trace context ([`crate::trace`]).
pub const TRACEPARENT: &str = "traceparent";

/// Response header: when the invocation that answered the request started (RFC 3339, ms).
pub const HEADER_BATCH_INVOKED_AT: &str = "qgen-batch-invoked-at";
/// Response header: Gemini calls made for this answer (absent when none was: a replay from the
/// idempotency store, an invalid request, the offline source).
pub const HEADER_GEMINI_CALLS: &str = "qgen-gemini-calls";
/// Response header: their latency added up, in milliseconds.
pub const HEADER_GEMINI_MS: &str = "qgen-gemini-ms";
/// Response header: the model of the last call.
pub const HEADER_GEMINI_MODEL: &str = "qgen-gemini-model";

/// DLQ header: the topic the record came from.
pub const DLQ_SOURCE_TOPIC: &str = "dlq-source-topic";
/// DLQ header: the partition the record came from.
pub const DLQ_SOURCE_PARTITION: &str = "dlq-source-partition";
/// DLQ header: the offset the record had.
pub const DLQ_SOURCE_OFFSET: &str = "dlq-source-offset";
/// DLQ header: why it is poison.
pub const DLQ_ERROR: &str = "dlq-error";

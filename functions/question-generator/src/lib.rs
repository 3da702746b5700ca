//! question-generator: an MSK batch of request events → questions from Gemini → one response
//! event per request on `question.response`; records that cannot be decoded → the DLQ topic.
//!
//! # Layout
//!
//! - [`decode`]: turning the batch's records into requests, invalid requests and poison (pure).
//! - [`source`]: the [`source::QuestionSource`] port and its error codes.
//! - [`gemini`]: the Gemini `generateContent` client: prompt, schema, reply checks, retries.
//! - [`retry`]: backoff with full jitter and `Retry-After` (pure).
//! - [`breaker`]: the circuit breaker shared by the invocations of an execution environment.
//! - [`handler`]: the orchestration — generate concurrently, publish, dead-letter.

pub mod breaker;
pub mod decode;
pub mod gemini;
pub mod handler;
pub mod retry;
pub mod source;

//! question-generator: an MSK batch of request events → questions from Gemini → one response
//! event per request on `question.response`; records that cannot be decoded → the DLQ topic.
//!
//! # Layout
//!
//! - Decoding the batch's records into requests, invalid requests and poison is pure and lives in
//!   [`qgen_contract::decode`], where it is fuzzed without the Lambda runtime and the SDKs.
//! - [`config`]: the generator's settings (Gemini, retries, breaker, idempotency, concurrency).
//! - [`deadline`]: the invocation deadline as an instant, and the time kept back to publish (pure).
//! - [`source`]: the [`source::QuestionSource`] port and its error codes.
//! - [`gemini`]: the Gemini `generateContent` client; `gemini/` holds its prompt, schema, reply
//!   checks, API key, one call, and the retry/repair policy, one file each.
//! - [`retry`]: backoff with full jitter and `Retry-After` (pure).
//! - [`breaker`]: the circuit breaker shared by the invocations of an execution environment;
//!   `clock` beside it: where it reads the time.
//! - [`pace`]: the environment's share of the project's per-minute Gemini quota (pure).
//! - [`idempotency`]: the [`idempotency::IdempotencyStore`] port and its records (`mod.rs`) and
//!   its DynamoDB adapter (`dynamodb.rs`), so a duplicate request is answered from the record of
//!   its first answer.
//! - [`handler`]: the orchestration — de-duplicate, generate concurrently, publish, dead-letter;
//!   `handler/` holds its pure pieces: the batch plan, the report, the DLQ headers.

pub mod breaker;
mod clock;
pub mod config;
pub mod deadline;
pub mod gemini;
pub mod handler;
pub mod idempotency;
pub mod pace;
pub mod retry;
pub mod source;

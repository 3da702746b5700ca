//! Request validation (docs/DESIGN.md, "Request validation") and the checks on model output.
//!
//! The API validates the HTTP body and the generator validates `eventData` with the same code,
//! so a request the API accepts is never rejected downstream, and a request that reached the
//! topic some other way is held to the same rules. Pure: no I/O.
//!
//! The request rules are in `request.rs` (their refusals in `rejection.rs`), the checks on a
//! model's questions in `questions.rs`, with the plain-text rules in `text.rs` and the options
//! that give the answer away in `tells.rs`.
//! Both read [`crate::events`]; nothing there reads this module.

mod questions;
mod rejection;
mod request;
mod tells;
mod text;

pub use self::questions::{OPTIONS_RANGE, OutputError, tidy_questions, validate_questions};
pub use self::rejection::{RejectionCode, ValidationError};
pub use self::request::{
    DEFAULT_MAX_QUESTIONS, Limits, MAX_BODY_BYTES, MAX_CONTEXT_CHARS, MAX_REQUEST_ID_CHARS, MAX_TOPIC_CHARS,
    RawRequest, parse_request_body, validate,
};
// The request rules as JSON Schema patterns: they sit with the fields they describe, in `events`.
pub use crate::events::{CONTEXT_PATTERN, REQUEST_ID_PATTERN, TOPIC_PATTERN};

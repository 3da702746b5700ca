//! `qgen-standins`: loopback stand-ins of the service's outside world, one of each, used by the
//! tests (through `qgen-testkit`, which re-exports them), the benchmarks (`qgen-bench`) and the
//! local stack (`qgen-local gemini-stand-in`). No Lambda binary links it (`scripts/check-layout`
//! checks).
//!
//! - Gemini's `generateContent` ([`GeminiStandIn`]): answers with a responder — the questions
//!   asked for ([`AnswersAsAsked`]), or scripted faults: an [`Outage`] (Google's 503), a request
//!   quota per window ([`WindowQuota`], fixed windows) or per rate ([`RateQuota`], a token
//!   bucket), both answered with Google's 429, and [`Latency`], fixed or drawn per call. The
//!   error bodies are the ones Google documents ([`gemini_error`]).
//! - The Lambda Runtime API ([`RuntimeApi`]): hands out scripted invocations and collects what
//!   the function posts back; [`smoke`] runs a bootstrap binary against it and checks what it
//!   did (the `qgen-standins runtime-api` binary, for `scripts/check-deploy`).
//!
//! # One HTTP foundation: wiremock
//!
//! Both servers are [wiremock](https://docs.rs/wiremock) servers. The tests script Gemini with
//! wiremock responders (closures over a `wiremock::Request`, `ResponseTemplate`s with statuses,
//! bodies and delays, `Respond` types of their own) in dozens of places, so a stand-in on any
//! other foundation would still need wiremock for them, and there would be two. wiremock gives
//! the rest too: a delay that does not hold the server (the latency), the calls recorded (or
//! not, for long runs), a fixed listener for a stand-in another process calls. It is already in
//! the lock file, and it is never in a Lambda binary's tree: `cargo lambda build -p
//! question-api -p question-generator` resolves features for the two functions alone.
//!
//! # Layout
//!
//! - `gemini`: [`GeminiStandIn`], [`AnswersAsAsked`], [`LogsCalls`], the replies.
//! - [`gemini_error`]: Google's error bodies (429 per minute and per day, 404, 503).
//! - `faults`: [`Outage`], [`WindowQuota`], [`RateQuota`], [`Latency`].
//! - `runtime_api`: [`RuntimeApi`] and the [`Completion`]s it reports.
//! - [`smoke`]: a bootstrap binary run against the Runtime API stand-in, and checked.

mod faults;
mod gemini;
pub mod gemini_error;
mod runtime_api;
pub mod smoke;

pub use faults::{Latency, Outage, RateQuota, WindowQuota, too_many};
pub use gemini::{
    AnswersAsAsked, Builder, GeminiStandIn, LogsCalls, answer_with_usage, gemini_reply, sample_questions,
};
pub use gemini_error::overloaded;
pub use runtime_api::{Completion, RuntimeApi};

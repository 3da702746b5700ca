//! The Gemini `generateContent` client.
//!
//! Building the call and reading the reply are pure functions ([`build_request`],
//! [`build_repair_request`], [`parse_reply`]); [`GeminiClient`] adds HTTP and the failure
//! policy of docs/DESIGN.md: 408/429/500/503/504 and timeouts retried with backoff
//! ([`crate::retry`]) or after Gemini's own `retryDelay`, within the caller's deadline; a used-up
//! per-day quota is final and trips the [`crate::breaker::CircuitBreaker`], which otherwise stops
//! all calls for a while after repeated failures; an unusable answer (schema, count, a finish
//! other than `STOP`, a blocked prompt) gets one repair call; a 404 moves on to the next model of
//! `GEMINI_MODEL`, and 400/403 and a 404 for the last model are final. The response schema is
//! generated from the Rust [`Question`] type, so the contract with the model and with our
//! consumers is one type.
//!
//! Calls use the standard service tier. The Flex tier (half the price) targets 1–15 minutes and is
//! best-effort, so a call could not be bounded by a 180 s invocation with time left to fall back
//! (<https://ai.google.dev/gemini-api/docs/optimization>,
//! <https://ai.google.dev/gemini-api/docs/flex-inference>).
//!
//! # Layout
//!
//! - [`GeminiClient`] (here): the client type, built once per execution environment, and the
//!   [`QuestionSource`] it is. Its methods are split by job over three files: here (building
//!   it), `call` (one call) and `policy` (the calls of one request).
//! - `schema`: the response schema sent as structured output, generated from [`QuestionSet`].
//! - `prompt`: the `generateContent` body, with the request quoted as data ([`build_request`]).
//! - `reply`: reading and checking a reply ([`parse_reply`]) and its token usage.
//! - `error_body`: Gemini's error bodies: the message, `RetryInfo` and a per-day `QuotaFailure`.
//! - `key`: where the API key comes from ([`api_key`]).
//! - `call`: one HTTP call: sent, classified, then reported to the circuit breaker in one
//!   place; it comes to questions, throttled, transient, unusable, next model or final.
//! - `classify`: what a reply (or a failed call) means for the retry policy and for the
//!   breaker (pure).
//! - `tally`: the per-request tally of calls, latency, tokens and the model that answered
//!   (span fields and EMF metrics).
//! - `policy`: retries, the repair call, the deadline, the pace and the breaker around the
//!   calls, and waiting for Gemini as a whole to answer again.

mod call;
mod classify;
mod error_body;
mod key;
mod policy;
mod prompt;
mod reply;
mod schema;
mod tally;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use qgen_adapters::secrets::SecretsError;
use qgen_contract::events::{GenerationRequest, Question};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::breaker::{CircuitBreaker, Clock, State as BreakerState, SystemClock};
use crate::config::{GeminiConfig, RetryConfig, ThinkingLevel};
use crate::pace::Pacer;
use crate::source::{Calls, Deadlines, GenerationError, QuestionSource};
use tally::Tally;

pub use key::api_key;
pub use prompt::{build_repair_request, build_request};
pub use reply::{Usage, parse_reply};
pub use schema::{QuestionSet, response_schema};

/// The client could not be built, or its API key could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// reqwest could not build its client (TLS setup).
    #[error("could not build the Gemini HTTP client")]
    Http(#[source] reqwest::Error),
    /// The key has characters an HTTP header cannot carry (the key itself is not shown).
    #[error("the Gemini API key is not a valid HTTP header value")]
    InvalidKey,
    /// The configuration names no model.
    #[error("GEMINI_MODEL names no model")]
    NoModel,
    /// Neither variable names a key.
    #[error("set GEMINI_API_KEY_SECRET_ARN or GOOGLE_API_KEY")]
    NoKey,
    /// Secrets Manager did not give the key.
    #[error("could not read the Gemini API key")]
    Secret(#[source] SecretsError),
}

/// A `generateContent` client, built once per execution environment: it keeps the HTTP
/// connection pool, the circuit breaker and the model in use, which every invocation shares.
pub struct GeminiClient {
    http: reqwest::Client,
    models: Vec<Model>,
    /// Index in `models` of the model in use: it only moves on, after a 404 (a retired model
    /// does not come back; a new execution environment starts from the first again).
    current: AtomicUsize,
    api_key: HeaderValue,
    timeout: Duration,
    retry: RetryConfig,
    thinking: ThinkingLevel,
    breaker: CircuitBreaker,
    /// When the next call may go out: the quota's pace and Gemini's per-minute `retryDelay`.
    pacer: Pacer,
    /// Whether a reply from another model than the configured one was logged already.
    forwarded: AtomicBool,
}

/// A model of `GEMINI_MODEL` and its `generateContent` URL.
struct Model {
    name: String,
    endpoint: String,
}

impl GeminiClient {
    /// A client for `config.models` at `config.base_url`, authenticating with `api_key`.
    pub fn new(config: &GeminiConfig, api_key: SecretString) -> Result<Self, BuildError> {
        Self::with_clock(config, api_key, SystemClock)
    }

    /// The same, with the circuit breaker reading `clock` (tests move it by hand).
    pub fn with_clock(
        config: &GeminiConfig,
        api_key: SecretString,
        clock: impl Clock + 'static,
    ) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(BuildError::Http)?;
        let mut key = HeaderValue::from_str(api_key.expose_secret()).map_err(|_| BuildError::InvalidKey)?;
        // Keeps it out of the HTTP stack's own debug output.
        key.set_sensitive(true);
        if config.models.is_empty() {
            return Err(BuildError::NoModel);
        }
        let models = config
            .models
            .iter()
            .map(|name| Model {
                name: name.clone(),
                endpoint: format!("{}/v1beta/models/{name}:generateContent", config.base_url),
            })
            .collect();
        Ok(GeminiClient {
            http,
            models,
            current: AtomicUsize::new(0),
            api_key: key,
            timeout: config.request_timeout,
            retry: config.retry,
            thinking: config.thinking_level,
            breaker: CircuitBreaker::new(config.breaker, clock),
            pacer: Pacer::new(config.quota.rpm, config.quota.invocations),
            forwarded: AtomicBool::new(false),
        })
    }

    /// The model calls go to now: the first of `GEMINI_MODEL` that Gemini has not answered 404
    /// for.
    pub fn model(&self) -> &str {
        &self.models[self.current.load(std::sync::atomic::Ordering::Relaxed)].name
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }
}

impl QuestionSource for GeminiClient {
    async fn generate(
        &self,
        request: &GenerationRequest,
        deadline: Instant,
    ) -> Result<Vec<Question>, GenerationError> {
        self.generate_reported(request, Deadlines::no_wait(deadline))
            .await
            .0
    }

    async fn generate_reported(
        &self,
        request: &GenerationRequest,
        deadlines: Deadlines,
    ) -> (Result<Vec<Question>, GenerationError>, Option<Calls>) {
        let mut tally = Tally::default();
        let outcome = self.generate_until(request, deadlines, &mut tally).await;
        tally.record();
        tally.emit();
        (outcome, tally.calls())
    }
}

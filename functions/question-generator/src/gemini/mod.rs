//! The Gemini `generateContent` client.
//!
//! Building the call and reading the reply are pure functions ([`build_request`],
//! [`build_repair_request`], [`parse_reply`]); [`GeminiClient`] adds HTTP and the failure
//! policy of docs/DESIGN.md: 429/500/503/504 and timeouts retried with backoff ([`crate::retry`])
//! within the caller's deadline; an unusable answer (schema, count, a finish other than `STOP`,
//! a blocked prompt) gets one repair call; 400/403/404 are final; and a
//! [`crate::breaker::CircuitBreaker`] stops all calls for a while after repeated failures. The
//! response schema is generated from the Rust [`Question`] type, so the contract with the model
//! and with our consumers is one type.
//!
//! # Layout
//!
//! - [`GeminiClient`] (here): the client type, built once per execution environment.
//! - `schema`: the response schema sent as structured output, generated from [`QuestionSet`].
//! - `prompt`: the `generateContent` body, with the request quoted as data ([`build_request`]).
//! - `reply`: reading and checking a reply ([`parse_reply`]), and Gemini's error bodies.
//! - `key`: where the API key comes from ([`api_key`]).
//! - `call`: one HTTP call, classified as questions, transient, unusable or final.
//! - `policy`: retries, the repair call, the deadline and the breaker around the calls.

mod call;
mod key;
mod policy;
mod prompt;
mod reply;
mod schema;

use std::time::Duration;

use qgen_adapters::secrets::SecretsError;
use qgen_contract::events::{GenerationRequest, Question};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::breaker::{CircuitBreaker, Clock, State as BreakerState, SystemClock};
use crate::config::{GeminiConfig, RetryConfig};
use crate::source::{GenerationError, QuestionSource};
use call::Tally;

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
    /// Neither variable names a key.
    #[error("set GEMINI_API_KEY_SECRET_ARN or GOOGLE_API_KEY")]
    NoKey,
    /// Secrets Manager did not give the key.
    #[error("could not read the Gemini API key")]
    Secret(#[source] SecretsError),
}

/// A `generateContent` client for one model, built once per execution environment: it keeps
/// the HTTP connection pool and the circuit breaker that every invocation shares.
pub struct GeminiClient {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: HeaderValue,
    timeout: Duration,
    retry: RetryConfig,
    breaker: CircuitBreaker,
}

impl GeminiClient {
    /// A client for `config.model` at `config.base_url`, authenticating with `api_key`.
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
        Ok(GeminiClient {
            http,
            endpoint: format!(
                "{}/v1beta/models/{}:generateContent",
                config.base_url, config.model
            ),
            model: config.model.clone(),
            api_key: key,
            timeout: config.request_timeout,
            retry: config.retry,
            breaker: CircuitBreaker::new(config.breaker, clock),
        })
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
        let mut tally = Tally::default();
        let outcome = self.generate_until(request, deadline, &mut tally).await;
        tally.record();
        outcome
    }
}

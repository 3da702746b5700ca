//! The Gemini stand-in: an HTTP server on loopback that answers `generateContent` calls with a
//! responder ([`AnswersAsAsked`], a fault of [`crate::faults`], or a test's own), and the
//! questions and replies it answers with.

use std::net::SocketAddr;

use qgen_contract::prompt::PromptData;
use wiremock::matchers::{header_exists, method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Well-formed questions for a topic, as a model would return them.
pub use qgen_contract::offline::questions as sample_questions;

/// A `generateContent` reply whose text is `text`, finishing with `finish_reason`.
pub use qgen_contract::offline::gemini_reply;

/// Answers a `generateContent` call with exactly the questions it asks for. It reads the
/// request data from the last part of the last content, which the generator's client sends as
/// JSON (`topic`, `num_questions`, `difficulty`), as a careful model would.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswersAsAsked;

impl Respond for AnswersAsAsked {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut reply = qgen_contract::offline::answer_generate_content(&request.body);
        // Gemini names the model that answered: here, the one the URL calls.
        let model = request
            .url
            .path()
            .rsplit('/')
            .next()
            .and_then(|last| last.strip_suffix(":generateContent"));
        if let Some(model) = model {
            reply["modelVersion"] = model.into();
        }
        ResponseTemplate::new(200).set_body_json(reply)
    }
}

/// Logs what each call asked (`answered generateContent topic=… num_questions=…`, read with
/// the generator's own [`PromptData`], so a change of prompt layout breaks this build), then
/// answers with the responder inside. A stand-in another process calls uses it:
/// `scripts/check-invoke` looks for the line to know that the real binary called.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogsCalls<R>(pub R);

impl<R: Respond> Respond for LogsCalls<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let asked = serde_json::from_slice(&request.body)
            .ok()
            .and_then(|body| PromptData::from_generate_content(&body));
        match asked {
            Some(data) => {
                tracing::info!(topic = %data.topic, num_questions = data.num_questions, "answered generateContent")
            }
            None => tracing::info!("answered generateContent without prompt data"),
        }
        self.0.respond(request)
    }
}

/// An HTTP server on loopback that answers like Gemini's `generateContent`: a POST to
/// `/v1beta/models/{model}:generateContent` with an `x-goog-api-key` header gets the
/// responder's answer; anything else gets a 404. Stops when dropped.
pub struct GeminiStandIn {
    server: MockServer,
}

/// How a [`GeminiStandIn`] listens: on a free port unless given a listener, noting every call
/// unless told not to.
#[derive(Debug, Default)]
pub struct Builder {
    listener: Option<std::net::TcpListener>,
    forget_calls: bool,
}

impl Builder {
    /// Listens on `listener` (a fixed address, for a stand-in another process calls).
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Keeps no copy of the calls ([`GeminiStandIn::calls`] is then empty): for long runs
    /// (benchmarks, the local stack) whose calls nobody reads back.
    pub fn forget_calls(mut self) -> Self {
        self.forget_calls = true;
        self
    }

    /// Starts the stand-in answering with `responder`.
    pub async fn start(self, responder: impl Respond + 'static) -> GeminiStandIn {
        let server = if self.listener.is_none() && !self.forget_calls {
            // From wiremock's pool of servers (reset between uses): quicker for the tests.
            MockServer::start().await
        } else {
            let mut builder = MockServer::builder();
            if let Some(listener) = self.listener {
                builder = builder.listener(listener);
            }
            if self.forget_calls {
                builder = builder.disable_request_recording();
            }
            builder.start().await
        };
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1beta/models/[^/:]+:generateContent$"))
            .and(header_exists("x-goog-api-key"))
            .respond_with(responder)
            .mount(&server)
            .await;
        GeminiStandIn { server }
    }
}

impl GeminiStandIn {
    /// A stand-in on a free loopback port that answers every well-formed call (right path, API
    /// key header present) with `responder`.
    pub async fn start(responder: impl Respond + 'static) -> Self {
        Self::builder().start(responder).await
    }

    /// A stand-in that always returns the questions asked for.
    pub async fn answering() -> Self {
        Self::start(AnswersAsAsked).await
    }

    /// A stand-in with a listener of its own or without a record of its calls.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The base URL to configure as `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        *self.server.address()
    }

    /// The calls received so far (none when started with [`Builder::forget_calls`]).
    pub async fn calls(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

/// A `generateContent` reply with exactly the questions `request_body` asks for, and the usage a
/// thinking model reports: `thoughtsTokenCount` (billed as output) and
/// `cachedContentTokenCount` (a part of the prompt, billed at the cached rate)
/// (<https://ai.google.dev/api/generate-content#UsageMetadata>).
pub fn answer_with_usage(request_body: &[u8], usage: serde_json::Value) -> serde_json::Value {
    let mut reply = qgen_contract::offline::answer_generate_content(request_body);
    reply["usageMetadata"] = usage;
    reply
}

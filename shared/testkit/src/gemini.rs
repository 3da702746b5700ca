//! The Gemini stand-in: an HTTP server on loopback that answers `generateContent` calls, and
//! the questions and replies it (and tests) answer with.

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
        ResponseTemplate::new(200)
            .set_body_json(qgen_contract::offline::answer_generate_content(&request.body))
    }
}

/// An HTTP server on loopback that answers like Gemini's `generateContent`.
pub struct GeminiStandIn {
    server: MockServer,
}

impl GeminiStandIn {
    /// A stand-in that answers every well-formed call (right path, API key header present)
    /// with `responder`; anything else gets wiremock's 404.
    pub async fn start(responder: impl Respond + 'static) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1beta/models/[^/:]+:generateContent$"))
            .and(header_exists("x-goog-api-key"))
            .respond_with(responder)
            .mount(&server)
            .await;
        GeminiStandIn { server }
    }

    /// A stand-in that always returns the questions asked for.
    pub async fn answering() -> Self {
        Self::start(AnswersAsAsked).await
    }

    /// The base URL to configure as `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The calls received so far.
    pub async fn calls(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

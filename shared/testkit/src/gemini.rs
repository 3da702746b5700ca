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

/// Gemini's error bodies, in the shapes Google documents and sends: `{"error": {"code",
/// "message", "status", "details"}}`, with `google.rpc.QuotaFailure`, `Help` and `RetryInfo`
/// details on a 429 (<https://ai.google.dev/gemini-api/docs/troubleshooting>,
/// <https://ai.google.dev/gemini-api/docs/rate-limits>).
pub mod gemini_error {
    use serde_json::{Value, json};
    use wiremock::ResponseTemplate;

    /// A 429 for the per-minute request quota, asking for a wait of `retry_delay` (e.g. `"37s"`).
    pub fn per_minute_quota(retry_delay: &str) -> Value {
        quota(
            "GenerateRequestsPerMinutePerProjectPerModel",
            "generate_content_requests",
            "1000",
            retry_delay,
        )
    }

    /// A 429 for the per-day request quota, with the `retryDelay` Gemini sends with it anyway.
    pub fn per_day_quota(retry_delay: &str) -> Value {
        quota(
            "GenerateRequestsPerDayPerProjectPerModel",
            "generate_content_requests",
            "10000",
            retry_delay,
        )
    }

    fn quota(quota_id: &str, metric: &str, limit: &str, retry_delay: &str) -> Value {
        let seconds = retry_delay.trim_end_matches('s');
        json!({"error": {
            "code": 429,
            "message": format!(
                "You exceeded your current quota, please check your plan and billing details. For \
                 more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n\
                 * Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, limit: {limit}, \
                 model: gemini-3.6-flash\nPlease retry in {seconds}s."
            ),
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric": format!("generativelanguage.googleapis.com/{metric}"),
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": "gemini-3.6-flash"},
                        "quotaValue": limit
                    }]
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits"
                    }]
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
            ]
        }})
    }

    /// The 404 for a model Gemini does not serve (retired, or misspelt).
    pub fn model_not_found(model: &str) -> Value {
        json!({"error": {
            "code": 404,
            "message": format!(
                "models/{model} is not found for API version v1beta, or is not supported for \
                 generateContent. Call ListModels to see the list of available models and their \
                 supported methods."
            ),
            "status": "NOT_FOUND"
        }})
    }

    /// `body` as an HTTP response with `status`.
    pub fn response(status: u16, body: Value) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(body)
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

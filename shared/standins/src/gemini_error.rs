//! Gemini's error bodies, in the shapes Google documents and sends: `{"error": {"code",
//! "message", "status", "details"}}` (the gRPC error format of
//! <https://ai.google.dev/gemini-api/docs/generate-content/api-errors>), with
//! `google.rpc.QuotaFailure`, `Help` and `RetryInfo` details on a 429
//! (<https://ai.google.dev/gemini-api/docs/troubleshooting>,
//! <https://ai.google.dev/gemini-api/docs/rate-limits>).
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

/// Google's 503 body: "The model is overloaded. Please try again later."
/// (<https://ai.google.dev/gemini-api/docs/troubleshooting>).
pub fn overloaded() -> ResponseTemplate {
    response(
        503,
        json!({"error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE"
        }}),
    )
}

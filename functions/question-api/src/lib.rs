//! question-api: `POST /llm/questions/generate-for-content-service` → a validated request event
//! on `question.request`, answered with 202 only once the broker has acknowledged it.
//!
//! The handler never returns `Err`: every outcome is a response with a JSON body (an `Err`
//! would reach the caller as API Gateway's opaque 502). Client mistakes are 4xx naming what is
//! wrong; a broker that does not acknowledge in time is a 503, and nothing is half-published.
//!
//! The request record carries a W3C `traceparent` ([`qgen_contract::trace`]): the caller's
//! trace when it sent a valid one, else API Gateway's or Lambda's X-Ray trace, else a new one.

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::{EventPublisher, PublishError, publish_event};
use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::api::{Accepted, AcceptedStatus, ApiErrorCode, ErrorResponse, RETRY_AFTER_SECONDS};
use qgen_contract::events::RequestEvent;
use qgen_contract::headers::TRACEPARENT;
use qgen_contract::trace::TraceContext;
use qgen_contract::validation::{Limits, MAX_BODY_BYTES, ValidationError, parse_request_body};
use serde::Serialize;

/// The `Service` dimension of this function's metrics: the contract's name of the API
/// ([`qgen_contract::metrics::API`]), under the name the benchmarks know it by.
pub use qgen_contract::metrics::API as SERVICE;

/// The one route this function serves.
pub use qgen_contract::api::ROUTE;

/// The API function: a publisher built once per execution environment, plus its settings.
pub struct Api<P> {
    publisher: P,
    request_topic: String,
    limits: Limits,
    publish_timeout: std::time::Duration,
}

impl<P: EventPublisher> Api<P> {
    /// An API that publishes requests through `publisher`.
    pub fn new(publisher: P, config: &ApiConfig) -> Self {
        Api {
            publisher,
            request_topic: config.kafka.request_topic.clone(),
            limits: config.limits,
            // librdkafka reports a record's timeout late while it reconnects (seen at up to 3x
            // message.timeout.ms with the broker down); the caller gets its 503 on time anyway.
            // A record past its message timeout is never sent, so this cannot persist it later.
            publish_timeout: config.kafka.message_timeout + std::time::Duration::from_secs(1),
        }
    }

    /// Handles one HTTP request (API Gateway REST v1 or HTTP v2, a function URL, or the local
    /// stack's server; `lambda_http` has already decoded a base64 body).
    #[tracing::instrument(skip_all, fields(request_id = tracing::field::Empty, trace_id = tracing::field::Empty))]
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let trace = trace_of(&request);
        tracing::Span::current().record("trace_id", trace.trace_id());
        // REST APIs put the stage in front of the path (`/prod/llm/...`), hence `ends_with`.
        if !request.uri().path().ends_with(ROUTE) {
            return error(ApiErrorCode::NotFound, "no such route", None);
        }
        if request.method() != Method::POST {
            let mut response = error(ApiErrorCode::MethodNotAllowed, "only POST is allowed", None);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return error(
                ApiErrorCode::UnsupportedMediaType,
                "content-type must be application/json",
                Some("content-type"),
            );
        }
        let body = request.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return error(
                ApiErrorCode::PayloadTooLarge,
                &format!("body must be at most {MAX_BODY_BYTES} bytes"),
                Some("body"),
            );
        }
        let generation = match parse_request_body(body, &self.limits) {
            Ok(generation) => generation,
            Err(ValidationError { code, field, message }) => {
                tracing::info!(field = %field, code = code.as_str(), "request rejected");
                return error(code.into(), &message, Some(&field));
            }
        };
        tracing::Span::current().record("request_id", generation.request_id.as_str());

        let event = RequestEvent::new_request(generation);
        let request_id = &event.event_data.request_id;
        let started = std::time::Instant::now();
        let published = tokio::time::timeout(
            self.publish_timeout,
            publish_event(
                &self.publisher,
                &self.request_topic,
                request_id,
                &event,
                &trace,
                &[],
            ),
        )
        .await
        .unwrap_or_else(|_elapsed| Err(PublishError::TimedOut(self.publish_timeout)));
        let elapsed = started.elapsed();
        match published {
            Ok(delivered) => {
                Metrics::new(SERVICE)
                    .count(Metric::Accepted, 1)
                    .duration(Metric::PublishLatency, elapsed)
                    .emit();
                tracing::info!(
                    event_id = %event.event_id,
                    partition = delivered.partition,
                    offset = delivered.offset,
                    "request accepted"
                );
                respond(
                    StatusCode::ACCEPTED,
                    &Accepted {
                        status: AcceptedStatus::Accepted,
                        request_id: request_id.clone(),
                        event_id: event.event_id.clone(),
                    },
                )
            }
            Err(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "request not persisted");
                Metrics::new(SERVICE)
                    .count(Metric::PublishFailed, 1)
                    .duration(Metric::PublishLatency, elapsed)
                    .emit();
                let mut response = error(
                    ApiErrorCode::Unavailable,
                    "the request could not be queued; retry later",
                    None,
                );
                // When to come back (RFC 9110 §10.2.3): what a broker takes to recover.
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                response
            }
        }
    }
}

/// The trace the request record continues: the caller's valid `traceparent`, else API Gateway's
/// `X-Amzn-Trace-Id`, else the invocation's X-Ray trace id, else a new trace.
fn trace_of(request: &Request) -> TraceContext {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let invocation = request
        .lambda_context_ref()
        .and_then(|context| context.xray_trace_id.as_deref());
    TraceContext::for_request(
        header(TRACEPARENT),
        [header("x-amzn-trace-id"), invocation].into_iter().flatten(),
    )
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// An error response, its status given by its code; every one is also a `Rejected` metric with
/// its code as the `Reason`.
fn error(code: ApiErrorCode, message: &str, field: Option<&str>) -> Response<Body> {
    Metrics::new(SERVICE)
        .dimension("Reason", code.as_str())
        .count(Metric::Rejected, 1)
        .emit();
    respond(status_of(code), &ErrorResponse::new(code, message, field))
}

/// The HTTP status that carries each code (the OpenAPI document lists the same pairs).
fn status_of(code: ApiErrorCode) -> StatusCode {
    match code {
        ApiErrorCode::InvalidJson | ApiErrorCode::MissingField | ApiErrorCode::InvalidField => {
            StatusCode::BAD_REQUEST
        }
        ApiErrorCode::NotFound => StatusCode::NOT_FOUND,
        ApiErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ApiErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ApiErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ApiErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn respond(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // These bodies are plain structs of strings: serializing them cannot fail.
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

//! The question-api handler served over HTTP/1.1, so the same `curl` that would call API
//! Gateway calls the local stack.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use qgen_adapters::kafka::EventPublisher;
use qgen_contract::api::{ApiErrorCode, ErrorResponse};
use question_api::Api;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Bodies larger than this are refused before they reach the handler (which refuses anything
/// over 64 KiB itself, with the contract's 413).
const MAX_READ_BYTES: usize = 1024 * 1024;

/// Serves `api` on `listener` until `shutdown` is cancelled.
pub async fn serve<P>(listener: TcpListener, api: Arc<Api<P>>, shutdown: CancellationToken)
where
    P: EventPublisher + 'static,
{
    serve_connections(
        listener,
        shutdown,
        service_fn(move |request| handle(api.clone(), request)),
    )
    .await;
}

/// Accepts connections on `listener` until `shutdown` is cancelled, serving each over HTTP/1.1
/// with `service` (the API here, the Gemini stand-in in [`crate::gemini`]).
pub(crate) async fn serve_connections<S>(listener: TcpListener, shutdown: CancellationToken, service: S)
where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
}

async fn handle<P: EventPublisher>(
    api: Arc<Api<P>>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    let body = match Limited::new(body, MAX_READ_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let body = ErrorResponse::new(ApiErrorCode::PayloadTooLarge, "body too large", Some("body"));
            let text = serde_json::to_vec(&body).unwrap_or_default();
            return Ok(json(http::StatusCode::PAYLOAD_TOO_LARGE, text));
        }
    };
    let request = lambda_http::Request::from_parts(parts, lambda_http::Body::from(body.to_vec()));
    let response = api.handle(request).await;
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    tracing::info!(
        %method,
        path,
        status = parts.status.as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "http"
    );
    Ok(hyper::Response::from_parts(parts, Full::new(bytes)))
}

/// A JSON response with `status` and `body`.
pub(crate) fn json(status: http::StatusCode, body: Vec<u8>) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

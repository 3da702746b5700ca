//! The question-api handler served over HTTP/1.1, so the same `curl` that would call API
//! Gateway calls the local stack.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
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

/// How much of a body over [`MAX_READ_BYTES`] is still read, and thrown away, before the 413.
///
/// A client is still sending when the 413 is decided, and a failed send fails its request.
/// Closing while the rest of the body is arriving makes the kernel reset the connection (a close
/// with unread data sends RST, not FIN): the client's next write fails, and it may report that
/// (hyper's `IncompleteMessage`, a broken pipe) instead of the 413 sent before it. Reading the
/// rest first lets the connection end as usual, or even stay open. hyper 1.x has
/// no lingering close (dropping an unread body makes it read what is buffered, then close), and
/// taking the socket back with `without_shutdown` to half-close and drain it by hand would
/// duplicate, outside hyper, what reading the body does here inside it. Past this bound a
/// client is not worth the wait: its 413 goes out at once with `Connection: close` (and a body
/// declared that long is refused before a byte of it is read).
const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;

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
    let body = match read_body(body).await {
        ReadBody::Whole(body) => body,
        ReadBody::TooLarge { drained } => return Ok(too_large(drained)),
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

/// A request body as [`read_body`] left it.
enum ReadBody {
    /// At most [`MAX_READ_BYTES`]: for the handler.
    Whole(Bytes),
    /// Over it, or unreadable; `drained` when it was read to its end all the same.
    TooLarge { drained: bool },
}

/// Reads `body`, keeping it if it is at most [`MAX_READ_BYTES`] and reading on, up to
/// [`MAX_DRAIN_BYTES`], if it is not (see there why).
async fn read_body(mut body: Incoming) -> ReadBody {
    if body.size_hint().lower() > MAX_DRAIN_BYTES as u64 {
        return ReadBody::TooLarge { drained: false };
    }
    let mut kept = BytesMut::new();
    let mut seen = 0;
    while let Some(frame) = body.frame().await {
        // A body hyper cannot read (the client went away mid-body, a malformed chunk) has
        // always had the 413; nobody is left to read it.
        let Ok(frame) = frame else {
            return ReadBody::TooLarge { drained: false };
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= MAX_READ_BYTES {
            kept.extend_from_slice(&data);
        } else if seen > MAX_DRAIN_BYTES {
            return ReadBody::TooLarge { drained: false };
        }
    }
    if seen > MAX_READ_BYTES {
        ReadBody::TooLarge { drained: true }
    } else {
        ReadBody::Whole(kept.freeze())
    }
}

/// The contract's 413 for a body over [`MAX_READ_BYTES`]. Unless the body was read to its end,
/// it says `Connection: close`: hyper closes such a connection after the answer, and the client
/// should not send another request on it.
fn too_large(drained: bool) -> hyper::Response<Full<Bytes>> {
    let body = ErrorResponse::new(ApiErrorCode::PayloadTooLarge, "body too large", Some("body"));
    let text = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = json(http::StatusCode::PAYLOAD_TOO_LARGE, text);
    if !drained {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
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

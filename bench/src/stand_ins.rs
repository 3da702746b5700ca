//! Loopback servers the benchmarks run the functions against: a Gemini `generateContent`
//! stand-in with a fixed latency, and a Lambda Runtime API stand-in that hands out scripted
//! invocations and notes when a function first polls.
//!
//! Both are plain hyper servers rather than `qgen_testkit`'s wiremock stand-ins: the test kit is
//! a dev-dependency only, and linking it into this binary would, through Cargo's feature
//! unification, change the features of the function binaries whenever the workspace is built
//! together (as `cargo lambda build` does), the very artifacts being measured.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Accepts connections on `listener` and serves each with `handle` until `shutdown`.
pub(crate) fn serve<F, Fut>(listener: TcpListener, shutdown: CancellationToken, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                () = shutdown.cancelled() => return,
            };
            let handle = handle.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(handle(request).await) }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    });
}

pub(crate) async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
}

/// Answers `generateContent` with the questions asked for, after a fixed delay: a model whose
/// every call takes exactly `latency`, so the batch's wall time measures only our concurrency.
pub struct GeminiStandIn {
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl GeminiStandIn {
    /// Starts the stand-in on a free loopback port.
    pub async fn start(latency: Duration) -> std::io::Result<Self> {
        let (listener, addr) = bind().await?;
        let shutdown = CancellationToken::new();
        serve(listener, shutdown.clone(), move |request| {
            answer(request, latency)
        });
        Ok(GeminiStandIn { addr, shutdown })
    }

    /// The base URL to configure as `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for GeminiStandIn {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn answer(request: Request<Incoming>, latency: Duration) -> Response<Full<Bytes>> {
    // The latency counts from the request's arrival, so our own work does not add to it.
    answer_at(request, tokio::time::Instant::now() + latency).await
}

/// The questions `request` asks for (through [`qgen_contract::offline`]), answered at `at`.
pub(crate) async fn answer_at(request: Request<Incoming>, at: tokio::time::Instant) -> Response<Full<Bytes>> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = qgen_contract::offline::answer_generate_content(&body);
    tokio::time::sleep_until(at).await;
    json_response(StatusCode::OK, &reply)
}

/// What a function posted back for an invocation (or at init).
#[derive(Debug, Clone)]
pub struct Completion {
    /// `response`, `error` or `init-error`.
    pub kind: String,
    /// The body it posted.
    pub body: Bytes,
}

struct RuntimeState {
    events: Mutex<VecDeque<Bytes>>,
    first_poll: OnceLock<Instant>,
    polled: Notify,
    completions: mpsc::UnboundedSender<Completion>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
}

/// A Lambda Runtime API stand-in: `GET …/invocation/next` hands out the scripted events in
/// order (then holds the poll open, as Lambda does between invocations); responses and errors
/// are reported through [`RuntimeApi::completion`].
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<RuntimeState>,
    completions: mpsc::UnboundedReceiver<Completion>,
}

impl RuntimeApi {
    /// Starts the stand-in with `events` (invocation payloads) queued.
    pub async fn start(events: Vec<Bytes>) -> std::io::Result<Self> {
        let (listener, addr) = bind().await?;
        let (sender, completions) = mpsc::unbounded_channel();
        let state = Arc::new(RuntimeState {
            events: Mutex::new(events.into()),
            first_poll: OnceLock::new(),
            polled: Notify::new(),
            completions: sender,
            next_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
        });
        let shared = state.clone();
        serve(listener, state.shutdown.clone(), move |request| {
            runtime(shared.clone(), request)
        });
        Ok(RuntimeApi {
            addr,
            state,
            completions,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first asked for an invocation; waits at most `limit`.
    pub async fn first_poll(&self, limit: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a poll between the two is not missed.
            let notified = self.state.polled.notified();
            if let Some(at) = self.state.first_poll.get() {
                return Some(*at);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.state.first_poll.get().copied();
            }
        }
    }

    /// The next response or error the function posted; waits at most `limit`.
    pub async fn completion(&mut self, limit: Duration) -> Option<Completion> {
        tokio::time::timeout(limit, self.completions.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

async fn runtime(state: Arc<RuntimeState>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && path.ends_with("/runtime/invocation/next") {
        let _ = state.first_poll.set(Instant::now());
        state.polled.notify_one();
        let event = state.events.lock().ok().and_then(|mut events| events.pop_front());
        let Some(event) = event else {
            // Nothing more to run: hold the poll open until the benchmark is done with it.
            state.shutdown.cancelled().await;
            return json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({}));
        };
        let id = format!("bench-{}", state.next_id.fetch_add(1, Ordering::Relaxed));
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 300_000;
        let mut response = Response::new(Full::new(event));
        let headers = response.headers_mut();
        let pairs = [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:000000000000:function:bench".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ];
        for (name, value) in pairs {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        return response;
    }
    let kind = if path.ends_with("/runtime/init/error") {
        "init-error"
    } else if path.ends_with("/response") {
        "response"
    } else if path.ends_with("/error") {
        "error"
    } else {
        return json_response(StatusCode::NOT_FOUND, &json!({}));
    };
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let _ = state.completions.send(Completion {
        kind: kind.to_owned(),
        body,
    });
    json_response(StatusCode::ACCEPTED, &json!({"status": "OK"}))
}

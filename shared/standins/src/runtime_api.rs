//! The Lambda Runtime API stand-in
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>): `GET
//! /2018-06-01/runtime/invocation/next` hands out the scripted events in order, with the
//! headers Lambda sends, then holds the poll open as Lambda does between invocations; what the
//! function posts back (`…/response`, `…/error`, `…/init/error`) is reported through
//! [`RuntimeApi::completion`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How long a poll with nothing to hand out is held open: longer than any run that uses the
/// stand-in (the function is stopped, or the stand-in dropped, before it ends).
const HOLD: Duration = Duration::from_secs(3600);

/// The deadline given with each invocation, from when it is handed out.
const DEADLINE: Duration = Duration::from_secs(300);

/// What a function posted back for an invocation (or at init).
#[derive(Debug, Clone)]
pub struct Completion {
    /// `response`, `error` or `init-error`.
    pub kind: String,
    /// The body it posted.
    pub body: Bytes,
}

struct State {
    function: String,
    events: Mutex<VecDeque<Bytes>>,
    polls: AtomicU64,
    handed: AtomicU64,
    held: AtomicU64,
    first_poll: OnceLock<Instant>,
    polled: Notify,
    completions: mpsc::UnboundedSender<Completion>,
}

/// The stand-in; stops when dropped.
pub struct RuntimeApi {
    server: MockServer,
    state: Arc<State>,
    completions: mpsc::UnboundedReceiver<Completion>,
}

impl RuntimeApi {
    /// Starts the stand-in on a free loopback port with `events` (invocation payloads) queued,
    /// for a function named `bench`.
    pub async fn start(events: Vec<Bytes>) -> std::io::Result<Self> {
        Self::start_for("bench", events).await
    }

    /// [`RuntimeApi::start`] for a function named `function` (its request ids are
    /// `{function}-1`, `{function}-2`, …, and its ARN names it).
    pub async fn start_for(function: &str, events: Vec<Bytes>) -> std::io::Result<Self> {
        let (sender, completions) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            function: function.to_owned(),
            events: Mutex::new(events.into()),
            polls: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            held: AtomicU64::new(0),
            first_poll: OnceLock::new(),
            polled: Notify::new(),
            completions: sender,
        });
        let server = MockServer::builder().disable_request_recording().start().await;
        Mock::given(path_regex(r"^/2018-06-01/runtime/"))
            .respond_with(Runtime(state.clone()))
            .mount(&server)
            .await;
        Ok(RuntimeApi {
            server,
            state,
            completions,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.server.address().to_string()
    }

    /// The address it listens on.
    pub fn socket_address(&self) -> SocketAddr {
        *self.server.address()
    }

    /// Polls for an invocation so far.
    pub fn polls(&self) -> u64 {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// Polls that found nothing to hand out, and are held open.
    pub fn held_polls(&self) -> u64 {
        self.state.held.load(Ordering::SeqCst)
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

    /// The next response or error the function posted, if there is one already.
    pub fn try_completion(&mut self) -> Option<Completion> {
        self.completions.try_recv().ok()
    }
}

/// The responder behind every `/2018-06-01/runtime/…` path.
struct Runtime(Arc<State>);

impl Respond for Runtime {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let state = &self.0;
        let path = request.url.path();
        if request.method.as_str() == "GET" && path.ends_with("/runtime/invocation/next") {
            state.polls.fetch_add(1, Ordering::SeqCst);
            let _ = state.first_poll.set(Instant::now());
            state.polled.notify_waiters();
            let event = state.events.lock().ok().and_then(|mut events| events.pop_front());
            let Some(event) = event else {
                // Nothing more to run: hold the poll open until the run is done with it.
                state.held.fetch_add(1, Ordering::SeqCst);
                return ResponseTemplate::new(503)
                    .set_body_json(json!({}))
                    .set_delay(HOLD);
            };
            let n = state.handed.fetch_add(1, Ordering::SeqCst) + 1;
            return invocation(&state.function, n, event);
        }
        let kind = if request.method.as_str() != "POST" {
            None
        } else if path.ends_with("/runtime/init/error") {
            Some("init-error")
        } else if path.ends_with("/response") {
            Some("response")
        } else if path.ends_with("/error") {
            Some("error")
        } else {
            None
        };
        let Some(kind) = kind else {
            return ResponseTemplate::new(404).set_body_json(json!({}));
        };
        let _ = state.completions.send(Completion {
            kind: kind.to_owned(),
            body: Bytes::from(request.body.clone()),
        });
        ResponseTemplate::new(202).set_body_json(json!({"status": "OK"}))
    }
}

/// Invocation `n` of `function`, with the headers Lambda sends with an event.
fn invocation(function: &str, n: u64, event: Bytes) -> ResponseTemplate {
    let deadline_ms = (SystemTime::now() + DEADLINE)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    ResponseTemplate::new(200)
        .set_body_raw(event.to_vec(), "application/json")
        .insert_header("lambda-runtime-aws-request-id", format!("{function}-{n}"))
        .insert_header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .insert_header(
            "lambda-runtime-invoked-function-arn",
            format!("arn:aws:lambda:eu-west-1:000000000000:function:{function}"),
        )
        .insert_header(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000",
        )
}

//! Gemini as a whole failing, for the stand-in ([`super::GeminiStandIn::start`]): an outage
//! switched on and off by the test, and a per-window request quota answered with Google's 429.
//! Both answer the calls they let through as [`AnswersAsAsked`] does, and note every call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::{Request, Respond, ResponseTemplate};

use super::AnswersAsAsked;
use super::gemini_error;

/// Google's 503 body: "The model is overloaded. Please try again later."
/// (<https://ai.google.dev/gemini-api/docs/troubleshooting>).
pub fn overloaded() -> ResponseTemplate {
    ResponseTemplate::new(503).set_body_json(json!({"error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE"
    }}))
}

/// Gemini down (503 on every call) while [`Outage::set_down`] says so, answering as asked
/// otherwise. Cheap to clone: the clones share the switch and the counts.
#[derive(Debug, Clone, Default)]
pub struct Outage {
    down: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
}

impl Outage {
    /// Up, until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Down (`true`) or up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Calls answered 503.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Calls answered with questions.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Respond for Outage {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return overloaded();
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        AnswersAsAsked.respond(request)
    }
}

/// A request quota of `limit` calls per `window` (Gemini's is per minute; tests shrink the
/// window to keep the clock short): fixed windows from the first call, and past the limit
/// Google's per-minute 429 with a `RetryInfo.retryDelay` until the window ends.
#[derive(Debug, Clone)]
pub struct WindowQuota {
    window: Duration,
    limit: u64,
    state: Arc<Mutex<QuotaState>>,
}

#[derive(Debug, Default)]
struct QuotaState {
    started: Option<Instant>,
    used: u64,
    throttled: u64,
    answered_at: Vec<Instant>,
}

impl WindowQuota {
    /// `limit` calls per `window`.
    pub fn new(limit: u64, window: Duration) -> Self {
        WindowQuota {
            window,
            limit,
            state: Arc::default(),
        }
    }

    /// Calls answered 429.
    pub fn throttled(&self) -> u64 {
        self.state.lock().unwrap().throttled
    }

    /// When each call answered with questions was answered.
    pub fn answered_at(&self) -> Vec<Instant> {
        self.state.lock().unwrap().answered_at.clone()
    }
}

impl Respond for WindowQuota {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        let started = *state.started.get_or_insert(now);
        let windows = now.duration_since(started).as_nanos() / self.window.as_nanos();
        let window_start = started + self.window * u32::try_from(windows).unwrap();
        if state.started != Some(window_start) {
            state.started = Some(window_start);
            state.used = 0;
        }
        if state.used >= self.limit {
            state.throttled += 1;
            let left = (window_start + self.window).duration_since(now);
            let body = gemini_error::per_minute_quota(&format!("{:.3}s", left.as_secs_f64()));
            return ResponseTemplate::new(429).set_body_json(body);
        }
        state.used += 1;
        state.answered_at.push(now);
        drop(state);
        AnswersAsAsked.respond(request)
    }
}

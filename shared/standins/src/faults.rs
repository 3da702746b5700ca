//! Gemini failing or slow, as responders for [`crate::GeminiStandIn::start`]: an [`Outage`]
//! switched on and off by the test (Google's 503), request quotas answered with Google's
//! per-minute 429 ([`WindowQuota`] in fixed windows, [`RateQuota`] as a token bucket), and
//! [`Latency`], fixed or drawn per call. The faults answer the calls they let through as
//! [`AnswersAsAsked`] does, or (the quota and the latency) as the responder they wrap; all note
//! their calls, so a run that keeps no copy of them can still count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wiremock::{Request, Respond, ResponseTemplate};

use crate::gemini::AnswersAsAsked;
use crate::gemini_error;

/// Google's per-minute 429, asking to retry after `wait` (`RetryInfo.retryDelay`, in seconds
/// with milliseconds: `"1.250s"`).
pub fn too_many(wait: Duration) -> ResponseTemplate {
    gemini_error::response(
        429,
        gemini_error::per_minute_quota(&format!("{:.3}s", wait.as_secs_f64())),
    )
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
            return gemini_error::overloaded();
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
            return too_many(left);
        }
        state.used += 1;
        state.answered_at.push(now);
        drop(state);
        AnswersAsAsked.respond(request)
    }
}

/// A requests-per-minute quota as a token bucket refilled at `rpm / 60` a second, holding at most
/// one second's worth: calls spread evenly get through, bunched ones are refused at once with
/// Google's 429, whose `retryDelay` is the wait until a token is back. (Google does not document
/// how its per-minute window is enforced; the capacity sweep models it this way.) Without a
/// rate ([`RateQuota::unlimited`]) it only counts. Cheap to clone: clones share the bucket.
#[derive(Clone)]
pub struct RateQuota<R = AnswersAsAsked> {
    /// Calls per second, when limited.
    per_second: Option<f64>,
    bucket: Arc<Mutex<Bucket>>,
    calls: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
    inner: R,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateQuota {
    /// `rpm` calls a minute, the bucket full.
    pub fn per_minute(rpm: f64) -> Self {
        Self::new(Some(rpm / 60.0))
    }

    /// No quota: every call goes through, counted.
    pub fn unlimited() -> Self {
        Self::new(None)
    }

    fn new(per_second: Option<f64>) -> Self {
        let bucket = Bucket {
            tokens: per_second.unwrap_or(1.0).max(1.0),
            refilled: Instant::now(),
        };
        RateQuota {
            per_second,
            bucket: Arc::new(Mutex::new(bucket)),
            calls: Arc::default(),
            throttled: Arc::default(),
            inner: AnswersAsAsked,
        }
    }
}

impl<R> RateQuota<R> {
    /// The calls let through are answered by `inner` (e.g. a [`Latency`]).
    pub fn around<S>(self, inner: S) -> RateQuota<S> {
        RateQuota {
            per_second: self.per_second,
            bucket: self.bucket,
            calls: self.calls,
            throttled: self.throttled,
            inner,
        }
    }

    /// Every call received.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls answered 429.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// `None` when a call at `now` may go ahead (a token taken), else the wait until one is there.
    pub fn admit(&self, now: Instant) -> Option<Duration> {
        let per_second = self.per_second?;
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(per_second.max(1.0));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

impl<R: Respond> Respond for RateQuota<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(wait) = self.admit(Instant::now()) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return too_many(wait);
        }
        self.inner.respond(request)
    }
}

/// How long each call takes.
enum Delay {
    Fixed(Duration),
    Drawn(Mutex<Box<dyn FnMut() -> Duration + Send>>),
}

/// Answers as the responder inside does, `latency` later: fixed (every call exactly as long, so
/// a batch's wall time measures only the caller's concurrency) or drawn per call (e.g. from a
/// seeded lognormal, as the capacity sweep does). Cheap to clone: clones share the draw.
#[derive(Clone)]
pub struct Latency<R = AnswersAsAsked> {
    delay: Arc<Delay>,
    inner: R,
}

impl Latency {
    /// Every call takes `latency`.
    pub fn fixed(latency: Duration) -> Self {
        Latency {
            delay: Arc::new(Delay::Fixed(latency)),
            inner: AnswersAsAsked,
        }
    }

    /// Each call takes what `draw` returns for it.
    pub fn drawn(draw: impl FnMut() -> Duration + Send + 'static) -> Self {
        Latency {
            delay: Arc::new(Delay::Drawn(Mutex::new(Box::new(draw)))),
            inner: AnswersAsAsked,
        }
    }
}

impl<R> Latency<R> {
    /// The calls are answered by `inner`, late.
    pub fn around<S>(self, inner: S) -> Latency<S> {
        Latency {
            delay: self.delay,
            inner,
        }
    }
}

impl<R: Respond> Respond for Latency<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let delay = match &*self.delay {
            Delay::Fixed(latency) => *latency,
            Delay::Drawn(draw) => (draw.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))(),
        };
        self.inner.respond(request).set_delay(delay)
    }
}

//! The capacity sweep's Gemini: latencies drawn from a seeded lognormal, and a requests-per-minute
//! quota that answers 429 `RESOURCE_EXHAUSTED` as Gemini does when it is exceeded.
//!
//! The 429's body is Gemini's documented error shape
//! (<https://ai.google.dev/gemini-api/docs/troubleshooting>): a `google.rpc.QuotaFailure` naming a
//! per-minute quota and a `google.rpc.RetryInfo` whose `retryDelay` is the wait until the quota
//! has room again. Google does not document how the per-minute window is enforced; this one is a
//! token bucket refilled at `rpm / 60` a second holding at most one second's worth, so calls
//! spread evenly get through and bunched ones are refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use qgen_planner::model::Latency;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stand_ins::{answer_at, bind, json_response, serve};

/// Calls answered and refused so far.
#[derive(Debug, Default)]
pub struct Counters {
    /// Every `generateContent` call received.
    pub calls: AtomicU64,
    /// Calls answered 429.
    pub throttled: AtomicU64,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

struct State {
    latency: LogNormal<f64>,
    rng: Mutex<StdRng>,
    /// Calls per second and the bucket, when a quota is set.
    quota: Option<(f64, Mutex<Bucket>)>,
    counters: Arc<Counters>,
}

/// The stand-in; stops when dropped.
pub struct QuotaGemini {
    base_url: String,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
}

impl QuotaGemini {
    /// Starts on a free loopback port: each call takes a latency drawn from `latency` (seeded by
    /// `seed`), and with `quota_rpm` calls beyond that rate are answered 429 at once.
    pub async fn start(latency: Latency, quota_rpm: Option<f64>, seed: u64) -> std::io::Result<Self> {
        let (listener, addr) = bind().await?;
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State {
            latency: latency.distribution(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            quota: quota_rpm.map(|rpm| {
                let per_second = rpm / 60.0;
                let bucket = Bucket {
                    tokens: per_second.max(1.0),
                    refilled: Instant::now(),
                };
                (per_second, Mutex::new(bucket))
            }),
            counters: counters.clone(),
        });
        let shutdown = CancellationToken::new();
        serve(listener, shutdown.clone(), move |request| {
            answer(state.clone(), request)
        });
        Ok(QuotaGemini {
            base_url: format!("http://{addr}"),
            counters,
            shutdown,
        })
    }

    /// The value for `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.counters.calls.load(Ordering::Relaxed)
    }

    /// Calls answered 429 so far.
    pub fn throttled(&self) -> u64 {
        self.counters.throttled.load(Ordering::Relaxed)
    }
}

impl Drop for QuotaGemini {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `None` when the call may go ahead (a token taken), else the wait until one is there.
fn admit(per_second: f64, bucket: &Mutex<Bucket>, now: Instant) -> Option<Duration> {
    let mut bucket = bucket.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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

/// Gemini's 429 for a per-minute quota, asking to retry after `wait`.
fn resource_exhausted(wait: Duration) -> serde_json::Value {
    json!({"error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"
            }]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{:.3}s", wait.as_secs_f64())}
        ]
    }})
}

async fn answer(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    state.counters.calls.fetch_add(1, Ordering::Relaxed);
    if let Some((per_second, bucket)) = &state.quota
        && let Some(wait) = admit(*per_second, bucket, arrived)
    {
        state.counters.throttled.fetch_add(1, Ordering::Relaxed);
        return json_response(StatusCode::TOO_MANY_REQUESTS, &resource_exhausted(wait));
    }
    let delay = {
        let mut rng = state.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.latency.sample(&mut *rng)
    };
    // From the call's arrival, so our own work does not add to the latency drawn.
    answer_at(request, arrived + Duration::from_secs_f64(delay)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_admits_one_second_of_calls_then_says_how_long_to_wait() {
        let start = Instant::now();
        let bucket = Mutex::new(Bucket {
            tokens: 2.0,
            refilled: start,
        });
        // 120 a minute: 2 a second.
        assert_eq!(admit(2.0, &bucket, start), None);
        assert_eq!(admit(2.0, &bucket, start), None);
        let wait = admit(2.0, &bucket, start).expect("the third call in the same instant is refused");
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later one token is back, and only one.
        let later = start + Duration::from_millis(500);
        assert_eq!(admit(2.0, &bucket, later), None);
        assert!(admit(2.0, &bucket, later).is_some());
    }

    #[test]
    fn the_429_reads_as_a_per_minute_quota_with_its_retry_delay() {
        let body = resource_exhausted(Duration::from_millis(1250));
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["details"][1]["retryDelay"], "1.250s");
        let quota = body["error"]["details"][0]["violations"][0]["quotaId"]
            .as_str()
            .unwrap_or("");
        assert!(
            quota.contains("PerMinute") && !quota.contains("PerDay"),
            "{quota}"
        );
    }
}

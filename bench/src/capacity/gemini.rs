//! The capacity sweep's Gemini: `qgen-standins`' stand-in with latencies drawn from a seeded
//! lognormal, and a requests-per-minute quota ([`RateQuota`], a token bucket) that answers
//! Google's 429 `RESOURCE_EXHAUSTED` at once when it is exceeded.

use std::time::Duration;

use qgen_standins::{GeminiStandIn, Latency, RateQuota};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Distribution;

use qgen_planner::model;

/// The stand-in; stops when dropped.
pub struct QuotaGemini {
    base_url: String,
    quota: RateQuota<Latency>,
    _stand_in: GeminiStandIn,
}

impl QuotaGemini {
    /// Starts on a free loopback port: each call takes a latency drawn from `latency` (seeded by
    /// `seed`), and with `quota_rpm` calls beyond that rate are answered 429 at once.
    pub async fn start(latency: model::Latency, quota_rpm: Option<f64>, seed: u64) -> std::io::Result<Self> {
        let distribution = latency.distribution();
        let mut rng = StdRng::seed_from_u64(seed);
        let drawn = Latency::drawn(move || Duration::from_secs_f64(distribution.sample(&mut rng)));
        let quota = quota_rpm
            .map_or_else(RateQuota::unlimited, RateQuota::per_minute)
            .around(drawn);
        let stand_in = GeminiStandIn::builder().forget_calls().start(quota.clone()).await;
        Ok(QuotaGemini {
            base_url: stand_in.base_url(),
            quota,
            _stand_in: stand_in,
        })
    }

    /// The value for `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.quota.calls()
    }

    /// Calls answered 429 so far.
    pub fn throttled(&self) -> u64 {
        self.quota.throttled()
    }
}

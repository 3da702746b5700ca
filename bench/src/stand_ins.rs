//! The benchmarks' stand-ins, from `qgen-standins` (the tests' and the local stack's too): a
//! Gemini whose every call takes exactly a fixed latency, and the Lambda Runtime API stand-in
//! that hands out scripted invocations and notes when a function first polls.
//!
//! Linking them here does not change the artifacts measured: `scripts/bench` builds the
//! functions apart from this crate, as `cargo lambda build` builds them for deployment, so no
//! feature of the stand-ins' HTTP server reaches them.

use std::time::Duration;

pub use qgen_standins::{Completion, RuntimeApi};
use qgen_standins::{GeminiStandIn as StandIn, Latency};

/// Answers `generateContent` with the questions asked for, after a fixed delay: a model whose
/// every call takes exactly `latency`, so the batch's wall time measures only our concurrency.
/// It keeps no copy of the calls. Stops when dropped.
pub struct GeminiStandIn(StandIn);

impl GeminiStandIn {
    /// Starts the stand-in on a free loopback port.
    pub async fn start(latency: Duration) -> std::io::Result<Self> {
        let stand_in = StandIn::builder()
            .forget_calls()
            .start(Latency::fixed(latency))
            .await;
        Ok(GeminiStandIn(stand_in))
    }

    /// The base URL to configure as `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.0.base_url()
    }
}

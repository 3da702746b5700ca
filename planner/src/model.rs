//! The capacity model's terms: Gemini's [`Latency`], a trigger's [`Shape`], the fitted constants
//! ([`Model`]) and the [`Figures`] a run gives. What the model predicts, it predicts by running
//! the simulation: [`Model`]'s methods are in `sim`.
//!
//! The rules are the emulator's (`qgen_local::esm`), which follow the MSK trigger: at most one
//! invocation in flight per partition; a batch is cut when `BatchSize` records wait in the
//! partitions that are free, or when the first of them has waited the batching window, and takes
//! up to `BatchSize` records from those partitions in partition order (so a batch can hold
//! several partitions, and blocks them all). An invocation spends `batch_overhead` (the event,
//! the commit) and then runs its Gemini calls `GENERATION_CONCURRENCY` at a time, each taking a
//! lognormal latency plus `call_overhead` (HTTP, validation, the response's produce and ack); a
//! response is out when its call is done; the partitions are free when the last one is. Records
//! land on partitions uniformly at random, as keys hashed by the producer do. A Gemini quota caps
//! throughput at its rate, separately (`Model::capacity`).
//!
//! The same simulation answers a burst (the sweep's measurement, replayed with the times the
//! requests were sent) and a steady Poisson stream (the recommendation), so the points the fit
//! never saw test the very code the recommendation runs.

use rand_distr::LogNormal;
use serde::{Deserialize, Serialize};

/// The standard normal's 99th percentile: a lognormal's p99 is `exp(mu + Z99 sigma)`.
const Z99: f64 = 2.326_347_874_040_841;

/// Gemini's latency per call: lognormal, given by its median and 99th percentile (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median, seconds.
    pub p50: f64,
    /// 99th percentile, seconds (at least the median).
    pub p99: f64,
}

impl Latency {
    /// The lognormal with this median and p99.
    pub fn distribution(&self) -> LogNormal<f64> {
        let sigma = (self.p99 / self.p50).ln().max(0.0) / Z99;
        // mu = ln(p50) is finite for any positive median, and sigma is finite and ≥ 0.
        LogNormal::new(self.p50.ln(), sigma).unwrap_or_else(|_| unreachable_lognormal())
    }
}

fn unreachable_lognormal() -> LogNormal<f64> {
    // Only reached for a non-positive median, which the callers' parsing refuses.
    LogNormal::new(0.0, 0.0).expect("a lognormal with mu 0 and sigma 0 is valid")
}

/// One configuration of the trigger and the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Partitions of `question.request` (one invocation in flight each).
    pub partitions: u32,
    /// `BatchSize`.
    pub batch_size: u32,
    /// `GENERATION_CONCURRENCY`.
    pub concurrency: u32,
}

/// The fitted constants, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Per invocation, before its calls start: polling, the event, the commit.
    pub batch_overhead: f64,
    /// Per record, on top of Gemini's latency: HTTP, validation, the response's produce and ack.
    pub call_overhead: f64,
    /// The `MaximumBatchingWindowInSeconds` the points ran with.
    pub batching_window: f64,
}

/// What one simulated or measured run gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Responses per second between the 10th and the 90th percent of them.
    pub throughput: f64,
    /// Request-to-response median, seconds.
    pub p50: f64,
    /// Request-to-response 99th percentile, seconds.
    pub p99: f64,
}

/// The `q`-quantile (0 < q ≤ 1) of sorted `values` by nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Throughput, p50 and p99 of a run from each request's arrival and response times (seconds).
pub fn figures(arrivals: &[f64], done: &[f64]) -> Figures {
    let mut latencies: Vec<f64> = done.iter().zip(arrivals).map(|(d, a)| d - a).collect();
    latencies.sort_by(f64::total_cmp);
    let mut finished = done.to_vec();
    finished.sort_by(f64::total_cmp);
    let (first, last) = (quantile(&finished, 0.1), quantile(&finished, 0.9));
    let between = (0.8 * finished.len() as f64).round();
    let throughput = if last > first {
        between / (last - first)
    } else {
        0.0
    };
    Figures {
        throughput,
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::Distribution;

    use super::*;

    #[test]
    fn the_lognormal_has_the_median_and_p99_asked_for() {
        let latency = Latency { p50: 4.0, p99: 12.0 };
        let mut rng = StdRng::seed_from_u64(7);
        let gemini = latency.distribution();
        let mut draws: Vec<f64> = (0..100_000).map(|_| gemini.sample(&mut rng)).collect();
        draws.sort_by(f64::total_cmp);
        assert!((quantile(&draws, 0.5) / 4.0 - 1.0).abs() < 0.02);
        assert!((quantile(&draws, 0.99) / 12.0 - 1.0).abs() < 0.05);
    }

    #[test]
    fn figures_measure_latency_from_each_arrival_and_throughput_between_the_deciles() {
        let figures = figures(&[1.0, 2.0], &[3.0, 3.5]);
        // Latencies 2.0 and 1.5; both responses between the deciles, 0.5 s apart.
        assert_eq!((figures.p50, figures.p99), (1.5, 2.0));
        assert_eq!(figures.throughput, 4.0);
        // Responses all at one instant give no rate rather than an infinite one.
        assert_eq!(super::figures(&[0.0, 0.0], &[1.0, 1.0]).throughput, 0.0);
    }
}

//! The capacity model: the trigger emulator's rules simulated (`sim`), with two constants fitted
//! to the sweep.
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
//! throughput at its rate, separately ([`Model::capacity`]).
//!
//! The same simulation answers a burst (the sweep's measurement, replayed with the times the
//! requests were sent) and a steady Poisson stream (the recommendation), so the points the fit
//! never saw test the very code the recommendation runs.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};
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

impl Model {
    /// Simulates `arrivals` (seconds, sorted) through `shape`; returns each record's response
    /// time, in the order of `arrivals`.
    pub fn simulate(&self, shape: Shape, latency: Latency, arrivals: &[f64], seed: u64) -> Vec<f64> {
        super::sim::Trigger::new(self, shape, latency, seed).run(arrivals)
    }

    /// The figures of a burst of `requests` all at once, averaged over `runs` seeds.
    pub fn burst(&self, shape: Shape, latency: Latency, requests: usize, runs: u64) -> Figures {
        self.replay(shape, latency, &vec![0.0; requests], runs)
    }

    /// The figures of requests arriving at `arrivals` (seconds, sorted), averaged over `runs`
    /// seeds: a measured burst replayed through the model.
    pub fn replay(&self, shape: Shape, latency: Latency, arrivals: &[f64], runs: u64) -> Figures {
        self.average(runs, |seed| {
            figures(arrivals, &self.simulate(shape, latency, arrivals, seed))
        })
    }

    /// The figures of a steady Poisson stream at `rate` per second, `requests` long.
    pub fn steady(&self, shape: Shape, latency: Latency, rate: f64, requests: usize, runs: u64) -> Figures {
        self.average(runs, |seed| {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let gap = rand_distr::Exp::new(rate.max(1e-9)).expect("a positive rate");
            let mut at = 0.0;
            let arrivals: Vec<f64> = (0..requests)
                .map(|_| {
                    at += gap.sample(&mut rng);
                    at
                })
                .collect();
            figures(&arrivals, &self.simulate(shape, latency, &arrivals, seed))
        })
    }

    fn average(&self, runs: u64, run: impl Fn(u64) -> Figures) -> Figures {
        let runs = runs.max(1);
        let all: Vec<Figures> = (0..runs).map(|seed| run(seed + 1)).collect();
        let mean = |f: fn(&Figures) -> f64| all.iter().map(f).sum::<f64>() / runs as f64;
        Figures {
            throughput: mean(|f| f.throughput),
            p50: mean(|f| f.p50),
            p99: mean(|f| f.p99),
        }
    }

    /// Most responses per second `shape` sustains: a long burst's throughput, and at most the
    /// quota's rate (`quota_rpm` calls a minute, one call per request when nothing fails).
    pub fn capacity(&self, shape: Shape, latency: Latency, quota_rpm: Option<f64>) -> f64 {
        let requests = (shape.partitions * shape.batch_size * 20).clamp(200, 20_000) as usize;
        let simulated = self.burst(shape, latency, requests, 4).throughput;
        quota_rpm.map_or(simulated, |quota| simulated.min(quota / 60.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call takes exactly one second; no overheads.
    const FIXED: Latency = Latency { p50: 1.0, p99: 1.0 };

    fn bare(batching_window: f64) -> Model {
        Model {
            batch_overhead: 0.0,
            call_overhead: 0.0,
            batching_window,
        }
    }

    fn shape(partitions: u32, batch_size: u32, concurrency: u32) -> Shape {
        Shape {
            partitions,
            batch_size,
            concurrency,
        }
    }

    #[test]
    fn a_burst_on_one_partition_runs_batch_after_batch() {
        // 40 records, batches of 4 all at once: a batch a second, 4 responses a second.
        let figures = bare(0.0).burst(shape(1, 4, 4), FIXED, 40, 1);
        assert!((figures.throughput - 4.0).abs() < 1e-9, "{figures:?}");
        assert!((figures.p50 - 5.0).abs() < 1e-9, "{figures:?}");
        assert!((figures.p99 - 10.0).abs() < 1e-9, "{figures:?}");
    }

    #[test]
    fn a_concurrency_below_the_batch_size_runs_the_batch_in_waves() {
        let arrivals = [0.0; 4];
        let done = bare(0.0).simulate(shape(1, 4, 2), FIXED, &arrivals, 1);
        assert_eq!(done, [1.0, 1.0, 2.0, 2.0]);
        let with_overheads = Model {
            batch_overhead: 0.5,
            call_overhead: 0.25,
            batching_window: 0.0,
        };
        let done = with_overheads.simulate(shape(1, 4, 2), FIXED, &arrivals, 1);
        assert_eq!(done, [1.75, 1.75, 3.0, 3.0]);
    }

    #[test]
    fn a_lone_record_waits_the_batching_window_and_a_full_batch_does_not() {
        let model = bare(0.5);
        assert_eq!(model.simulate(shape(1, 10, 10), FIXED, &[0.0], 1), [1.5]);
        let full = [0.0, 0.1];
        assert_eq!(model.simulate(shape(1, 2, 2), FIXED, &full, 1), [1.1, 1.1]);
    }

    #[test]
    fn a_partition_busy_with_a_batch_holds_the_next_records_until_it_is_done() {
        let arrivals = [0.0, 0.2, 0.3];
        let done = bare(0.0).simulate(shape(1, 10, 10), FIXED, &arrivals, 1);
        // The first goes alone (no window); the other two wait for it, then go together.
        assert_eq!(done, [1.0, 2.0, 2.0]);
    }

    #[test]
    fn partitions_multiply_throughput_and_the_tail_slows_big_batches() {
        let model = bare(0.0);
        let one = model.burst(shape(1, 10, 10), FIXED, 400, 1).throughput;
        let four = model.burst(shape(4, 10, 10), FIXED, 1_600, 3).throughput;
        assert!((3.4..4.6).contains(&(four / one)), "one {one}, four {four}");
        // With a spread, a batch waits for its slowest call: fewer records a second.
        let spread = Latency { p50: 1.0, p99: 3.0 };
        let slow = model.burst(shape(1, 10, 10), spread, 400, 3).throughput;
        assert!(slow < 0.75 * one, "fixed {one}, spread {slow}");
    }

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

    #[test]
    fn a_steady_stream_below_capacity_comes_out_at_its_own_rate() {
        // One partition, batches of 10 all at once, 1 s each: capacity 10/s; offered 2/s.
        let figures = bare(0.0).steady(shape(1, 10, 10), FIXED, 2.0, 2_000, 2);
        assert!((figures.throughput / 2.0 - 1.0).abs() < 0.1, "{figures:?}");
        // A record waits for the batch in flight (up to 1 s), then its own (1 s).
        assert!(figures.p50 > 1.0 && figures.p99 <= 2.0 + 1e-9, "{figures:?}");
    }

    #[test]
    fn capacity_is_capped_by_the_quota() {
        let model = bare(0.0);
        let free = model.capacity(shape(2, 10, 10), FIXED, None);
        assert!((free - 20.0).abs() < 1.0, "{free}");
        assert_eq!(model.capacity(shape(2, 10, 10), FIXED, Some(300.0)), 5.0);
    }
}

//! The trigger emulator's dispatch loop (`qgen_local::esm::Emulator::run` and its `Pending`) as
//! a discrete-event simulation: records become visible at their arrival, batches are cut by the
//! same rule, invocations end when their last call does. [`Model`]'s methods, which predict by
//! running it (a burst, a measured burst replayed, a steady stream, the capacity), are here too.

use std::collections::VecDeque;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal, Uniform};

use crate::model::{Figures, Latency, Model, Shape, figures};

/// An invocation in flight: when it ends and the partitions it holds.
struct InFlight {
    ends: f64,
    partitions: Vec<usize>,
}

/// One simulated trigger with its generator.
struct Trigger<'a> {
    model: &'a Model,
    batch_size: usize,
    slots: usize,
    partitions: usize,
    gemini: LogNormal<f64>,
    rng: StdRng,
}

impl<'a> Trigger<'a> {
    fn new(model: &'a Model, shape: Shape, latency: Latency, seed: u64) -> Self {
        Trigger {
            model,
            batch_size: shape.batch_size.max(1) as usize,
            slots: shape.concurrency.max(1) as usize,
            partitions: shape.partitions.max(1) as usize,
            gemini: latency.distribution(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Each record's response time, for records arriving at `arrivals` (sorted).
    fn run(mut self, arrivals: &[f64]) -> Vec<f64> {
        let pick = Uniform::new(0, self.partitions).expect("at least one partition");
        let partition_of: Vec<usize> = arrivals.iter().map(|_| pick.sample(&mut self.rng)).collect();
        let mut queues: Vec<VecDeque<usize>> = vec![VecDeque::new(); self.partitions];
        let mut busy = vec![false; self.partitions];
        let mut in_flight: Vec<InFlight> = Vec::new();
        let mut done = vec![0.0; arrivals.len()];
        let (mut next, mut now, mut window): (usize, f64, Option<f64>) = (0, 0.0, None);
        loop {
            while next < arrivals.len() && arrivals[next] <= now {
                queues[partition_of[next]].push_back(next);
                next += 1;
            }
            in_flight.retain(|call| {
                let over = call.ends <= now;
                if over {
                    call.partitions.iter().for_each(|&p| busy[p] = false);
                }
                !over
            });
            let ready: usize = (0..self.partitions)
                .filter(|&p| !busy[p])
                .map(|p| queues[p].len())
                .sum();
            if ready == 0 {
                window = None;
            } else {
                let closes = *window.get_or_insert(now + self.model.batching_window);
                if ready >= self.batch_size || now >= closes {
                    let batch = self.take(&mut queues, &mut busy);
                    in_flight.push(self.invoke(&batch, now, &partition_of, &mut done));
                    window = None;
                    continue;
                }
            }
            let upcoming = [
                arrivals.get(next).copied(),
                in_flight.iter().map(|c| c.ends).reduce(f64::min),
                window,
            ];
            match upcoming.into_iter().flatten().reduce(f64::min) {
                Some(at) => now = at.max(now),
                None => return done,
            }
        }
    }

    /// Up to `BatchSize` waiting records of the free partitions, in partition order; those
    /// partitions are busy from now on.
    fn take(&self, queues: &mut [VecDeque<usize>], busy: &mut [bool]) -> Vec<usize> {
        let mut batch = Vec::with_capacity(self.batch_size);
        for p in 0..self.partitions {
            if busy[p] {
                continue;
            }
            let before = batch.len();
            while batch.len() < self.batch_size {
                let Some(record) = queues[p].pop_front() else {
                    break;
                };
                batch.push(record);
            }
            busy[p] |= batch.len() > before;
        }
        batch
    }

    /// Runs `batch`'s calls from `now`; notes each response's time; the invocation in flight.
    fn invoke(&mut self, batch: &[usize], now: f64, partition_of: &[usize], done: &mut [f64]) -> InFlight {
        let starts = now + self.model.batch_overhead;
        let mut lanes = vec![starts; self.slots.min(batch.len()).max(1)];
        let mut ends = starts;
        for &record in batch {
            let lane = (0..lanes.len()).fold(0, |best, i| if lanes[i] < lanes[best] { i } else { best });
            let finish = lanes[lane] + self.gemini.sample(&mut self.rng) + self.model.call_overhead;
            lanes[lane] = finish;
            done[record] = finish;
            ends = ends.max(finish);
        }
        let mut partitions: Vec<usize> = batch.iter().map(|&r| partition_of[r]).collect();
        partitions.dedup();
        InFlight { ends, partitions }
    }
}

impl Model {
    /// Simulates `arrivals` (seconds, sorted) through `shape`; returns each record's response
    /// time, in the order of `arrivals`.
    pub fn simulate(&self, shape: Shape, latency: Latency, arrivals: &[f64], seed: u64) -> Vec<f64> {
        Trigger::new(self, shape, latency, seed).run(arrivals)
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

    #[test]
    fn each_call_takes_the_lane_that_frees_first() {
        let model = Model {
            batch_overhead: 0.0,
            call_overhead: 0.0,
            batching_window: 0.0,
        };
        let spread = Latency { p50: 1.0, p99: 3.0 };
        // Ten calls on ten lanes all start at once: the batch lasts as long as its slowest call,
        // not the sum of several (about 11 s if calls queued on one lane).
        let all_at_once = Shape {
            partitions: 1,
            batch_size: 10,
            concurrency: 10,
        };
        let done = Trigger::new(&model, all_at_once, spread, 5).run(&[0.0; 10]);
        assert!(done.iter().all(|&d| d > 0.0 && d < 5.0), "{done:?}");
        // Two lanes for the same ten calls (the same draws, same seed): each call goes to the
        // lane that frees first, so the batch takes about half of one lane's time, never less,
        // and far from all of it.
        let makespan = |concurrency| {
            let shape = Shape {
                concurrency,
                ..all_at_once
            };
            let done = Trigger::new(&model, shape, spread, 5).run(&[0.0; 10]);
            done.into_iter().fold(0.0, f64::max)
        };
        let (one, two) = (makespan(1), makespan(2));
        assert!(two >= 0.5 * one && two < 0.75 * one, "one lane {one}, two {two}");
    }

    #[test]
    fn a_batch_cut_early_takes_several_partitions_and_blocks_them_all() {
        let model = Model {
            batch_overhead: 0.0,
            call_overhead: 0.0,
            batching_window: 0.0,
        };
        let shape = Shape {
            partitions: 8,
            batch_size: 1_000,
            concurrency: 1_000,
        };
        // One record first, cut alone at once (no window); the rest come while it runs.
        let mut arrivals = vec![0.0];
        arrivals.extend(std::iter::repeat_n(0.5, 200));
        let done = Trigger::new(&model, shape, FIXED, 3).run(&arrivals);
        assert_eq!(done[0], 1.0);
        // Its partition's records wait for it; every other partition's go at 0.5 in one batch.
        let at_once = done[1..].iter().filter(|&&d| d == 1.5).count();
        let after = done[1..].iter().filter(|&&d| d == 2.0).count();
        assert_eq!(at_once + after, 200);
        assert!(
            (10..=45).contains(&after),
            "one partition in 8 holds about 25: {after}"
        );
    }
}

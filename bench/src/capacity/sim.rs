//! The trigger emulator's dispatch loop (`qgen_local::esm::Emulator::run` and its `Pending`) as
//! a discrete-event simulation: records become visible at their arrival, batches are cut by the
//! same rule, invocations end when their last call does.

use std::collections::VecDeque;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal, Uniform};

use super::model::{Latency, Model, Shape};

/// An invocation in flight: when it ends and the partitions it holds.
struct InFlight {
    ends: f64,
    partitions: Vec<usize>,
}

/// One simulated trigger with its generator.
pub(super) struct Trigger<'a> {
    model: &'a Model,
    batch_size: usize,
    slots: usize,
    partitions: usize,
    gemini: LogNormal<f64>,
    rng: StdRng,
}

impl<'a> Trigger<'a> {
    pub(super) fn new(model: &'a Model, shape: Shape, latency: Latency, seed: u64) -> Self {
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
    pub(super) fn run(mut self, arrivals: &[f64]) -> Vec<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED: Latency = Latency { p50: 1.0, p99: 1.0 };

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

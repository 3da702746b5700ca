//! The recommendation: given a request rate, Gemini's latency and quota, the smallest partition
//! count with a `BatchSize` whose simulated capacity keeps the trigger at most 70 % busy and
//! whose simulated p99 at that rate is within the target (the template's alarm threshold,
//! `RequestToResponseP99AlarmMs`, 60 s by default); of those, the `BatchSize` with the lowest
//! p99. With it, the settings that go with it.

use serde::Serialize;

use crate::model::{Figures, Latency, Model, Shape};

/// Highest share of capacity the target rate may use: room for bursts and retries.
pub const UTILISATION: f64 = 0.7;
/// Partition counts considered (MSK topics are usually sized in these steps).
const PARTITIONS: [u32; 16] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256];
/// `BatchSize` values considered; `GENERATION_CONCURRENCY` is set equal (the template allows up
/// to 256): a batch's calls then all run at once, which is the fastest a batch can go.
const BATCH_SIZES: [u32; 6] = [1, 5, 10, 20, 50, 100];
/// `GEMINI_TIMEOUT_MS`'s default: one call that times out and is retried must still fit.
const GEMINI_TIMEOUT: f64 = 30.0;
/// Concurrent invocations one provisioned event poller handles: "each event poller can handle up
/// to 5 MB/s of throughput or up to 5 concurrent invocations"
/// (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-scaling-modes.html>).
const INVOCATIONS_PER_POLLER: u32 = 5;

/// What to deploy, and what it is predicted to do.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// Partitions, `BatchSize` and `GENERATION_CONCURRENCY`.
    pub shape: Shape,
    /// Most responses a second (simulated, capped by the quota).
    pub capacity: f64,
    /// The target rate's share of it.
    pub utilisation: f64,
    /// Request-to-response figures at the target rate (simulated Poisson arrivals).
    pub steady: Figures,
    /// The generator's `Timeout`, seconds: the slowest batch, or, with a quota, the time its
    /// share of the quota takes to pace a whole batch, whichever is longer.
    pub timeout: u32,
    /// `MinimumPollers` and `MaximumPollers`.
    pub pollers: (u32, u32),
    /// Why the target cannot be met, when it cannot.
    pub warning: Option<String>,
}

/// The recommendation for `rate` requests a second.
pub fn recommend(
    model: &Model,
    rate: f64,
    latency: Latency,
    quota_rpm: Option<f64>,
    p99_target: f64,
) -> Recommendation {
    let quota_rate = quota_rpm.map(|q| q / 60.0);
    let quota_warning = quota_rate.filter(|q| rate > q * UTILISATION).map(|q| {
        format!(
            "the Gemini quota allows {q:.1} calls/s, and {rate:.1} requests/s need more than {:.0} % of it: no partition count helps; raise the quota",
            UTILISATION * 100.0
        )
    });
    let mut chosen = None;
    // The lowest p99 among shapes with room for the rate, for when none meets the target.
    let mut closest: Option<(Shape, f64, Figures)> = None;
    for partitions in PARTITIONS {
        for batch_size in BATCH_SIZES {
            let shape = Shape {
                partitions,
                batch_size,
                concurrency: batch_size,
            };
            let capacity = model.capacity(shape, latency, None);
            if rate > capacity * UTILISATION {
                continue;
            }
            let steady = steady(model, shape, latency, rate);
            let slot = if steady.p99 <= p99_target {
                &mut chosen
            } else {
                &mut closest
            };
            if slot
                .as_ref()
                .is_none_or(|(_, _, b): &(Shape, f64, Figures)| steady.p99 < b.p99 * 0.95)
            {
                *slot = Some((shape, capacity, steady));
            }
        }
        if chosen.is_some() {
            break;
        }
    }
    let most = PARTITIONS[PARTITIONS.len() - 1];
    let (shape, capacity, steady, missed) = match (chosen, closest) {
        (Some((shape, capacity, steady)), _) => (shape, capacity, steady, None),
        (None, Some((shape, capacity, steady))) => (
            shape,
            capacity,
            steady,
            Some(format!(
                "no shape up to {most} partitions keeps p99 within {p99_target:.0} s at this rate; this one has the lowest p99 found"
            )),
        ),
        (None, None) => {
            let shape = Shape {
                partitions: most,
                batch_size: 100,
                concurrency: 100,
            };
            let capacity = model.capacity(shape, latency, None);
            let steady = steady(model, shape, latency, rate.min(capacity));
            let short = format!("{rate:.0} requests/s need more than {most} partitions at this latency");
            (shape, capacity, steady, Some(short))
        }
    };
    let warning = match (quota_warning, missed) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    let capacity = quota_rate.map_or(capacity, |q| capacity.min(q));
    let pollers = shape.partitions.div_ceil(INVOCATIONS_PER_POLLER).max(1);
    Recommendation {
        shape,
        capacity,
        utilisation: rate / capacity,
        steady,
        timeout: timeout(model, shape, latency).max(paced_timeout(shape, quota_rpm)),
        pollers: (pollers, pollers),
        warning,
    }
}

/// The generator's `GEMINI_MAX_WAIT_SECONDS` default: how long a request may be held.
pub const MAX_WAIT: f64 = 1_800.0;
/// What an invocation keeps back from generation to publish: the template's
/// `KAFKA_MESSAGE_TIMEOUT_MS` (5 s) and 0.5 s.
const PUBLISH_RESERVE: f64 = 5.5;

/// The `Timeout` a batch needs when each invocation paces its calls to its share of a
/// `quota_rpm` quota shared by the shape's partitions: `BatchSize` calls a share's interval
/// apart, plus one retried call; rounded up to 10 s. None without a quota.
pub fn paced_timeout(shape: Shape, quota_rpm: Option<f64>) -> u32 {
    let Some(quota) = quota_rpm.filter(|q| *q > 0.0) else {
        return 0;
    };
    let interval = 60.0 * f64::from(shape.partitions) / quota;
    let seconds = f64::from(shape.batch_size) * interval + GEMINI_TIMEOUT + PUBLISH_RESERVE;
    ((seconds / 10.0).ceil() as u32 * 10).min(900)
}

/// `MaximumRetryAttempts` for a `timeout`: enough holds (an invocation holds its records until
/// the publish reserve before its `Timeout`) to cover [`MAX_WAIT`], and one more for an
/// invocation that starts late into its hold (the template's 12 for 180 s).
pub fn retries(timeout: u32) -> u32 {
    (MAX_WAIT / (f64::from(timeout) - PUBLISH_RESERVE)).ceil() as u32 + 1
}

fn steady(model: &Model, shape: Shape, latency: Latency, rate: f64) -> Figures {
    let requests = ((rate * 120.0) as usize).clamp(1_000, 20_000);
    model.steady(shape, latency, rate, requests, 3)
}

/// The generator's `Timeout`: the slowest of 2 000 simulated batches, twice, plus one Gemini
/// call that times out and is retried; rounded up to 10 s, between 60 s and Lambda's 900 s.
pub fn timeout(model: &Model, shape: Shape, latency: Latency) -> u32 {
    let one = Shape {
        partitions: 1,
        ..shape
    };
    let batches = 2_000;
    let arrivals = vec![0.0; shape.batch_size as usize * batches];
    let done = model.simulate(one, latency, &arrivals, 11);
    let slowest = done
        .chunks(shape.batch_size as usize)
        .scan(0.0_f64, |previous_end, batch| {
            let end = batch.iter().copied().fold(0.0, f64::max);
            let took = end - *previous_end;
            *previous_end = end;
            Some(took)
        })
        .fold(0.0, f64::max);
    let seconds = 2.0 * slowest + GEMINI_TIMEOUT;
    ((seconds / 10.0).ceil() as u32 * 10).clamp(60, 900)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: Model = Model {
        batch_overhead: 0.05,
        call_overhead: 0.01,
        batching_window: 1.0,
    };

    #[test]
    fn the_recommended_shape_has_room_for_the_rate_and_the_one_below_it_does_not() {
        let latency = Latency { p50: 4.0, p99: 12.0 };
        let r = recommend(&MODEL, 50.0, latency, None, 60.0);
        assert!(r.utilisation <= UTILISATION, "{r:?}");
        assert!(r.warning.is_none());
        let index = PARTITIONS
            .iter()
            .position(|&p| p == r.shape.partitions)
            .unwrap_or(0);
        assert!(index > 0, "50/s at 4 s cannot fit one partition: {r:?}");
        let fewer = PARTITIONS[index - 1];
        for batch_size in BATCH_SIZES {
            let shape = Shape {
                partitions: fewer,
                batch_size,
                concurrency: batch_size,
            };
            assert!(
                50.0 > UTILISATION * MODEL.capacity(shape, latency, None),
                "{shape:?}"
            );
        }
        assert_eq!(
            r.pollers,
            (r.shape.partitions.div_ceil(5), r.shape.partitions.div_ceil(5))
        );
        assert!(r.steady.p50 >= 4.0 && r.steady.p99 >= r.steady.p50, "{r:?}");
        assert!(r.steady.p99 <= 60.0, "{r:?}");
    }

    #[test]
    fn a_tighter_latency_target_takes_more_partitions_and_smaller_batches() {
        let latency = Latency { p50: 4.0, p99: 12.0 };
        let loose = recommend(&MODEL, 20.0, latency, None, 60.0);
        let tight = recommend(&MODEL, 20.0, latency, None, 20.0);
        assert!(tight.steady.p99 <= 20.0, "{tight:?}");
        assert!(
            loose.steady.p99 > 20.0,
            "the test needs a loose pick above the tight target: {loose:?}"
        );
        assert!(
            tight.shape.partitions > loose.shape.partitions,
            "{loose:?} {tight:?}"
        );
    }

    #[test]
    fn a_target_no_shape_meets_gives_the_closest_with_a_warning() {
        let latency = Latency { p50: 4.0, p99: 12.0 };
        let r = recommend(&MODEL, 10.0, latency, None, 5.0);
        assert!(r.steady.p99 > 5.0, "{r:?}");
        assert!(
            r.warning.as_deref().is_some_and(|w| w.contains("lowest p99")),
            "{r:?}"
        );
        assert!(r.utilisation <= UTILISATION, "{r:?}");
    }

    #[test]
    fn without_a_latency_target_the_rate_still_uses_at_most_70_percent_of_capacity() {
        let latency = Latency { p50: 4.0, p99: 12.0 };
        for rate in [3.0, 50.0] {
            let r = recommend(&MODEL, rate, latency, None, f64::INFINITY);
            assert!(r.utilisation <= UTILISATION, "{rate}: {r:?}");
            assert!(
                r.utilisation > 0.2,
                "the fewest partitions, not many more: {rate}: {r:?}"
            );
        }
    }

    #[test]
    fn of_the_batch_sizes_that_fit_the_one_with_the_lowest_p99_is_chosen() {
        let latency = Latency { p50: 4.0, p99: 12.0 };
        // At 1 and 1.4 a second, one partition with batches of 20, 50 or 100 all have room.
        for rate in [1.0, 1.4] {
            let r = recommend(&MODEL, rate, latency, None, 60.0);
            let mut others = 0;
            for batch_size in BATCH_SIZES.into_iter().filter(|&b| b != r.shape.batch_size) {
                let shape = Shape {
                    batch_size,
                    concurrency: batch_size,
                    ..r.shape
                };
                if rate > UTILISATION * MODEL.capacity(shape, latency, None) {
                    continue;
                }
                others += 1;
                let p99 = steady(&MODEL, shape, latency, rate).p99;
                assert!(
                    p99 >= 0.95 * r.steady.p99,
                    "{rate}/s: BatchSize {batch_size} has p99 {p99}: {r:?}"
                );
            }
            assert!(
                others > 0 || rate == 12.0,
                "{rate}/s: the test needs a choice to check: {r:?}"
            );
        }
    }

    #[test]
    fn the_quota_warning_starts_above_70_percent_of_the_quota() {
        let latency = Latency { p50: 1.0, p99: 3.0 };
        // 600 calls a minute: 10 a second; 70 % of it is 7.
        assert!(
            recommend(&MODEL, 7.5, latency, Some(600.0), 60.0)
                .warning
                .is_some()
        );
        assert!(
            recommend(&MODEL, 6.5, latency, Some(600.0), 60.0)
                .warning
                .is_none()
        );
    }

    #[test]
    fn a_rate_beyond_the_quota_is_refused_with_a_reason() {
        let latency = Latency { p50: 1.0, p99: 3.0 };
        let r = recommend(&MODEL, 20.0, latency, Some(600.0), 60.0);
        assert!(
            r.warning
                .as_deref()
                .is_some_and(|w| w.contains("raise the quota")),
            "{r:?}"
        );
        assert_eq!(r.capacity, 10.0);
        assert!(
            recommend(&MODEL, 5.0, latency, Some(600.0), 60.0)
                .warning
                .is_none()
        );
    }

    #[test]
    fn with_a_quota_the_timeout_lets_a_whole_batch_be_paced_and_the_retries_cover_the_wait() {
        let shape = Shape {
            partitions: 3,
            batch_size: 10,
            concurrency: 10,
        };
        // 60 calls a minute over 3 partitions: one every 3 s here, 30 s for a batch of 10, and
        // 30 s for a retried call and 5.5 s to publish: 65.5 s, rounded up.
        assert_eq!(paced_timeout(shape, Some(60.0)), 70);
        assert_eq!(paced_timeout(shape, None), 0);
        // Never past Lambda's 15 minutes.
        assert_eq!(paced_timeout(shape, Some(1.0)), 900);
        // The template's Timeout (180 s) holds 174.5 s: 11 holds cover 1 800 s, 10 do not; and
        // one more.
        assert_eq!(retries(180), 12);
        assert_eq!(retries(70), 29);
        let r = recommend(&MODEL, 1.0, Latency { p50: 4.0, p99: 12.0 }, Some(600.0), 60.0);
        assert!(r.timeout >= paced_timeout(r.shape, Some(600.0)), "{r:?}");
    }

    #[test]
    fn the_timeout_covers_the_slowest_batch_and_a_retried_call() {
        let fixed = Latency { p50: 10.0, p99: 10.0 };
        let shape = Shape {
            partitions: 1,
            batch_size: 10,
            concurrency: 5,
        };
        // Two waves of 10.01 s and 50 ms: 20.07 s; twice plus 30 s is 70.14 s: 80 s.
        assert_eq!(timeout(&MODEL, shape, fixed), 80);
        // One partition's batches, one after another, whatever the partition count.
        let twelve = Shape {
            partitions: 12,
            ..shape
        };
        assert_eq!(timeout(&MODEL, twelve, fixed), 80);
        let tiny = Latency { p50: 0.1, p99: 0.1 };
        assert_eq!(timeout(&MODEL, shape, tiny), 60);
    }
}

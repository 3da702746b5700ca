//! The sweep's points (what ran, what was measured), the model's two constants fitted to them,
//! and its predictions for the others.

use serde::{Deserialize, Serialize};

use crate::model::{Figures, Latency, Model, Shape};

/// What a point of the sweep runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Partitions, `BatchSize`, `GENERATION_CONCURRENCY`.
    pub shape: Shape,
    /// Gemini's latency.
    pub latency: Latency,
    /// Gemini's quota, calls a minute; `None` for none.
    pub quota_rpm: Option<f64>,
    /// Requests in the burst.
    pub requests: usize,
}

/// What a point of the sweep measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Throughput and request-to-response percentiles.
    pub figures: Figures,
    /// When each request was sent, seconds after the first, sorted.
    pub arrivals: Vec<f64>,
    /// `completed` responses a second: how many, over the time to the last of them.
    pub completed_rate: f64,
    /// The generator group's largest lag on `question.request`.
    pub peak_lag: i64,
    /// The lag sampled every 50 ms: (seconds since the burst, records).
    pub lag: Vec<(f64, i64)>,
    /// Gemini calls answered 429.
    pub throttled: u64,
    /// Gemini calls in all.
    pub calls: u64,
    /// `failed` responses (the rest were `completed`).
    pub failed: usize,
}

/// Simulated runs averaged per prediction.
const RUNS: u64 = 6;

/// A measured point of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// What ran.
    pub setup: Setup,
    /// What came out.
    pub measured: Measured,
    /// Whether the fit saw it.
    pub training: bool,
}

/// What the model predicts for a point: its burst replayed (the requests arriving when they were
/// sent; all at once when the point has no record of that), the throughput capped by the quota.
pub fn predict(model: &Model, point: &Point) -> Figures {
    let setup = &point.setup;
    let mut figures = if point.measured.arrivals.is_empty() {
        model.burst(setup.shape, setup.latency, setup.requests, RUNS)
    } else {
        model.replay(setup.shape, setup.latency, &point.measured.arrivals, RUNS)
    };
    if let Some(quota) = setup.quota_rpm {
        figures.throughput = figures.throughput.min(quota / 60.0);
    }
    figures
}

/// `predicted / measured - 1`.
pub fn error(predicted: f64, measured: f64) -> f64 {
    if measured == 0.0 {
        return f64::INFINITY;
    }
    predicted / measured - 1.0
}

/// The constants that make the simulated throughput and median fit the training points best
/// (least squares of log ratios over a grid: 0–300 ms per batch, 0–100 ms per call).
pub fn fit(points: &[Point], batching_window: f64) -> Model {
    let training: Vec<&Point> = points
        .iter()
        .filter(|p| p.training && p.setup.quota_rpm.is_none())
        .collect();
    let mut best = (
        f64::INFINITY,
        Model {
            batch_overhead: 0.0,
            call_overhead: 0.0,
            batching_window,
        },
    );
    for b in 0..=30 {
        for c in 0..=25 {
            let model = Model {
                batch_overhead: f64::from(b) * 0.01,
                call_overhead: f64::from(c) * 0.004,
                batching_window,
            };
            let loss: f64 = training
                .iter()
                .map(|p| loss(&predict(&model, p), &p.measured.figures))
                .sum();
            if loss < best.0 {
                best = (loss, model);
            }
        }
    }
    best.1
}

/// How far `predicted` is from `measured`: the squared log ratios of throughput and of the
/// median, added, so that 10 % too high and 10 % too low weigh alike.
fn loss(predicted: &Figures, measured: &Figures) -> f64 {
    (predicted.throughput / measured.throughput).ln().powi(2) + (predicted.p50 / measured.p50).ln().powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(model: &Model, partitions: u32, batch_size: u32, training: bool) -> Point {
        let setup = Setup {
            shape: Shape {
                partitions,
                batch_size,
                concurrency: 4,
            },
            latency: Latency { p50: 0.3, p99: 0.9 },
            quota_rpm: None,
            requests: (partitions * batch_size * 4) as usize,
        };
        // "Measured" by the simulation itself with other seeds than the fit's.
        let measured = model.burst(setup.shape, setup.latency, setup.requests, 40);
        Point {
            setup,
            measured: Measured {
                figures: measured,
                arrivals: Vec::new(),
                completed_rate: 0.0,
                peak_lag: 0,
                lag: Vec::new(),
                throttled: 0,
                calls: 0,
                failed: 0,
            },
            training,
        }
    }

    #[test]
    fn the_fit_finds_the_constants_that_made_the_points() {
        let truth = Model {
            batch_overhead: 0.12,
            call_overhead: 0.021,
            batching_window: 0.1,
        };
        let points: Vec<Point> = [(1, 5), (1, 20), (6, 5), (6, 20)]
            .into_iter()
            .map(|(p, b)| point(&truth, p, b, true))
            .collect();
        let fitted = fit(&points, 0.1);
        assert!((fitted.batch_overhead - 0.12).abs() <= 0.031, "{fitted:?}");
        assert!((fitted.call_overhead - 0.021).abs() <= 0.0091, "{fitted:?}");
        assert_eq!(fitted.batching_window, 0.1);
    }

    #[test]
    fn the_loss_adds_both_errors_and_weighs_too_high_and_too_low_alike() {
        let measured = Figures {
            throughput: 10.0,
            p50: 2.0,
            p99: 4.0,
        };
        let off = |throughput, p50| Figures {
            throughput,
            p50,
            p99: 4.0,
        };
        assert_eq!(loss(&measured, &measured), 0.0);
        let ln2 = 2f64.ln().powi(2);
        assert!((loss(&off(20.0, 2.0), &measured) - ln2).abs() < 1e-12);
        assert!((loss(&off(5.0, 2.0), &measured) - ln2).abs() < 1e-12);
        assert!((loss(&off(20.0, 4.0), &measured) - 2.0 * ln2).abs() < 1e-12);
    }

    #[test]
    fn only_training_points_without_a_quota_are_fitted() {
        let truth = Model {
            batch_overhead: 0.12,
            call_overhead: 0.021,
            batching_window: 0.1,
        };
        let mut points: Vec<Point> = [(1, 5), (1, 20), (6, 5), (6, 20)]
            .into_iter()
            .map(|(p, b)| point(&truth, p, b, true))
            .collect();
        // A held-out point and a quota point, both measured absurdly slow: the fit must not see
        // them, or it would reach for the grid's largest overheads.
        for (training, quota) in [(false, None), (true, Some(60.0))] {
            let mut wild = point(&truth, 3, 5, training);
            wild.setup.quota_rpm = quota;
            wild.measured.figures.throughput /= 10.0;
            wild.measured.figures.p50 *= 10.0;
            points.push(wild);
        }
        let fitted = fit(&points, 0.1);
        assert!((fitted.batch_overhead - 0.12).abs() <= 0.031, "{fitted:?}");
        assert!((fitted.call_overhead - 0.021).abs() <= 0.0091, "{fitted:?}");
    }

    #[test]
    fn a_quota_caps_the_predicted_throughput() {
        let model = Model {
            batch_overhead: 0.0,
            call_overhead: 0.0,
            batching_window: 0.1,
        };
        let mut point = point(&model, 12, 20, false);
        let free = predict(&model, &point).throughput;
        assert!(free > 30.0, "{free}");
        point.setup.quota_rpm = Some(600.0);
        assert_eq!(predict(&model, &point).throughput, 10.0);
        assert!((error(11.5, 10.0) - 0.15).abs() < 1e-12);
    }
}

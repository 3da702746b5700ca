//! Capacity (issue 18): how many partitions, what `BatchSize` and `GENERATION_CONCURRENCY` for a
//! request rate, from measurements.
//!
//! `qgen-bench capacity` sweeps partitions 1, 3, 6, 12 × `BatchSize` × `GENERATION_CONCURRENCY`
//! through the local stack (the trigger emulator invoking one batch per partition at a time)
//! against a Gemini stand-in with lognormal latencies and, at two points, a per-minute quota;
//! fits the model's two constants on the 1- and 6-partition points; checks its predictions on
//! the rest; writes the points and the charts to `bench/capacity/` and the model to
//! `planner/model.json` (which `qgen-planner` compiles in); and prints recommendations. The
//! model, its fit and the recommendation are `qgen-planner`'s; this module measures.
//!
//! # Layout
//!
//! - this file: the grid, and the sweep from measuring to the report.
//! - `gemini`: the stand-in with latency and quota. `point`: one point through the stack.
//! - `report`: the fit checked, the files written, the tables. `chart`: the SVG charts.

mod chart;
mod gemini;
mod point;
mod report;

use std::path::{Path, PathBuf};

use qgen_planner::fit::{Point, Setup};
use qgen_planner::model::{Latency, Model, Shape};

use self::point::BATCHING_WINDOW;
use crate::{BenchError, fail};

/// Gemini's latency in the sweep: the ratio of p99 to p50 of a 4 s / 12 s model, ten times
/// faster so that a point takes seconds. The model scales it back.
const SWEEP_LATENCY: Latency = Latency { p50: 0.3, p99: 0.9 };
/// Held-out points at twice the latency, to check the model scales with it.
const SLOWER: Latency = Latency { p50: 0.6, p99: 1.8 };

/// Where the sweep writes its points and charts: `bench/capacity/` in the checkout.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("capacity")
}

fn shape(partitions: u32, batch_size: u32, concurrency: u32) -> Shape {
    Shape {
        partitions,
        batch_size,
        concurrency,
    }
}

/// How long each point's burst should keep the stack busy: long enough that one run's figures
/// are within a few percent of its mean (a batch's time varies with its slowest call).
const BURST_SECONDS: f64 = 15.0;

/// The points: (setup, used to fit). Each burst is sized from a first guess of the point's
/// capacity (the model with 10 ms overheads) to last about [`BURST_SECONDS`].
fn grid() -> Vec<(Setup, bool)> {
    let guess = Model {
        batch_overhead: 0.01,
        call_overhead: 0.01,
        batching_window: BATCHING_WINDOW.as_secs_f64(),
    };
    let setup = |shape: Shape, latency: Latency, quota_rpm: Option<f64>| Setup {
        shape,
        latency,
        quota_rpm,
        requests: (guess.capacity(shape, latency, quota_rpm) * BURST_SECONDS).clamp(100.0, 5_000.0) as usize,
    };
    let mut points = Vec::new();
    for partitions in [1, 3, 6, 12] {
        for (batch_size, concurrency) in [(5, 4), (5, 16), (20, 4), (20, 16)] {
            let training = matches!(partitions, 1 | 6);
            points.push((
                setup(shape(partitions, batch_size, concurrency), SWEEP_LATENCY, None),
                training,
            ));
        }
    }
    for partitions in [3, 6] {
        points.push((setup(shape(partitions, 10, 16), SLOWER, None), false));
    }
    // The quota binds: 6 × 20 at once against 300 calls a minute.
    points.push((setup(shape(6, 20, 16), SWEEP_LATENCY, Some(300.0)), false));
    points
}

/// Runs the sweep (or, given `measured`, reads its points from that file instead), writes
/// `dir`/{points.json, *.svg} and the model to `model`, prints the report.
pub async fn sweep(dir: &Path, model: &Path, measured: Option<&Path>) -> Result<(), BenchError> {
    let points = match measured {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| fail(&path.display().to_string(), e))?;
            serde_json::from_str(&text).map_err(|e| fail(&path.display().to_string(), e))?
        }
        None => measure().await?,
    };
    report::report(dir, model, &points)
}

/// Measures every point of the grid.
async fn measure() -> Result<Vec<Point>, BenchError> {
    println!(
        "capacity sweep: the local stack (embedded broker, trigger emulator, window {} ms) against a Gemini stand-in, a burst per point",
        BATCHING_WINDOW.as_millis()
    );
    println!(
        "  partitions batch conc  gemini p50/p99   quota  requests   resp/s     p50       p99    peak lag  429s  failed"
    );
    let mut points = Vec::new();
    for (i, (setup, training)) in grid().into_iter().enumerate() {
        let measured = point::run(&setup, i as u64 + 1).await?;
        let s = setup.shape;
        let f = &measured.figures;
        println!(
            "  {:>10} {:>5} {:>4}  {:>5.0}/{:<5.0} ms {:>7} {:>8}  {:>7.1}  {:>8}  {:>8}  {:>8}  {:>4}  {:>6}",
            s.partitions,
            s.batch_size,
            s.concurrency,
            setup.latency.p50 * 1e3,
            setup.latency.p99 * 1e3,
            setup.quota_rpm.map_or("-".to_owned(), |q| format!("{q:.0}/min")),
            setup.requests,
            f.throughput,
            report::seconds(f.p50),
            report::seconds(f.p99),
            measured.peak_lag,
            measured.throttled,
            measured.failed
        );
        points.push(Point {
            setup,
            measured,
            training,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    #[test]
    fn recommendations_use_the_templates_batching_window() {
        let window = qgen_local::esm::defaults::BATCHING_WINDOW.as_secs_f64();
        assert_eq!(qgen_planner::TEMPLATE_BATCHING_WINDOW, window);
    }
}

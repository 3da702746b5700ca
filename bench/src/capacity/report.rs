//! The sweep's report: the model fitted and checked point by point, the files written, the
//! recommendations printed.

use std::path::Path;

use serde::Serialize;

use super::fit::{Point, error, fit, predict};
use super::model::{Latency, Model, Shape};
use super::point::BATCHING_WINDOW;
use super::recommend::{Recommendation, recommend};
use super::{ModelFile, P99_TARGET, PRODUCTION_LATENCY, TOLERANCE, chart};
use crate::{BenchError, fail};

pub(super) fn seconds(s: f64) -> String {
    format!("{:.2} s", s)
}

/// Fits, validates, writes and recommends from `points`.
pub(super) fn report(dir: &Path, points: &[Point]) -> Result<(), BenchError> {
    let model = fit(points, BATCHING_WINDOW.as_secs_f64());
    println!(
        "\nmodel fitted on the 1- and 6-partition points: {:.0} ms per invocation, {:.1} ms per call on top of Gemini",
        model.batch_overhead * 1e3,
        model.call_overhead * 1e3
    );
    let file = validate(points, &model);
    std::fs::create_dir_all(dir).map_err(|e| fail("output directory", e))?;
    write_points(&dir.join("points.json"), points)?;
    write_json(&dir.join("model.json"), &file)?;
    chart::draw(dir, points, &model)?;
    println!(
        "wrote {}/{{points.json, model.json, throughput.svg, latency.svg, lag.svg}}",
        dir.display()
    );
    print_recommendations(&model, PRODUCTION_LATENCY, None, P99_TARGET);
    Ok(())
}

/// The points one to a line, so that a rerun's diff reads point by point.
fn write_points(path: &Path, points: &[Point]) -> Result<(), BenchError> {
    let lines: Result<Vec<String>, _> = points.iter().map(serde_json::to_string).collect();
    let text = format!("[\n{}\n]\n", lines.map_err(|e| fail("json", e))?.join(",\n"));
    std::fs::write(path, text).map_err(|e| fail(&path.display().to_string(), e))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| fail("json", e))?;
    std::fs::write(path, text + "\n").map_err(|e| fail(&path.display().to_string(), e))
}

/// Prints predicted against measured for every point; the held-out ones decide the verdict.
fn validate(points: &[Point], model: &Model) -> ModelFile {
    println!(
        "  partitions batch conc  gemini p50  quota   resp/s meas/pred (err)    p50 meas/pred (err)    p99 meas/pred (err)   set"
    );
    let (mut throughput_error, mut p50_error, mut held_out) = (0.0_f64, 0.0_f64, 0);
    for p in points {
        let predicted = predict(model, p);
        let m = &p.measured.figures;
        let quota = p.setup.quota_rpm.is_some();
        let measured_rate = if quota {
            p.measured.completed_rate
        } else {
            m.throughput
        };
        let (et, e50, e99) = (
            error(predicted.throughput, measured_rate),
            error(predicted.p50, m.p50),
            error(predicted.p99, m.p99),
        );
        let set = match (p.training, quota) {
            (true, _) => "fit",
            (false, false) => "held out",
            (false, true) => "quota (completed/s; reported, not validated)",
        };
        if !p.training && !quota {
            held_out += 1;
            throughput_error = throughput_error.max(et.abs());
            p50_error = p50_error.max(e50.abs());
        }
        let s = p.setup.shape;
        println!(
            "  {:>10} {:>5} {:>4}  {:>7.0} ms {:>6}  {:>6.1}/{:<6.1} ({:>+5.1} %)  {:>5.2}/{:<5.2} s ({:>+5.1} %)  {:>5.2}/{:<5.2} s ({:>+5.1} %)   {set}",
            s.partitions,
            s.batch_size,
            s.concurrency,
            p.setup.latency.p50 * 1e3,
            p.setup.quota_rpm.map_or("-".to_owned(), |q| format!("{q:.0}")),
            measured_rate,
            predicted.throughput,
            et * 100.0,
            m.p50,
            predicted.p50,
            e50 * 100.0,
            m.p99,
            predicted.p99,
            e99 * 100.0,
        );
    }
    println!(
        "held-out points: {held_out}; largest error: throughput {:.1} %, p50 {:.1} %   target <= {:.0} %   {}",
        throughput_error * 100.0,
        p50_error * 100.0,
        TOLERANCE * 100.0,
        crate::stats::verdict(throughput_error <= TOLERANCE && p50_error <= TOLERANCE)
    );
    ModelFile {
        model: *model,
        fitted_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        held_out,
        throughput_error,
        p50_error,
    }
}

/// The recommendation table for a few rates.
pub fn print_recommendations(model: &Model, latency: Latency, quota_rpm: Option<f64>, p99_target: f64) {
    let model = &deployed(model, super::TEMPLATE_BATCHING_WINDOW);
    println!(
        "\nrecommended for Gemini p50 {} / p99 {}, batching window {} (simulated; utilisation <= 70 %, p99 <= {}):",
        seconds(latency.p50),
        seconds(latency.p99),
        seconds(model.batching_window),
        seconds(p99_target)
    );
    println!(
        "  req/s  partitions  BatchSize  concurrency  capacity  steady p50  steady p99  Timeout  pollers"
    );
    for rate in [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0] {
        print_row(rate, &recommend(model, rate, latency, quota_rpm, p99_target));
    }
    // The template's defaults: 3 partitions (`topics`), BatchSize 10, GenerationConcurrency 16.
    let template = Shape {
        partitions: 3,
        batch_size: 10,
        concurrency: 16,
    };
    println!(
        "  the template's defaults (3 partitions, BatchSize 10, GenerationConcurrency 16) carry {:.1} responses/s at most",
        model.capacity(template, latency, quota_rpm)
    );
}

/// `model` with the batching window of the trigger it is to predict (the sweep runs a shorter
/// one, so that a point takes seconds; the fitted constants do not depend on it).
pub fn deployed(model: &Model, batching_window: f64) -> Model {
    Model {
        batching_window,
        ..*model
    }
}

/// One recommendation as a table row (and its warning, if any).
pub fn print_row(rate: f64, r: &Recommendation) {
    println!(
        "  {:>5.0}  {:>10}  {:>9}  {:>11}  {:>6.1}/s  {:>10}  {:>10}  {:>5} s  {:>3}-{:<3}",
        rate,
        r.shape.partitions,
        r.shape.batch_size,
        r.shape.concurrency,
        r.capacity,
        seconds(r.steady.p50),
        seconds(r.steady.p99),
        r.timeout,
        r.pollers.0,
        r.pollers.1
    );
    if let Some(warning) = &r.warning {
        println!("         WARNING: {warning}");
    }
}

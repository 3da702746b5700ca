//! The sweep's report: the model fitted and checked point by point, the files written, the
//! recommendations printed.

use std::path::Path;

use qgen_planner::fit::{Point, error, fit, predict};
use qgen_planner::model::Model;
use qgen_planner::{ModelFile, P99_TARGET, PRODUCTION_LATENCY, TOLERANCE};

use super::chart;
use super::point::BATCHING_WINDOW;
use crate::{BenchError, fail};

pub(super) fn seconds(s: f64) -> String {
    format!("{:.2} s", s)
}

/// Fits, validates, writes and recommends from `points`: the points and charts to `dir`, the
/// model to `model_path`.
pub(super) fn report(dir: &Path, model_path: &Path, points: &[Point]) -> Result<(), BenchError> {
    let model = fit(points, BATCHING_WINDOW.as_secs_f64());
    println!(
        "\nmodel fitted on the 1- and 6-partition points: {:.0} ms per invocation, {:.1} ms per call on top of Gemini",
        model.batch_overhead * 1e3,
        model.call_overhead * 1e3
    );
    let file = validate(points, &model);
    std::fs::create_dir_all(dir).map_err(|e| fail("output directory", e))?;
    write_points(&dir.join("points.json"), points)?;
    std::fs::write(model_path, file.to_text()).map_err(|e| fail(&model_path.display().to_string(), e))?;
    chart::draw(dir, points, &model)?;
    println!(
        "wrote {}/{{points.json, throughput.svg, latency.svg, lag.svg}} and {}",
        dir.display(),
        model_path.display()
    );
    print!(
        "{}",
        qgen_planner::table(&model, PRODUCTION_LATENCY, None, P99_TARGET)
    );
    Ok(())
}

/// The points one to a line, so that a rerun's diff reads point by point.
fn write_points(path: &Path, points: &[Point]) -> Result<(), BenchError> {
    let lines: Result<Vec<String>, _> = points.iter().map(serde_json::to_string).collect();
    let text = format!("[\n{}\n]\n", lines.map_err(|e| fail("json", e))?.join(",\n"));
    std::fs::write(path, text).map_err(|e| fail(&path.display().to_string(), e))
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

//! The sweep's charts, drawn by `plotters` into SVG files: throughput against partitions, latency
//! percentiles, and consumer lag over time during a burst. Measured points are marks, the
//! model's predictions lines.

use std::path::Path;

use plotters::prelude::*;
use qgen_planner::fit::{Point, predict};
use qgen_planner::model::{Model, Shape};

use crate::{BenchError, fail};

const SIZE: (u32, u32) = (900, 560);
const PARTITIONS: [u32; 4] = [1, 3, 6, 12];

fn colour(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    PALETTE[index % PALETTE.len()]
}

/// The main grid's (BatchSize, GENERATION_CONCURRENCY) pairs, in the order measured.
fn series(points: &[Point]) -> Vec<(u32, u32)> {
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for p in main_grid(points) {
        let pair = (p.setup.shape.batch_size, p.setup.shape.concurrency);
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    pairs
}

fn main_grid(points: &[Point]) -> impl Iterator<Item = &Point> {
    let latency = points.first().map(|p| p.setup.latency);
    points
        .iter()
        .filter(move |p| Some(p.setup.latency) == latency && p.setup.quota_rpm.is_none())
}

/// Writes `throughput.svg`, `latency.svg` and `lag.svg` into `dir`.
pub fn draw(dir: &Path, points: &[Point], model: &Model) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| fail("chart directory", e))?;
    throughput(&dir.join("throughput.svg"), points, model).map_err(|e| fail("throughput chart", e))?;
    latency(&dir.join("latency.svg"), points, model).map_err(|e| fail("latency chart", e))?;
    lag(&dir.join("lag.svg"), points).map_err(|e| fail("lag chart", e))?;
    Ok(())
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

fn throughput(path: &Path, points: &[Point], model: &Model) -> Drawn {
    let Some(first) = points.first() else {
        return Ok(());
    };
    let top = points
        .iter()
        .map(|p| p.measured.figures.throughput)
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Responses/s after a burst, Gemini p50 {:.0} ms p99 {:.0} ms (marks measured, lines model)",
                first.setup.latency.p50 * 1e3,
                first.setup.latency.p99 * 1e3
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u32..13u32, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("partitions")
        .y_desc("responses per second")
        .draw()?;
    for (i, (batch_size, concurrency)) in series(points).into_iter().enumerate() {
        let style = colour(i);
        let line: Vec<(u32, f64)> = PARTITIONS
            .iter()
            .map(|&partitions| {
                let shape = Shape {
                    partitions,
                    batch_size,
                    concurrency,
                };
                (partitions, model.capacity(shape, first.setup.latency, None))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(line, style.stroke_width(2)))?
            .label(format!("BatchSize {batch_size}, concurrency {concurrency}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2)));
        let marks = main_grid(points)
            .filter(|p| (p.setup.shape.batch_size, p.setup.shape.concurrency) == (batch_size, concurrency))
            .map(|p| {
                Circle::new(
                    (p.setup.shape.partitions, p.measured.figures.throughput),
                    5,
                    style.filled(),
                )
            });
        chart.draw_series(marks)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn latency(path: &Path, points: &[Point], model: &Model) -> Drawn {
    let top = points.iter().map(|p| p.measured.figures.p99).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Request to response during a burst: p50 (filled) and p99 (hollow), measured against predicted",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..top, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("predicted, s")
        .y_desc("measured, s")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (top, top)],
            BLACK.stroke_width(1),
        ))?
        .label("measured = predicted")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    // The ±15 % band: measured = 0.85 and 1.15 × predicted, each drawn to the chart's edge.
    let band = [0.85, 1.15].map(|k: f64| {
        let end = if k > 1.0 { (top / k, top) } else { (top, top * k) };
        LineSeries::new(vec![(0.0, 0.0), end], BLACK.mix(0.3))
    });
    for line in band {
        chart.draw_series(line)?;
    }
    for (training, style, label) in [(true, colour(0), "fitted on"), (false, colour(3), "held out")] {
        let chosen: Vec<&Point> = points.iter().filter(|p| p.training == training).collect();
        let predicted: Vec<_> = chosen.iter().map(|p| (p, predict(model, p))).collect();
        chart
            .draw_series(
                predicted
                    .iter()
                    .map(|(p, f)| Circle::new((f.p50, p.measured.figures.p50), 5, style.filled())),
            )?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, style.filled()));
        chart.draw_series(
            predicted
                .iter()
                .map(|(p, f)| Circle::new((f.p99, p.measured.figures.p99), 5, style.stroke_width(2))),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn lag(path: &Path, points: &[Point]) -> Drawn {
    // The main grid's largest batch and concurrency, one line per partition count.
    let Some(&(batch_size, concurrency)) = series(points).iter().max() else {
        return Ok(());
    };
    let chosen: Vec<&Point> = main_grid(points)
        .filter(|p| (p.setup.shape.batch_size, p.setup.shape.concurrency) == (batch_size, concurrency))
        .collect();
    let end = chosen
        .iter()
        .flat_map(|p| p.measured.lag.last().map(|s| s.0))
        .fold(1.0, f64::max);
    let top = chosen
        .iter()
        .map(|p| p.measured.peak_lag)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Consumer lag on question.request during a burst (BatchSize {batch_size}, concurrency {concurrency})"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the burst")
        .y_desc("records not yet committed")
        .draw()?;
    for (i, p) in chosen.iter().enumerate() {
        let style = colour(i);
        let line = p.measured.lag.iter().map(|&(t, l)| (t, l as f64));
        chart
            .draw_series(LineSeries::new(line, style.stroke_width(2)))?
            .label(format!(
                "{} partitions, {} requests",
                p.setup.shape.partitions, p.setup.requests
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

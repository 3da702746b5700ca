//! `qgen-bench`: the service's performance figures, measured in one run on this machine and
//! printed beside their targets. Absolute times on a shared machine are noise, so every figure
//! that has a baseline is a ratio of medians taken in the same run, with the two sides
//! interleaved. Each benchmark has a name ([`Benchmark`]): `--only` takes it, and its figures
//! are printed under it.
//!
//! - `publish`: the API handler's warm latency against the raw produce it wraps, on the mock
//!   broker, on tansu, and in instructions under valgrind;
//! - `batch`: the generator on 100 requests against a Gemini with fixed latency;
//! - `cold-start`: each release binary from exec to its first Runtime API poll (and Python's);
//! - `memory`: each release binary's peak RSS and CPU per request, then the sizing and the cost
//!   per million requests (printed as `cost`);
//! - `end-to-end`: the local stack over HTTP, requests accepted and completed per second;
//! - `artifacts`: the arm64 zips `cargo lambda build` left behind.
//!
//! # Layout
//!
//! - this file: the benchmarks' names, the options, the error, and [`run`], which runs the
//!   benchmarks in order.
//! - `fixtures`: the mock broker, the functions' configuration and the requests measured.
//! - `publish`: the `publish` benchmark, the API handler against a raw produce, its steps, the
//!   producer's codecs (then [`run`] runs `tansu` and `callgrind`, which use its pair of sides).
//! - `tansu`: the `publish` comparison again on a tansu broker process (optional).
//! - [`callgrind`]: the `publish` comparison counted in instructions under valgrind, with
//!   `qgen-callgrind`'s workload.
//! - `batch`: the `batch` benchmark, the generator's batch time at concurrency 1, 16 and 32.
//! - `process`: a release binary started as Lambda starts it, reaped on drop.
//! - `cold_start`: the `cold-start` benchmark, exec to the first Runtime API poll, and the Python
//!   comparison.
//! - `memory`: the `memory` benchmark, each release binary's peak RSS and CPU time per request,
//!   and the cost table.
//! - `cost`: the cost per million requests and the CPU at each MemorySize (printed after
//!   `memory`, as `cost`).
//! - `end_to_end`: the `end-to-end` benchmark, the local stack over HTTP: throughput and consumer
//!   lag.
//! - `artifacts`: the `artifacts` benchmark, the sizes of the arm64 zips and the release binaries.
//! - [`capacity`]: the capacity sweep (`qgen-bench capacity`): each point measured through the
//!   local stack, the model fitted by `qgen-planner` and written for it to compile in.
//! - [`stand_ins`]: the Gemini (fixed latency) and Lambda Runtime API stand-ins of `qgen-standins`.
//! - [`stats`]: percentiles, medians, ratios and how figures are printed.

mod artifacts;
mod batch;
pub mod callgrind;
pub mod capacity;
mod cold_start;
mod cost;
mod end_to_end;
mod fixtures;
mod memory;
mod process;
mod publish;
pub mod stand_ins;
pub mod stats;
mod tansu;

use std::path::PathBuf;
use std::time::Duration;

pub use fixtures::batch_event;
pub use process::parse_vm_hwm;

/// How thorough a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Under two minutes after the build: enough samples for stable medians.
    Quick,
    /// More samples and repetitions everywhere.
    Full,
}

/// A benchmark, by what it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Benchmark {
    /// The API handler against the raw produce it wraps (mock broker, tansu, instructions).
    Publish,
    /// The generator's time for one batch against a Gemini with fixed latency.
    Batch,
    /// Exec to the first Runtime API poll.
    ColdStart,
    /// Peak RSS and CPU per request, the sizing, the cost per million requests.
    Memory,
    /// The local stack over HTTP: throughput and consumer lag.
    EndToEnd,
    /// The sizes of the arm64 zips and the release binaries.
    Artifacts,
}

/// What `qgen-bench` is told.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Quick or full.
    pub mode: Mode,
    /// Cargo's target directory: release binaries in `release/`, arm64 zips in `lambda/`.
    pub target_dir: PathBuf,
    /// The Python interpreter for the cold-start comparison (`None`: skip it).
    pub python: Option<String>,
    /// Run only these benchmarks; all when empty.
    pub only: Vec<Benchmark>,
}

impl BenchOptions {
    fn selected(&self, benchmark: Benchmark) -> bool {
        self.only.is_empty() || self.only.contains(&benchmark)
    }
}

/// A benchmark could not run (as opposed to running and missing its target).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(pub String);

/// `context: error` as a [`BenchError`].
pub(crate) fn fail(context: &str, error: impl std::fmt::Display) -> BenchError {
    BenchError(format!("{context}: {error}"))
}

/// Gemini's latency in the `batch` and `memory` benchmarks.
pub const GEMINI_LATENCY: Duration = Duration::from_millis(200);
/// Requests in the batch of the `batch` and `memory` benchmarks.
pub const BATCH: usize = 100;

/// Runs every benchmark in order, printing each figure as soon as it is known. Targets that
/// are missed are reported, not errors; only a benchmark that cannot run at all is an `Err`.
pub async fn run(options: &BenchOptions) -> Result<(), BenchError> {
    println!(
        "qgen bench ({:?} mode): medians and ratios from this one run",
        options.mode
    );
    if options.selected(Benchmark::Publish) {
        publish::publish_path(options).await?;
        tansu::on_tansu(options.mode).await;
        callgrind::instruction_counts(&options.target_dir);
    }
    if options.selected(Benchmark::Batch) {
        batch::batch_throughput(options.mode).await?;
    }
    if options.selected(Benchmark::ColdStart) {
        cold_start::cold_start(options).await?;
    }
    if options.selected(Benchmark::Memory) {
        memory::memory(options).await?;
    }
    if options.selected(Benchmark::EndToEnd) {
        end_to_end::end_to_end(options.mode).await?;
    }
    if options.selected(Benchmark::Artifacts) {
        artifacts::artifacts(&options.target_dir);
    }
    Ok(())
}

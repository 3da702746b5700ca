//! `qgen-bench`: the service's performance figures, measured in one run on this machine and
//! printed beside their targets. Absolute times on a shared machine are noise, so every figure
//! that has a baseline is a ratio of medians taken in the same run, with the two sides
//! interleaved.
//!
//! 1. publish path: the API handler's warm latency against the raw produce it wraps;
//! 2. batch throughput: the generator on 100 requests against a Gemini with fixed latency;
//! 3. cold start: each release binary from exec to its first Runtime API poll (and Python's);
//! 4. memory, CPU and cost: each release binary's peak RSS and CPU per request; the cost per
//!    million requests;
//! 5. end to end: the local stack over HTTP, requests accepted and completed per second;
//! 6. artifacts: the arm64 zips `cargo lambda build` left behind.
//!
//! # Layout
//!
//! - this file: the options, the error, and [`run`], which runs the benchmarks in order.
//! - `fixtures`: the mock broker, the functions' configuration and the requests measured.
//! - `publish`: 1, the API handler against a raw produce, its steps, the producer's codecs.
//! - `tansu`: 1 again on a tansu broker process (optional).
//! - [`callgrind`]: 1 counted in instructions under valgrind, with `qgen-callgrind`'s workload.
//! - `batch`: 2, the generator's batch time at concurrency 1, 16 and 32.
//! - `process`: a release binary started as Lambda starts it, reaped on drop.
//! - `cold_start`: 3, exec to the first Runtime API poll, and the Python comparison.
//! - `memory`: 4, each release binary's peak RSS and CPU time per request, and the cost table.
//! - `cost`: the cost per million requests and the CPU at each MemorySize (printed after 4, as 7).
//! - `end_to_end`: 5, the local stack over HTTP: throughput and consumer lag.
//! - `artifacts`: 6, the sizes of the arm64 zips and the release binaries.
//! - [`capacity`]: the capacity sweep, its model and the recommendation (`qgen-bench capacity`,
//!   `qgen-bench recommend`).
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
pub use memory::parse_vm_hwm;

/// How thorough a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Under two minutes after the build: enough samples for stable medians.
    Quick,
    /// More samples and repetitions everywhere.
    Full,
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
    /// Run only these benchmarks (1–6); all when empty.
    pub only: Vec<u32>,
}

impl BenchOptions {
    fn selected(&self, benchmark: u32) -> bool {
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

/// Gemini's latency in benchmarks 2 and 4.
pub const GEMINI_LATENCY: Duration = Duration::from_millis(200);
/// Requests in the batch of benchmarks 2 and 4.
pub const BATCH: usize = 100;

/// Runs every benchmark in order, printing each figure as soon as it is known. Targets that
/// are missed are reported, not errors; only a benchmark that cannot run at all is an `Err`.
pub async fn run(options: &BenchOptions) -> Result<(), BenchError> {
    println!(
        "qgen bench ({:?} mode): medians and ratios from this one run",
        options.mode
    );
    if options.selected(1) {
        publish::publish_path(options).await?;
    }
    if options.selected(2) {
        batch::batch_throughput(options.mode).await?;
    }
    if options.selected(3) {
        cold_start::cold_start(options).await?;
    }
    if options.selected(4) {
        memory::memory(options).await?;
    }
    if options.selected(5) {
        end_to_end::end_to_end(options.mode).await?;
    }
    if options.selected(6) {
        artifacts::artifacts(&options.target_dir);
    }
    Ok(())
}

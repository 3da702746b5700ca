//! `qgen-bench`: the service's performance figures, measured against local stand-ins and printed
//! beside their targets. See `qgen-bench --help`; `scripts/bench` builds the release binaries it
//! measures, then runs it.
//!
//! # Layout
//!
//! - this file: the command line and the log filter, then [`qgen_bench::run`].
//! - the library (`src/lib.rs`): the benchmarks, one module each, and the stand-ins.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use qgen_bench::capacity;
use qgen_bench::{BenchOptions, Benchmark, Mode};

/// Measure the service (publish latency, batch throughput, cold start, memory, end to end,
/// artifact sizes) against local stand-ins and print each figure beside its target. Run it
/// from a release build: `scripts/bench` builds one and runs it.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Thorough: more samples and repetitions (quick, the default, takes under two minutes).
    #[arg(long, conflicts_with = "quick")]
    full: bool,
    /// Quick (the default).
    #[arg(long)]
    quick: bool,
    /// Cargo's target directory, holding release/question-api and release/question-generator.
    #[arg(long, env = "CARGO_TARGET_DIR", default_value = "target")]
    target_dir: PathBuf,
    /// Python interpreter for the cold-start comparison.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip the Python cold-start comparison.
    #[arg(long)]
    no_python: bool,
    /// Run only these benchmarks, e.g. `--only publish,cold-start`.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Benchmark>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The capacity sweep: partitions 1, 3, 6, 12 × BatchSize × GENERATION_CONCURRENCY through
    /// the local stack against a Gemini stand-in (lognormal latency, a per-minute quota); fits
    /// and checks the model, writes points, model and charts, prints recommendations.
    Capacity {
        /// Where to write points.json and the charts.
        #[arg(long, default_value_os_t = capacity::default_dir())]
        out: PathBuf,
        /// Where to write the model (by default the file `qgen-planner` compiles in).
        #[arg(long, default_value = qgen_planner::file::COMMITTED_PATH)]
        model: PathBuf,
        /// Fit and report from the points of an earlier sweep (its points.json) instead of
        /// measuring.
        #[arg(long)]
        points: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A benchmark logs only problems: a line per request would be part of what it measures. The
    // capacity sweep overloads Gemini on purpose, so its warnings are expected there.
    let filter = match cli.command {
        Some(Command::Capacity { .. }) => "error",
        _ => "warn,rdkafka=error",
    };
    qgen_local::init_logs(filter);
    if let Some(Command::Capacity { out, model, points }) = cli.command {
        return finish(capacity::sweep(&out, &model, points.as_deref()).await);
    }
    let options = BenchOptions {
        mode: if cli.full { Mode::Full } else { Mode::Quick },
        target_dir: cli.target_dir,
        python: (!cli.no_python).then_some(cli.python),
        only: cli.only,
    };
    finish(qgen_bench::run(&options).await)
}

fn finish(outcome: Result<(), qgen_bench::BenchError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

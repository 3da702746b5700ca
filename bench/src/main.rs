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

use clap::Parser;
use qgen_bench::{BenchOptions, Mode};

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
    /// Run only these benchmarks, e.g. `--only 1,3` (1 publish, 2 batch, 3 cold start,
    /// 4 memory, CPU and cost, 5 end to end, 6 artifacts).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u32>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A benchmark logs only problems: a line per request would be part of what it measures.
    qgen_local::init_logs("warn,rdkafka=error");
    let options = BenchOptions {
        mode: if cli.full { Mode::Full } else { Mode::Quick },
        target_dir: cli.target_dir,
        python: (!cli.no_python).then_some(cli.python),
        only: cli.only,
    };
    match qgen_bench::run(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

//! `qgen-callgrind`: one side of the `publish` benchmark (`handler` or `raw`) repeated warm on a mock
//! broker, for `valgrind --tool=callgrind --collect-atstart=no` to count; the counting is
//! switched on around each call from inside (see `qgen_bench::callgrind`). `qgen-bench` runs it;
//! by hand:
//!
//! ```sh
//! valgrind --tool=callgrind --collect-atstart=no target/release/qgen-callgrind handler [WARMUP [CALLS]]
//! ```

use std::process::ExitCode;

use qgen_bench::callgrind::{CALLS, Side, WARMUP, workload};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| args.get(i).map_or(Ok(default), |a| a.parse::<usize>());
    let (Some(side), Ok(warmup), Ok(calls)) = (
        args.first().and_then(|a| Side::parse(a)),
        number(1, WARMUP),
        number(2, CALLS),
    ) else {
        eprintln!("usage: qgen-callgrind handler|raw [WARMUP [CALLS]]");
        return ExitCode::FAILURE;
    };
    // As in qgen-bench: the handler's `info` line is filtered, not written.
    qgen_local::init_logs("warn,rdkafka=error");
    match workload(side, warmup, calls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

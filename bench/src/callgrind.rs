//! The `publish` benchmark counted in instructions rather than timed: the same two calls, each repeated warm
//! in its own run of `qgen-callgrind` under `valgrind --tool=callgrind`, which counts the
//! instructions executed (`Ir`). The count does not depend on what else the machine is doing,
//! so the ratio holds still where the latency ratio swings.
//!
//! # What is counted
//!
//! The whole `Api::handle` call against the whole raw send-and-ack, each on the calling thread
//! only: from the first poll of the call's future to its completion, including the runtime's
//! parking and waking while the broker's ack is awaited (a current-thread runtime, so every poll
//! is on that thread). Callgrind's `TOGGLE_COLLECT` client request switches counting on and off
//! around each call and acts on the thread that makes it; with `--collect-atstart=no` no other
//! thread is ever counted: neither the mock cluster's broker threads nor librdkafka's own
//! client threads (which queue, compress and write the record, the same work for both sides).
//! The handler's extra instructions are then its own work: validation, the request event, its
//! JSON, the publish wrapper (timeout, headers, trace), the EMF line and the 202 response.
//!
//! One part of that is not repeatable: glibc's allocator internals (`_int_malloc`,
//! `malloc_consolidate`, ...: `format::ARENA_WORK`). Chunks the calling thread allocates
//! are freed by librdkafka's threads, so how often `malloc` falls through its thread cache
//! into the arena depends on thread timing: it moved totals by 1–5 % between runs, and
//! everything else by under 0.5 %. So each run's count is split: the instructions outside the
//! arena code (the repeatable figure, and the ratio to read) and the arena work, printed apart.
//! `qgen-bench` runs each side twice and prints both runs' counts, so the repeatability is on
//! the page.

mod format;

use std::path::Path;
use std::process::{Command, Stdio};

use crate::fixtures::{api_request, mock_broker};
use crate::publish::PublishPair;
use crate::{BenchError, fail};
pub use format::{Counts, parse, spread};

/// Counted calls of each side (after [`WARMUP`] uncounted ones): valgrind runs code ~50x slower.
pub const CALLS: usize = 200;
/// Uncounted calls first: the producer's connection, metadata and the allocator's first growth.
pub const WARMUP: usize = 50;

/// Which call `qgen-callgrind` repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `Api::handle` on the `publish` benchmark's request, answered 202 after the broker's ack.
    Handler,
    /// One raw `FutureProducer` send of the same record, awaited until acknowledged.
    Raw,
}

impl Side {
    /// The side named `name` on `qgen-callgrind`'s command line.
    pub fn parse(name: &str) -> Option<Side> {
        match name {
            "handler" => Some(Side::Handler),
            "raw" => Some(Side::Raw),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::Handler => "handler",
            Side::Raw => "raw",
        }
    }
}

/// Callgrind's `TOGGLE_COLLECT` client request: `VG_USERREQ_TOOL_BASE('C', 'T') + 2`
/// (valgrind/callgrind.h).
const TOGGLE_COLLECT: u64 = ((b'C' as u64) << 24 | (b'T' as u64) << 16) + 2;

/// Switches callgrind's counting for the calling thread on or off.
fn toggle_collect() {
    client_request(TOGGLE_COLLECT);
}

/// Valgrind client request `request` without arguments; does nothing outside valgrind (nor on a
/// target other than x86-64, which it is not written for).
#[inline(always)]
fn client_request(_request: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let args: [u64; 6] = [_request, 0, 0, 0, 0, 0];
        let _result: u64;
        // SAFETY: valgrind's client request sequence for amd64 (valgrind.h). The four rotations
        // of rdi add up to 128 bits and `xchg rbx, rbx` swaps a register with itself, so run
        // natively it changes no register but rdx (declared) and the flags (clobbered by
        // default); under valgrind, the tool reads the six words at rax and answers in rdx.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") args.as_ptr(),
                inout("rdx") 0u64 => _result,
                options(nostack),
            );
        }
    }
}

/// The workload of `qgen-callgrind`: a mock broker, the `publish` benchmark's pair, `warmup` uncounted calls
/// of `side`, then `calls` counted ones, each counted from inside the runtime (see the module
/// documentation). The request is built outside the count, for both sides alike.
pub fn workload(side: Side, warmup: usize, calls: usize) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("runtime", e))?;
    let cluster = mock_broker()?;
    let pair = runtime.block_on(async { PublishPair::new(&cluster.bootstrap_servers()) })?;
    for i in 0..warmup + calls {
        let counted = i >= warmup;
        let request = api_request()?;
        runtime.block_on(async {
            if counted {
                toggle_collect();
            }
            let result = match side {
                Side::Handler => pair.handle(request).await,
                Side::Raw => pair.raw().await,
            };
            if counted {
                toggle_collect();
            }
            result
        })?;
    }
    Ok(())
}

/// Runs `binary side` under callgrind and returns what it counted.
fn count(binary: &Path, side: Side) -> Result<Counts, BenchError> {
    let out = std::env::temp_dir().join(format!(
        "qgen-callgrind-{}-{}.out",
        std::process::id(),
        side.name()
    ));
    let run = Command::new("valgrind")
        .args(["--tool=callgrind", "--collect-atstart=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(binary)
        .args([side.name(), &WARMUP.to_string(), &CALLS.to_string()])
        .stdin(Stdio::null())
        // The handler's EMF lines, as in the timed benchmark.
        .stdout(Stdio::null())
        .output()
        .map_err(|e| fail("run valgrind", e))?;
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(BenchError(format!(
            "valgrind {side:?} exited with {}: {}",
            run.status,
            tail.join(" | ")
        )));
    }
    let text = text.map_err(|e| fail("read the callgrind output", e))?;
    parse(&text).map_err(|e| BenchError(format!("callgrind output of {side:?}: {e}")))
}

/// The `publish` benchmark in instructions: each side run twice under callgrind; per call, the repeatable
/// count (outside glibc's arena code) with both runs' totals, the arena work apart, and the
/// ratios. Skipped, with the reason printed, without valgrind or the binary.
pub(crate) fn instruction_counts(target_dir: &Path) {
    println!(
        "    instructions per call (callgrind Ir, calling thread only, mock cluster, {CALLS} warm calls, each side run twice):"
    );
    if !cfg!(target_arch = "x86_64") {
        println!("      skipped: qgen-callgrind's client requests are written for x86-64 only");
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("      skipped: valgrind is not installed (ensure_valgrind in scripts/deps.sh installs it)");
        return;
    }
    let binary = target_dir.join("release").join("qgen-callgrind");
    if !binary.is_file() {
        println!(
            "      skipped: {} is missing (cargo build --release -p qgen-bench; scripts/bench does)",
            binary.display()
        );
        return;
    }
    let mut runs = [Vec::new(), Vec::new()];
    for _run in 0..2 {
        for (side, counts) in [Side::Handler, Side::Raw].into_iter().zip(&mut runs) {
            match count(&binary, side) {
                Ok(c) => counts.push(c),
                Err(error) => return println!("      not measured: {error}"),
            }
        }
    }
    // Per call, from the first run; the second is there to show the count repeats.
    let per_call = |count: u64| count as f64 / CALLS as f64;
    for (label, runs) in [("handler call", &runs[0]), ("raw produce call", &runs[1])] {
        let owns: Vec<u64> = runs.iter().map(|&c| c.own()).collect();
        let arenas: Vec<u64> = runs.iter().map(|&c| c.arena).collect();
        println!(
            "      {label:<16} {:>7.0} Ir  (runs {} / {}: {:.2} % apart)   + glibc arena {:>5.0} Ir ({:.0} % apart)",
            per_call(owns[0]),
            owns[0],
            owns[1],
            spread(&owns),
            per_call(arenas[0]),
            spread(&arenas)
        );
    }
    if runs.iter().all(|r| r.iter().all(|c| c.arena == 0)) {
        println!("      (no glibc allocator symbols seen: install libc6-dbg to count the arena apart)");
    }
    println!(
        "      handler / raw = {:.2} outside the arena (repeatable), {:.2} in all",
        runs[0][0].own() as f64 / runs[1][0].own() as f64,
        runs[0][0].total as f64 / runs[1][0].total as f64
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_named_on_the_command_line() {
        for side in [Side::Handler, Side::Raw] {
            assert_eq!(Side::parse(side.name()), Some(side));
        }
        assert_eq!(Side::parse("both"), None);
    }

    #[test]
    fn toggling_outside_valgrind_does_nothing() {
        toggle_collect();
        toggle_collect();
    }
}

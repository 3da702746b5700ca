//! Benchmark 4, memory: each release binary's peak resident set (`VmHWM`) while it handles a
//! batch under the Runtime API stand-in.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::fixtures::{batch_event, mock_broker};
use crate::process::{binary, lambda_env, spawn};
use crate::stand_ins::{GeminiStandIn, RuntimeApi};
use crate::stats::verdict;
use crate::{BATCH, BenchError, BenchOptions, GEMINI_LATENCY, fail};

/// `VmHWM` (peak resident set) of `pid`, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM:` value of a `/proc/<pid>/status` text, in kB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `function` under the Runtime API stand-in with `events`; returns its peak RSS (kB) once
/// every invocation has been answered, and how long they took.
async fn peak_rss(
    program: &str,
    function: &str,
    events: Vec<Bytes>,
    bootstrap: &str,
    gemini: &str,
) -> Result<(u64, Duration), BenchError> {
    let count = events.len();
    let mut runtime = RuntimeApi::start(events)
        .await
        .map_err(|e| fail("runtime api", e))?;
    let env = lambda_env(&runtime.address(), function, bootstrap, gemini);
    let started = Instant::now();
    let child = spawn(program, &[], &env)?;
    for _ in 0..count {
        let completion = runtime
            .completion(Duration::from_secs(120))
            .await
            .ok_or_else(|| BenchError(format!("{function} did not answer an invocation")))?;
        if completion.kind != "response" {
            return Err(BenchError(format!(
                "{function} reported {}: {}",
                completion.kind,
                String::from_utf8_lossy(&completion.body)
            )));
        }
    }
    let elapsed = started.elapsed();
    let peak = peak_rss_kb(child.0.id()).ok_or_else(|| BenchError("no /proc status".into()))?;
    Ok((peak, elapsed))
}

/// Runs benchmark 4 and prints its figures.
pub(crate) async fn memory(options: &BenchOptions) -> Result<(), BenchError> {
    let cluster = mock_broker()?;
    let bootstrap = cluster.bootstrap_servers();
    let gemini = GeminiStandIn::start(GEMINI_LATENCY)
        .await
        .map_err(|e| fail("gemini stand-in", e))?;
    println!("\n[4] memory: peak RSS (VmHWM) of each release binary under the Runtime API stand-in");
    let target_kb = 64 * 1024;

    let batch = serde_json::to_vec(&batch_event(BATCH, &bootstrap)?).map_err(|e| fail("batch", e))?;
    let program = binary(&options.target_dir, "question-generator")?;
    let (peak, took) = peak_rss(
        &program,
        "question-generator",
        vec![Bytes::from(batch)],
        &bootstrap,
        &gemini.base_url(),
    )
    .await?;
    println!(
        "    question-generator  {:>6.1} MB  (one batch of {BATCH}, C = 16, {} ms)   target <= 64 MB   {}",
        peak as f64 / 1024.0,
        took.as_millis(),
        verdict(peak <= target_kb)
    );

    // The API's batch: the same hundred requests, as API Gateway HTTP API events.
    let template: Value = serde_json::from_str(include_str!("../../events/api-http-v2.json"))
        .map_err(|e| fail("api event", e))?;
    let events: Vec<Bytes> = (0..BATCH)
        .map(|i| {
            let mut event = template.clone();
            event["body"] = json!(format!(
                r#"{{"request_id":"bench-{i}","topic":"Python Loops {i}","num_questions":5,"difficulty":"medium"}}"#
            ));
            Bytes::from(event.to_string())
        })
        .collect();
    let program = binary(&options.target_dir, "question-api")?;
    let (peak, took) = peak_rss(&program, "question-api", events, &bootstrap, &gemini.base_url()).await?;
    println!(
        "    question-api        {:>6.1} MB  ({BATCH} invocations, {} ms)              target <= 64 MB   {}",
        peak as f64 / 1024.0,
        took.as_millis(),
        verdict(peak <= target_kb)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_rss_from_proc_status() {
        let status = "Name:\tbootstrap\nVmPeak:\t  200000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   20000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(23_456));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}

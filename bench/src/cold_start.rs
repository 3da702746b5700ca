//! The `cold-start` benchmark: each release binary from exec to its first Runtime API poll, and a
//! Python function doing the same start-up work for comparison.

use std::time::{Duration, Instant};

use crate::fixtures::mock_broker;
use crate::process::{binary, lambda_env, spawn};
use crate::stand_ins::{GeminiStandIn, RuntimeApi};
use crate::stats::{median, ms, percentile, ratio, verdict};
use crate::{BenchError, BenchOptions, GEMINI_LATENCY, Mode, fail};

/// Time from exec to the first `GET /runtime/invocation/next`.
async fn one_cold_start(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    runtime: &RuntimeApi,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let child = spawn(program, args, env)?;
    let polled = runtime.first_poll(Duration::from_secs(20)).await;
    drop(child);
    polled
        .map(|at| at.saturating_duration_since(started))
        .ok_or_else(|| BenchError(format!("{program} never polled the Runtime API")))
}

/// A Python function doing the same start-up work: import confluent-kafka and boto3, build a
/// producer with the same settings and a Secrets Manager client, then poll for an invocation.
const PYTHON_FUNCTION: &str = r#"
import os, urllib.request
import boto3
from confluent_kafka import Producer
producer = Producer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "acks": "all",
                     "enable.idempotence": True, "linger.ms": 0, "compression.type": "lz4"})
secrets = boto3.client("secretsmanager")
urllib.request.urlopen("http://%s/2018-06-01/runtime/invocation/next" % os.environ["AWS_LAMBDA_RUNTIME_API"], timeout=60)
"#;

/// Runs the `cold-start` benchmark and prints its figures.
pub(crate) async fn cold_start(options: &BenchOptions) -> Result<(), BenchError> {
    let (starts, python_starts) = match options.mode {
        Mode::Quick => (21, 11),
        Mode::Full => (51, 21),
    };
    let cluster = mock_broker()?;
    let bootstrap = cluster.bootstrap_servers();
    let gemini = GeminiStandIn::start(GEMINI_LATENCY)
        .await
        .map_err(|e| fail("gemini stand-in", e))?;
    println!(
        "\n[cold-start] cold start: exec -> first Runtime API poll, release binaries, median of {starts}"
    );
    let mut rust_median = Duration::ZERO;
    for function in ["question-api", "question-generator"] {
        let program = binary(&options.target_dir, function)?;
        let mut times = Vec::with_capacity(starts);
        for _ in 0..starts {
            let runtime = RuntimeApi::start(Vec::new())
                .await
                .map_err(|e| fail("runtime api", e))?;
            let env = lambda_env(&runtime.address(), function, &bootstrap, &gemini.base_url());
            times.push(one_cold_start(&program, &[], &env, &runtime).await?);
        }
        let m = median(&times);
        rust_median = rust_median.max(m);
        println!(
            "    {function:<19} median {:>10}  p90 {:>10}   target <= 50 ms   {}",
            ms(m),
            ms(percentile(&times, 90.0)),
            verdict(m <= Duration::from_millis(50))
        );
    }
    let Some(python) = &options.python else {
        println!("    python (confluent-kafka + boto3): skipped");
        return Ok(());
    };
    let mut times = Vec::with_capacity(python_starts);
    for _ in 0..python_starts {
        let runtime = RuntimeApi::start(Vec::new())
            .await
            .map_err(|e| fail("runtime api", e))?;
        let env = lambda_env(&runtime.address(), "python", &bootstrap, &gemini.base_url());
        match one_cold_start(python, &["-c", PYTHON_FUNCTION], &env, &runtime).await {
            Ok(t) => times.push(t),
            Err(e) => {
                println!(
                    "    python (confluent-kafka + boto3): not measured ({e}; pip install confluent-kafka boto3)"
                );
                return Ok(());
            }
        }
    }
    let m = median(&times);
    println!(
        "    python + confluent-kafka + boto3  median {:>10} of {python_starts}   the slower Rust function starts x{:.1} faster",
        ms(m),
        ratio(m, rust_median)
    );
    Ok(())
}

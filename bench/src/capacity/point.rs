//! One point of the sweep: the local stack (embedded broker, HTTP API, the MSK trigger emulator
//! with one invocation in flight per partition, the generator in-process) against the quota
//! Gemini, a burst of requests over HTTP, every response read back from `question.response`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use qgen_local::stack::{UpOptions, up};
use qgen_planner::fit::{Measured, Setup};
use qgen_planner::model::figures;
use rdkafka::Message;
use serde_json::{Value, json};

use super::gemini::QuotaGemini;
use crate::end_to_end::{LagSampler, warmed_reader};
use crate::{BenchError, fail};

/// The emulator's `MaximumBatchingWindowInSeconds` in the sweep.
pub const BATCHING_WINDOW: Duration = Duration::from_millis(100);

fn epoch_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// Runs `setup` once and measures it.
pub async fn run(setup: &Setup, seed: u64) -> Result<Measured, BenchError> {
    let gemini = QuotaGemini::start(setup.latency, setup.quota_rpm, seed)
        .await
        .map_err(|e| fail("gemini stand-in", e))?;
    let shape = setup.shape;
    let options = UpOptions {
        api_addr: "127.0.0.1:0".parse().map_err(|e| fail("address", e))?,
        partitions: shape.partitions as i32,
        batch_size: shape.batch_size as usize,
        batching_window: BATCHING_WINDOW,
        invoke_url: None,
        state_file: None,
    };
    let base_url = gemini.base_url().to_owned();
    let concurrency = shape.concurrency.to_string();
    // With a quota, the generator is told it, as a deployment would be: the local stack's one
    // in-process generator serves every partition, so it takes the whole quota.
    let quota = setup.quota_rpm.map(|q| (q.floor() as u64).to_string());
    let env = move |var: &str| match var {
        "GOOGLE_API_KEY" => Some("capacity-sweep-key".to_owned()),
        "GEMINI_BASE_URL" => Some(base_url.clone()),
        "GENERATION_CONCURRENCY" => Some(concurrency.clone()),
        "GEMINI_QUOTA_RPM" => quota.clone(),
        "GEMINI_QUOTA_INVOCATIONS" => quota.as_ref().map(|_| "1".to_owned()),
        _ => None,
    };
    let stack = up(&options, env).await.map_err(|e| fail("local stack", e))?;
    let bootstrap = stack.bootstrap_servers();
    let client = reqwest::Client::new();
    let url = format!("{}{}", stack.api_url(), question_api::ROUTE);
    let warm = json!({"request_id": "capacity-warm", "topic": "Python Loops", "num_questions": 5, "difficulty": "medium"});
    let reader = warmed_reader(&bootstrap, shape.partitions as i32, &client, &url, &warm).await?;

    let sampler = LagSampler::start(&bootstrap, Duration::from_millis(50))?;

    let n = setup.requests;
    let sending = futures::stream::iter(0..n)
        .map(|i| {
            let (client, url) = (&client, &url);
            async move {
                let id = format!("capacity-{i}");
                let body = json!({"request_id": id, "topic": "Python Loops", "num_questions": 5, "difficulty": "medium"});
                let sent = epoch_seconds(SystemTime::now());
                let accepted = matches!(client.post(url).json(&body).send().await, Ok(r) if r.status() == 202);
                (id, sent, accepted)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>();
    let reading = async {
        let mut answered: HashMap<String, (f64, bool)> = HashMap::with_capacity(n);
        let limit = tokio::time::Instant::now() + Duration::from_secs(600);
        while answered.len() < n {
            let Ok(Ok(message)) = tokio::time::timeout_at(limit, reader.recv()).await else {
                break;
            };
            let event: Value = message
                .payload()
                .and_then(|p| serde_json::from_slice(p).ok())
                .unwrap_or(Value::Null);
            let Some(id) = event["eventData"]["request_id"].as_str() else {
                continue;
            };
            if id == "capacity-warm" {
                continue;
            }
            let at = message.timestamp().to_millis().unwrap_or(0) as f64 / 1000.0;
            let failed = event["eventData"]["status"] == "failed";
            answered.insert(id.to_owned(), (at, failed));
        }
        answered
    };
    let (sent, answered) = tokio::join!(sending, reading);
    let lag = sampler.stop().await;
    drop(reader);
    drop(client);
    stack.stop().await;

    let refused = sent.iter().filter(|(_, _, accepted)| !accepted).count();
    if refused > 0 || answered.len() < n {
        return Err(BenchError(format!(
            "{shape:?}: {refused} of {n} requests refused, {} answered",
            answered.len()
        )));
    }
    let start = sent.iter().map(|(_, at, _)| *at).fold(f64::INFINITY, f64::min);
    let (mut arrivals, mut done) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (id, at, _) in &sent {
        if let Some((answered_at, _)) = answered.get(id) {
            arrivals.push(at - start);
            done.push(answered_at - start);
        }
    }
    let mut order: Vec<usize> = (0..arrivals.len()).collect();
    order.sort_by(|&a, &b| arrivals[a].total_cmp(&arrivals[b]));
    // To the millisecond, the resolution of the responses' Kafka timestamps.
    let millis = |s: f64| (s * 1e3).round() / 1e3;
    let (arrivals, done): (Vec<f64>, Vec<f64>) =
        order.iter().map(|&i| (millis(arrivals[i]), done[i])).unzip();
    let completed: Vec<f64> = answered
        .values()
        .filter(|(_, failed)| !failed)
        .map(|(at, _)| at - start)
        .collect();
    let last = completed.iter().copied().fold(0.0, f64::max);
    Ok(Measured {
        figures: figures(&arrivals, &done),
        arrivals,
        completed_rate: if last > 0.0 {
            completed.len() as f64 / last
        } else {
            0.0
        },
        peak_lag: lag.iter().map(|(_, l)| *l).max().unwrap_or(0),
        lag,
        throttled: gemini.throttled(),
        calls: gemini.calls(),
        failed: answered.values().filter(|(_, failed)| *failed).count(),
    })
}

#[cfg(test)]
mod tests {
    use qgen_planner::model::{Latency, Shape};

    use super::*;

    fn setup(quota_rpm: Option<f64>, requests: usize) -> Setup {
        Setup {
            shape: Shape {
                partitions: 2,
                batch_size: 5,
                concurrency: 5,
            },
            latency: Latency { p50: 0.02, p99: 0.06 },
            quota_rpm,
            requests,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_goes_through_the_stack_and_every_response_is_counted() {
        let measured = run(&setup(None, 30), 1).await.expect("the point runs");
        assert_eq!(measured.arrivals.len(), 30);
        assert!(measured.arrivals.windows(2).all(|w| w[0] <= w[1]));
        // One Gemini call per request, the warm-up's included; none refused or failed.
        assert_eq!(measured.calls, 31);
        assert_eq!((measured.throttled, measured.failed), (0, 0));
        let f = measured.figures;
        assert!(f.throughput > 0.0 && f.p50 >= 0.02 && f.p99 >= f.p50, "{f:?}");
        assert!(measured.completed_rate > 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_over_the_quota_waits_for_it_and_every_request_completes() {
        // One call a second: the burst of 10 waits in Kafka and is paced, none fails.
        let measured = run(&setup(Some(60.0), 10), 2).await.expect("the point runs");
        assert_eq!(measured.failed, 0, "{measured:?}");
        assert_eq!(measured.arrivals.len(), 10, "every request answered");
        // Paced at the quota: 10 completions a second apart take 9 s at least (1.11/s), where
        // an unpaced stack would answer them in a tenth of a second; and at most one 429 a
        // request (the stand-in's bucket and the pace are not in step).
        assert!(measured.completed_rate <= 1.25, "{measured:?}");
        assert!(measured.throttled <= 10, "{measured:?}");
    }
}

//! The `end-to-end` benchmark: the local stack (embedded broker, offline source) over HTTP, warm,
//! requests accepted and completed per second, and the generator group's consumer lag sampled
//! meanwhile.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use qgen_local::stack::{UpOptions, up};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::fixtures::{REQUEST_TOPIC, RESPONSE_TOPIC};
use crate::stats::verdict;
use crate::{BenchError, Mode, fail};

/// Consumer lag of the generator's group on `question.request`: records produced but not yet
/// committed, summed over partitions.
pub(crate) fn group_lag(lag_reader: &BaseConsumer) -> Option<i64> {
    let metadata = lag_reader
        .fetch_metadata(Some(REQUEST_TOPIC), Duration::from_secs(2))
        .ok()?;
    let mut partitions = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        partitions.add_partition(REQUEST_TOPIC, partition.id());
    }
    let committed = lag_reader
        .committed_offsets(partitions, Duration::from_secs(2))
        .ok()?;
    let mut lag = 0;
    for element in committed.elements() {
        let (low, high) = lag_reader
            .fetch_watermarks(REQUEST_TOPIC, element.partition(), Duration::from_secs(2))
            .ok()?;
        let done = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        lag += (high - done).max(0);
    }
    Some(lag)
}

/// The generator group's lag, sampled every so often by a client of the group that never joins
/// it, until stopped.
pub(crate) struct LagSampler {
    sampling: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(f64, i64)>>,
}

impl LagSampler {
    /// Starts sampling the broker at `bootstrap` every `every`.
    pub(crate) fn start(bootstrap: &str, every: Duration) -> Result<Self, BenchError> {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", qgen_local::esm::defaults::CONSUMER_GROUP_ID)
            .create()
            .map_err(|e| fail("lag reader", e))?;
        let sampling = Arc::new(AtomicBool::new(true));
        let started = Instant::now();
        let running = sampling.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut samples = Vec::new();
            while running.load(Ordering::Relaxed) {
                if let Some(lag) = group_lag(&reader) {
                    // Seconds since the start, to the millisecond.
                    let at = (started.elapsed().as_secs_f64() * 1e3).round() / 1e3;
                    samples.push((at, lag));
                }
                std::thread::sleep(every);
            }
            samples
        });
        Ok(LagSampler { sampling, task })
    }

    /// Stops, and gives the samples: (seconds since the start, records behind).
    pub(crate) async fn stop(self) -> Vec<(f64, i64)> {
        self.sampling.store(false, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// A reader of every partition of `question.response` from the start, returned once `warm` has
/// gone through the whole pipeline over HTTP and its response is read: the figures then leave
/// out the consumer group's first join (seconds) and the connections' set-up.
pub(crate) async fn warmed_reader(
    bootstrap: &str,
    partitions: i32,
    client: &reqwest::Client,
    url: &str,
    warm: &Value,
) -> Result<StreamConsumer, BenchError> {
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "qgen-bench-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| fail("reader", e))?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(RESPONSE_TOPIC, partition, Offset::Beginning)
            .map_err(|e| fail("assign", e))?;
    }
    reader.assign(&assignment).map_err(|e| fail("assign", e))?;
    client
        .post(url)
        .json(warm)
        .send()
        .await
        .map_err(|e| fail("warm-up request", e))?;
    tokio::time::timeout(Duration::from_secs(60), reader.recv())
        .await
        .map_err(|e| fail("warm-up response", e))?
        .map_err(|e| fail("warm-up response", e))?;
    Ok(reader)
}

/// Runs the `end-to-end` benchmark and prints its figures.
pub(crate) async fn end_to_end(mode: Mode) -> Result<(), BenchError> {
    let n = match mode {
        Mode::Quick => 2_000,
        Mode::Full => 10_000,
    };
    let in_flight = 32;
    let options = UpOptions {
        api_addr: "127.0.0.1:0".parse().map_err(|e| fail("address", e))?,
        partitions: 3,
        batch_size: 100,
        batching_window: Duration::from_millis(500),
        invoke_url: None,
        state_file: None,
    };
    // No environment at all: the embedded broker and the offline source, whatever is set.
    let stack = up(&options, |_| None).await.map_err(|e| fail("local stack", e))?;
    let bootstrap = stack.bootstrap_servers();

    let client = reqwest::Client::new();
    let url = format!("{}{}", stack.api_url(), question_api::ROUTE);
    let warm =
        json!({"request_id": "e2e-warm", "topic": "Python Loops", "num_questions": 3, "difficulty": "easy"});
    let reader = warmed_reader(&bootstrap, 3, &client, &url, &warm).await?;

    let sampler = LagSampler::start(&bootstrap, Duration::from_millis(100))?;

    let started = Instant::now();
    let reading = async {
        let mut seen = HashSet::with_capacity(n);
        let limit = tokio::time::Instant::now() + Duration::from_secs(300);
        while seen.len() < n {
            match tokio::time::timeout_at(limit, reader.recv()).await {
                Ok(Ok(message)) => {
                    let event: Value = message
                        .payload()
                        .and_then(|p| serde_json::from_slice(p).ok())
                        .unwrap_or(Value::Null);
                    if let Some(id) = event["eventData"]["request_id"].as_str() {
                        seen.insert(id.to_owned());
                    }
                }
                Ok(Err(_)) => {}
                Err(_) => break,
            }
        }
        (seen.len(), started.elapsed())
    };
    let sending = async {
        let accepted = futures::stream::iter(0..n)
            .map(|i| {
                let client = &client;
                let url = &url;
                async move {
                    let body = json!({"request_id": format!("e2e-{i}"), "topic": "Python Loops", "num_questions": 3, "difficulty": "easy"});
                    matches!(client.post(url).json(&body).send().await, Ok(r) if r.status() == 202)
                }
            })
            .buffer_unordered(in_flight)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await;
        (accepted, started.elapsed())
    };
    let ((accepted, accepted_in), (completed, completed_in)) = tokio::join!(sending, reading);
    let lags: Vec<i64> = sampler.stop().await.into_iter().map(|(_, lag)| lag).collect();
    // Clients first: a consumer, or an API connection keeping a producer alive, that outlives
    // the embedded broker logs connection errors.
    drop(reader);
    drop(client);
    stack.stop().await;

    println!(
        "\n[end-to-end] end to end through the local stack (offline source, batch 100, window 500 ms), warm, {n} requests, {in_flight} in flight"
    );
    println!(
        "    accepted (202) {accepted:>6} in {:>8.2} s = {:>7.0} req/s",
        accepted_in.as_secs_f64(),
        accepted as f64 / accepted_in.as_secs_f64()
    );
    println!(
        "    completed      {completed:>6} in {:>8.2} s = {:>7.0} req/s   all completed: {}",
        completed_in.as_secs_f64(),
        completed as f64 / completed_in.as_secs_f64(),
        verdict(accepted == n && completed == n)
    );
    let mut sorted = lags.clone();
    sorted.sort_unstable();
    println!(
        "    consumer lag (group question-generator) over {} samples: median {}  max {}",
        sorted.len(),
        sorted.get(sorted.len() / 2).copied().unwrap_or(0),
        sorted.last().copied().unwrap_or(0)
    );
    Ok(())
}

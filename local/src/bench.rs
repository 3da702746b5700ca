//! `bench`: the service's performance figures, measured in one run on this machine and printed
//! beside their targets. Absolute times on a shared machine are noise, so every figure that has
//! a baseline is a ratio of medians taken in the same run, with the two sides interleaved.
//!
//! 1. publish path: the API handler's warm latency against the raw produce it wraps;
//! 2. batch throughput: the generator on 100 requests against a Gemini with fixed latency;
//! 3. cold start: each release binary from exec to its first Runtime API poll (and Python's);
//! 4. memory: each release binary's peak RSS while it handles a batch;
//! 5. end to end: the local stack over HTTP, requests accepted and completed per second;
//! 6. artifacts: the arm64 zips `cargo lambda build` left behind.

pub mod stand_ins;
pub mod stats;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::kafka::KafkaEvent;
use bytes::Bytes;
use futures::StreamExt;
use qgen_adapters::config::{ApiConfig, KafkaConfig, Secret};
use qgen_adapters::kafka::{
    CONTENT_TYPE_JSON, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_EVENT_TYPE, KafkaPublisher,
    producer_config,
};
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, RequestEvent, ResponseEvent};
use qgen_contract::msk::kafka_event;
use qgen_contract::validation::{Limits, parse_request_body};
use question_api::Api;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};

use self::stand_ins::{GeminiStandIn, RuntimeApi};
use self::stats::{median, ms, percentile, ratio, verdict};
use crate::stack::{UpOptions, up};

/// How thorough a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Under two minutes after the build: enough samples for stable medians.
    Quick,
    /// More samples and repetitions everywhere.
    Full,
}

/// What `bench` is told.
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

fn fail(context: &str, error: impl std::fmt::Display) -> BenchError {
    BenchError(format!("{context}: {error}"))
}

/// Gemini's latency in benchmarks 2 and 4.
pub const GEMINI_LATENCY: Duration = Duration::from_millis(200);
/// Requests in the batch of benchmarks 2 and 4.
pub const BATCH: usize = 100;

const REQUEST_TOPIC: &str = "question.request";
const RESPONSE_TOPIC: &str = "question.response";
const DLQ_TOPIC: &str = "question.request.dlq";
const BODY: &str = r#"{"topic":"Python Loops","num_questions":5,"difficulty":"medium"}"#;

/// Runs every benchmark in order, printing each figure as soon as it is known. Targets that
/// are missed are reported, not errors; only a benchmark that cannot run at all is an `Err`.
pub async fn run(options: &BenchOptions) -> Result<(), BenchError> {
    println!(
        "qgen bench ({:?} mode): medians and ratios from this one run",
        options.mode
    );
    if options.selected(1) {
        publish_path(options.mode).await?;
    }
    if options.selected(2) {
        batch_throughput(options.mode).await?;
    }
    if options.selected(3) {
        cold_start(options).await?;
    }
    if options.selected(4) {
        memory(options).await?;
    }
    if options.selected(5) {
        end_to_end(options.mode).await?;
    }
    if options.selected(6) {
        artifacts(&options.target_dir);
    }
    Ok(())
}

/// A one-broker mock cluster with the service's topics.
fn mock_broker() -> Result<MockCluster<'static, DefaultProducerContext>, BenchError> {
    let cluster = MockCluster::new(1).map_err(|e| fail("mock cluster", e))?;
    for (topic, partitions) in [(REQUEST_TOPIC, 3), (RESPONSE_TOPIC, 3), (DLQ_TOPIC, 1)] {
        cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| fail("mock topic", e))?;
    }
    Ok(cluster)
}

/// The functions' configuration with everything at its default but the broker and Gemini.
fn lookup(bootstrap: &str, gemini: Option<&str>) -> impl Fn(&str) -> Option<String> + use<> {
    let bootstrap = bootstrap.to_owned();
    let gemini = gemini.map(str::to_owned);
    move |var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.clone()),
        "GOOGLE_API_KEY" => Some("bench-key".to_owned()),
        "GEMINI_BASE_URL" => gemini.clone(),
        _ => None,
    }
}

fn api_request() -> Result<lambda_http::Request, BenchError> {
    http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("https://api.example{}", question_api::ROUTE))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(lambda_http::Body::from(BODY.as_bytes().to_vec()))
        .map_err(|e| fail("request", e))
}

// ---------------------------------------------------------------------------------------------
// 1. Publish path

/// One raw `FutureProducer` send of `payload`, awaited until the broker acknowledges it.
async fn raw_send(
    producer: &FutureProducer,
    key: &str,
    event_id: &str,
    payload: &[u8],
) -> Result<(), BenchError> {
    let headers = OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: HEADER_EVENT_TYPE,
            value: Some("question.generation.request"),
        })
        .insert(Header {
            key: HEADER_EVENT_ID,
            value: Some(event_id),
        })
        .insert(Header {
            key: HEADER_CONTENT_TYPE,
            value: Some(CONTENT_TYPE_JSON),
        });
    let record = FutureRecord::to(REQUEST_TOPIC)
        .key(key)
        .payload(payload)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(5))
        .await
        .map(|_| ())
        .map_err(|(e, _)| fail("raw produce", e))
}

async fn publish_path(mode: Mode) -> Result<(), BenchError> {
    let (warmup, n) = match mode {
        Mode::Quick => (200, 2_000),
        Mode::Full => (500, 10_000),
    };
    let cluster = mock_broker()?;
    let config =
        ApiConfig::from_lookup(lookup(&cluster.bootstrap_servers(), None)).map_err(|e| fail("config", e))?;
    let api = Api::new(
        KafkaPublisher::new(&config.kafka).map_err(|e| fail("publisher", e))?,
        &config,
    );
    let raw: FutureProducer = producer_config(&config.kafka)
        .create()
        .map_err(|e| fail("raw producer", e))?;
    // The record the handler produces for BODY: same size, same key, same headers.
    let event = RequestEvent::new_request(
        parse_request_body(BODY.as_bytes(), &Limits::default()).map_err(|e| fail("body", e))?,
    );
    let payload = serde_json::to_vec(&event).map_err(|e| fail("event", e))?;
    let key = event.event_data.request_id.clone();

    let mut handler = Vec::with_capacity(n);
    let mut produce = Vec::with_capacity(n);
    for i in 0..warmup + n {
        // Built outside the timed region: API Gateway hands the function a parsed request.
        let mut request = Some(api_request()?);
        // A/B then B/A: neither side always goes first, so drift and any after-effect of the
        // other side's call fall on both equally.
        let handler_first = i % 2 == 0;
        let mut h = Duration::ZERO;
        let mut p = Duration::ZERO;
        for turn in 0..2 {
            if (turn == 0) == handler_first {
                let request = request
                    .take()
                    .ok_or_else(|| BenchError("request used twice".into()))?;
                let started = Instant::now();
                let response = api.handle(request).await;
                h = started.elapsed();
                if response.status() != http::StatusCode::ACCEPTED {
                    return Err(BenchError(format!("the handler answered {}", response.status())));
                }
            } else {
                let started = Instant::now();
                raw_send(&raw, &key, &event.event_id, &payload).await?;
                p = started.elapsed();
            }
        }
        if i >= warmup {
            handler.push(h);
            produce.push(p);
        }
    }
    let (h50, p50) = (median(&handler), median(&produce));
    let r = ratio(h50, p50);
    println!(
        "\n[1] publish path: question-api handler vs one raw FutureProducer send, {n} each, interleaved"
    );
    println!(
        "    handler (validate -> produce -> ack)  p50 {}  p99 {}",
        ms(h50),
        ms(percentile(&handler, 99.0))
    );
    println!(
        "    raw produce + ack                     p50 {}  p99 {}",
        ms(p50),
        ms(percentile(&produce, 99.0))
    );
    println!(
        "    handler p50 / raw p50 = {r:.2}   target <= 1.30   {}",
        verdict(r <= 1.30)
    );
    handler_steps(n);
    producer_settings(&config.kafka, &event, n / 2).await
}

/// Where the handler's time over the raw produce goes: its CPU steps timed one by one, with
/// the same calls the handler makes, so a reader knows what a fix would have to cut.
fn handler_steps(n: usize) {
    fn time(n: usize, mut step: impl FnMut()) -> Duration {
        let samples: Vec<Duration> = (0..n)
            .map(|_| {
                let started = Instant::now();
                step();
                started.elapsed()
            })
            .collect();
        median(&samples)
    }
    let limits = Limits::default();
    let request = parse_request_body(BODY.as_bytes(), &limits).ok();
    let event = request.clone().map(RequestEvent::new_request);
    let steps = [
        (
            "parse + validate body",
            time(n, || drop(parse_request_body(BODY.as_bytes(), &limits))),
        ),
        (
            "request event (UUID, timestamp)",
            time(n, || drop(request.clone().map(RequestEvent::new_request))),
        ),
        (
            "event to JSON",
            time(n, || drop(event.as_ref().map(serde_json::to_vec))),
        ),
        (
            "EMF metric line on stdout",
            time(n, || {
                qgen_adapters::telemetry::Metrics::new(question_api::SERVICE)
                    .count("Accepted", 1)
                    .duration("PublishLatency", Duration::from_micros(50))
                    .emit()
            }),
        ),
    ];
    let figures: Vec<String> = steps
        .iter()
        .map(|(name, t)| format!("{name} {:.1} µs", t.as_secs_f64() * 1e6))
        .collect();
    println!("    handler steps (p50 of {n} each): {}", figures.join(", "));
}

/// The producer's compression, weighed in the same run: the configured codec against the
/// others (`zstd`, `lz4`, none), on a request-sized record and on a response-sized one (five
/// questions), the producers taking turns so that each sees the same broker.
async fn producer_settings(kafka: &KafkaConfig, event: &RequestEvent, n: usize) -> Result<(), BenchError> {
    let configured = producer_config(kafka);
    let current = configured.get("compression.type").unwrap_or("none").to_owned();
    let mut variants = vec![current.as_str()];
    variants.extend(["zstd", "lz4", "none"].into_iter().filter(|c| *c != current));
    let mut producers = Vec::with_capacity(variants.len());
    for &compression in &variants {
        let producer: FutureProducer = producer_config(kafka)
            .set("compression.type", compression)
            .create()
            .map_err(|e| fail("producer", e))?;
        producers.push(producer);
    }
    let request = serde_json::to_vec(event).map_err(|e| fail("event", e))?;
    let questions = qgen_contract::offline::questions("Python Loops", 5, Difficulty::Medium);
    let response = ResponseEvent::completed(&event.event_id, &event.event_data.request_id, questions);
    let response = serde_json::to_vec(&response).map_err(|e| fail("event", e))?;
    println!("    producer compression (raw produce + ack, p50 of {n} each, taking turns):");
    for (label, payload) in [("request", &request), ("response", &response)] {
        let mut times = vec![Vec::with_capacity(n); producers.len()];
        for i in 0..n + 100 {
            for turn in 0..producers.len() {
                // Rotating who goes first, for the same reason as above.
                let v = (i + turn) % producers.len();
                let started = Instant::now();
                raw_send(
                    &producers[v],
                    &event.event_data.request_id,
                    &event.event_id,
                    payload,
                )
                .await?;
                if i >= 100 {
                    times[v].push(started.elapsed());
                }
            }
        }
        let base = median(&times[0]);
        let figures: Vec<String> = variants
            .iter()
            .zip(&times)
            .map(|(name, t)| format!("{name} {} (x{:.2})", ms(median(t)), ratio(median(t), base)))
            .collect();
        println!("      {label:<8} {:>5} B: {}", payload.len(), figures.join("  "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Batch throughput

/// `n` request records on `question.request`, as the broker would hold them, spread over three
/// partitions.
fn request_messages(n: usize) -> Result<Vec<OwnedMessage>, BenchError> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"request_id":"bench-{i}","topic":"Python Loops {i}","num_questions":5,"difficulty":"medium"}}"#
            );
            let request =
                parse_request_body(body.as_bytes(), &Limits::default()).map_err(|e| fail("body", e))?;
            let event = RequestEvent::new_request(request);
            let payload = serde_json::to_vec(&event).map_err(|e| fail("event", e))?;
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: HEADER_EVENT_TYPE,
                    value: Some(event.event_type.as_bytes()),
                })
                .insert(Header {
                    key: HEADER_EVENT_ID,
                    value: Some(event.event_id.as_bytes()),
                });
            Ok(OwnedMessage::new(
                Some(payload),
                Some(event.event_data.request_id.into_bytes()),
                REQUEST_TOPIC.to_owned(),
                rdkafka::Timestamp::CreateTime(1_795_773_600_000),
                (i % 3) as i32,
                (i / 3) as i64,
                Some(headers),
            ))
        })
        .collect()
}

/// The MSK batch of benchmark 2: [`BATCH`] requests of five questions each.
pub fn batch_event(n: usize, bootstrap: &str) -> Result<KafkaEvent, BenchError> {
    let messages = request_messages(n)?;
    Ok(kafka_event(
        messages.iter().map(record_json),
        "arn:aws:kafka:eu-west-1:000000000000:cluster/bench/bench",
        bootstrap,
    ))
}

async fn batch_throughput(mode: Mode) -> Result<(), BenchError> {
    let repeats = match mode {
        Mode::Quick => 3,
        Mode::Full => 7,
    };
    let cluster = mock_broker()?;
    let bootstrap = cluster.bootstrap_servers();
    let gemini = GeminiStandIn::start(GEMINI_LATENCY)
        .await
        .map_err(|e| fail("gemini stand-in", e))?;
    let event = batch_event(BATCH, &bootstrap)?;
    println!(
        "\n[2] batch throughput: generator on {BATCH} requests, Gemini stand-in with fixed latency {} ms",
        GEMINI_LATENCY.as_millis()
    );
    let mut baseline = None;
    for concurrency in [1usize, 16, 32] {
        let mut config = GeneratorConfig::from_lookup(lookup(&bootstrap, Some(&gemini.base_url())))
            .map_err(|e| fail("config", e))?;
        config.concurrency = concurrency;
        let generator = Generator::new(
            GeminiClient::new(&config.gemini, Secret::new("bench-key"))
                .map_err(|e| fail("gemini client", e))?,
            KafkaPublisher::new(&config.kafka).map_err(|e| fail("publisher", e))?,
            &config,
        );
        // C = 1 takes BATCH × L (20 s): once is enough, its spread is tiny next to its length.
        let runs = if concurrency == 1 { 1 } else { repeats };
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            let started = Instant::now();
            let report = generator.handle(&event, deadline).await;
            times.push(started.elapsed());
            if report.completed != BATCH {
                return Err(BenchError(format!("batch not fully completed: {report:?}")));
            }
        }
        let t = median(&times);
        let ideal = GEMINI_LATENCY * BATCH.div_ceil(concurrency) as u32;
        let r = ratio(t, ideal);
        let base = *baseline.get_or_insert(t);
        let target = if concurrency == 1 {
            "(baseline)".to_owned()
        } else {
            format!("target <= 1.15   {}", verdict(r <= 1.15))
        };
        println!(
            "    C = {concurrency:>2}: median {:>9} of {runs}  ideal {:>9}  ratio {r:.3}  speed-up x{:.1}   {target}",
            ms(t),
            ms(ideal),
            ratio(base, t)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3 and 4. Release binaries under a Runtime API stand-in

/// The environment Lambda gives a function, pointed at the stand-ins.
fn lambda_env(runtime_api: &str, function: &str, bootstrap: &str, gemini: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", function),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_REGION", "eu-west-1"),
        // boto3 reads the region from this one; Lambda sets both.
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
        ("GOOGLE_API_KEY", "bench-key"),
        ("GEMINI_BASE_URL", gemini),
        ("GENERATION_CONCURRENCY", "16"),
        ("AWS_LAMBDA_LOG_LEVEL", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A child process killed and reaped on drop, so no benchmark leaves one behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str], env: &[(String, String)]) -> Result<Reaped, BenchError> {
    Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaped)
        .map_err(|e| fail(&format!("start {program}"), e))
}

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

fn binary(target_dir: &Path, name: &str) -> Result<String, BenchError> {
    let path = target_dir.join("release").join(name);
    if !path.is_file() {
        return Err(BenchError(format!(
            "{} is missing: build with `cargo build --release -p {name}` (scripts/bench does)",
            path.display()
        )));
    }
    Ok(path.to_string_lossy().into_owned())
}

async fn cold_start(options: &BenchOptions) -> Result<(), BenchError> {
    let (starts, python_starts) = match options.mode {
        Mode::Quick => (21, 11),
        Mode::Full => (51, 21),
    };
    let cluster = mock_broker()?;
    let bootstrap = cluster.bootstrap_servers();
    let gemini = GeminiStandIn::start(GEMINI_LATENCY)
        .await
        .map_err(|e| fail("gemini stand-in", e))?;
    println!("\n[3] cold start: exec -> first Runtime API poll, release binaries, median of {starts}");
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

async fn memory(options: &BenchOptions) -> Result<(), BenchError> {
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

// ---------------------------------------------------------------------------------------------
// 5. End to end

/// Consumer lag of the generator's group on `question.request`: records produced but not yet
/// committed, summed over partitions.
fn group_lag(lag_reader: &BaseConsumer) -> Option<i64> {
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

async fn end_to_end(mode: Mode) -> Result<(), BenchError> {
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

    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "qgen-bench-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| fail("reader", e))?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment
            .add_partition_offset(RESPONSE_TOPIC, partition, Offset::Beginning)
            .map_err(|e| fail("assign", e))?;
    }
    reader.assign(&assignment).map_err(|e| fail("assign", e))?;

    let client = reqwest::Client::new();
    let url = format!("{}{}", stack.api_url(), question_api::ROUTE);
    // Warm: one request through the whole pipeline first, so the figures leave out the
    // consumer group's first join (seconds) and the connections' set-up.
    let warm =
        json!({"request_id": "e2e-warm", "topic": "Python Loops", "num_questions": 3, "difficulty": "easy"});
    client
        .post(&url)
        .json(&warm)
        .send()
        .await
        .map_err(|e| fail("warm-up request", e))?;
    tokio::time::timeout(Duration::from_secs(60), reader.recv())
        .await
        .map_err(|e| fail("warm-up response", e))?
        .map_err(|e| fail("warm-up response", e))?;

    // Lag sampled every 100 ms by a client of the generator's group that never joins it.
    let lag_reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "question-generator")
        .create()
        .map_err(|e| fail("lag reader", e))?;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::task::spawn_blocking(move || {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                if let Some(lag) = group_lag(&lag_reader) {
                    samples.push(lag);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };

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
    sampling.store(false, Ordering::Relaxed);
    let lags = sampler.await.unwrap_or_default();
    // Clients first: a consumer, or an API connection keeping a producer alive, that outlives
    // the embedded broker logs connection errors.
    drop(reader);
    drop(client);
    stack.stop().await;

    println!(
        "\n[5] end to end through the local stack (offline source, batch 100, window 500 ms), warm, {n} requests, {in_flight} in flight"
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

// ---------------------------------------------------------------------------------------------
// 6. Artifacts

fn artifacts(target_dir: &Path) {
    println!("\n[6] artifacts: arm64 Lambda zips (Lambda's limit: 50 MB zipped)");
    for function in ["question-api", "question-generator"] {
        let zip = target_dir.join("lambda").join(function).join("bootstrap.zip");
        match std::fs::metadata(&zip) {
            Ok(meta) => println!(
                "    {function:<19} {:>6.2} MB zipped  ({})   target <= 50 MB   {}",
                meta.len() as f64 / 1_048_576.0,
                zip.display(),
                verdict(meta.len() <= 50 * 1_048_576)
            ),
            Err(_) => println!("    {function:<19} not built, run scripts/check-deploy"),
        }
        let native = target_dir.join("release").join(function);
        if let Ok(meta) = std::fs::metadata(&native) {
            println!(
                "    {function:<19} {:>6.2} MB x86-64 release binary (stripped, unzipped)",
                meta.len() as f64 / 1_048_576.0
            );
        }
    }
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

    #[test]
    fn the_benchmark_batch_is_a_real_msk_event_of_distinct_requests() {
        let event = batch_event(BATCH, "127.0.0.1:9092").unwrap();
        let records: Vec<_> = event.records.values().flatten().collect();
        assert_eq!(records.len(), BATCH);
        assert_eq!(event.records.len(), 3);
        let keys: HashSet<_> = records.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys.len(), BATCH);
    }
}

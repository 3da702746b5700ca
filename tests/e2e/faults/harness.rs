//! The fault runs' harness, shared by every `faults` module: requests posted over HTTP, response
//! events read back, the broker under test and how it goes away, both functions' configuration,
//! and the bounds a wait or a refusal must keep.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::StreamExt;
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_contract::msk::KafkaBatchResponse;
use qgen_local::esm::{InvokeError, Invoker};
use qgen_testkit::{MockBroker, TansuBroker, assert_on_contract};
use question_api::Api;
use question_generator::config::GeneratorConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::chaos;

pub(super) fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the generator, then — once — reports failure anyway, as a function that crashed after
/// publishing would: the batch is retried and its responses published again.
pub(super) struct CrashOnce<I> {
    pub(super) inner: I,
    pub(super) invocations: AtomicUsize,
    pub(super) crash_on: usize,
}

impl<I: Invoker> Invoker for CrashOnce<I> {
    async fn invoke(&self, event: &KafkaEvent, deadline: Instant) -> Result<KafkaBatchResponse, InvokeError> {
        let n = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
        let response = self.inner.invoke(event, deadline).await?;
        if n == self.crash_on {
            return Err(InvokeError("injected crash after publishing".into()));
        }
        Ok(response)
    }
}

#[derive(Debug, Default)]
pub(super) struct Posted {
    pub(super) accepted: Vec<(String, String)>,
    pub(super) accepted_latency_ms: Vec<u64>,
    pub(super) refused: usize,
    pub(super) refused_latency_ms: Vec<u64>,
    pub(super) other: Vec<u16>,
}

/// The topic a request is sent with: a fault run's `fault-{i}` asks about `i`, which decides
/// its faults (see `chaos`).
pub(super) fn request_topic(id: &str) -> String {
    match id.strip_prefix("fault-").and_then(|i| i.parse().ok()) {
        Some(index) => chaos::topic(index),
        None => "Fault tolerance".to_owned(),
    }
}

pub(super) async fn post_all(http: &reqwest::Client, url: &str, ids: impl Iterator<Item = String>) -> Posted {
    let results: Vec<(String, u16, Value, u64)> = futures::stream::iter(ids)
        .map(|id| async move {
            let body = json!({"request_id": id, "topic": request_topic(&id), "num_questions": 2, "difficulty": "medium"});
            let started = Instant::now();
            let response = http.post(url).json(&body).send().await.expect("the API answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (id, status, body, started.elapsed().as_millis() as u64)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut posted = Posted::default();
    for (id, status, body, latency) in results {
        match status {
            202 => {
                posted
                    .accepted
                    .push((id, body["event_id"].as_str().unwrap_or_default().to_owned()));
                posted.accepted_latency_ms.push(latency);
            }
            503 => {
                assert_eq!(body["error"]["code"], "unavailable");
                posted.refused += 1;
                posted.refused_latency_ms.push(latency);
            }
            other => posted.other.push(other),
        }
    }
    posted
}

/// Every response event on the topic, read until each of `expected` has one (or `limit`).
pub(super) async fn read_responses(
    bootstrap: &str,
    expected: &HashSet<String>,
    limit: Duration,
) -> Vec<Value> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fault-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..3 {
        assignment
            .add_partition_offset("question.response", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + limit;
    let mut events = Vec::new();
    let mut missing = expected.clone();
    // After the last expected response, keep reading briefly to count late duplicates.
    let mut drain_until: Option<Instant> = None;
    loop {
        let stop = drain_until.unwrap_or(deadline).min(deadline);
        match tokio::time::timeout_at(stop, consumer.recv()).await {
            Ok(Ok(message)) => {
                assert_on_contract("question.response", message.payload());
                let event: Value = serde_json::from_slice(message.payload().unwrap_or_default()).unwrap();
                missing.remove(event["eventData"]["request_id"].as_str().unwrap_or_default());
                events.push(event);
                if missing.is_empty() && drain_until.is_none() {
                    drain_until = Some(Instant::now() + Duration::from_secs(2));
                }
            }
            // Transport errors while the broker restarts: librdkafka reconnects by itself.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => break,
        }
    }
    events
}

pub(super) fn median(values: &[u64]) -> u64 {
    let mut values = values.to_vec();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

pub(super) fn max(values: &[u64]) -> u64 {
    values.iter().max().copied().unwrap_or(0)
}

/// The broker under test, and how it goes away.
pub(super) enum Broker {
    /// librdkafka's mock cluster: drops every connection and refuses new ones, keeping its data.
    Mock(MockBroker),
    /// A tansu process: killed with SIGKILL, restarted on the same port and SQLite file.
    Tansu(TansuBroker),
}

impl Broker {
    pub(super) fn bootstrap_servers(&self) -> String {
        match self {
            Broker::Mock(b) => b.bootstrap_servers(),
            Broker::Tansu(b) => b.bootstrap_servers(),
        }
    }

    pub(super) fn stop(&mut self) {
        match self {
            Broker::Mock(b) => b.go_down(),
            Broker::Tansu(b) => b.kill(),
        }
    }

    pub(super) async fn start(&mut self) {
        match self {
            Broker::Mock(b) => b.come_up(),
            Broker::Tansu(b) => b.restart().await,
        }
    }
}

pub(super) fn init_logs() {
    // Warnings and errors (producer replaced, batch retried, …) show when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("FAULT_LOG").unwrap_or_else(|_| "warn,rdkafka=error".into()),
        ))
        .with_test_writer()
        .try_init();
}

/// Both functions' configuration against `bootstrap` and a Gemini stand-in.
pub(super) fn configs(
    bootstrap: &str,
    message_timeout_ms: u64,
    gemini_url: &str,
) -> (ApiConfig, GeneratorConfig) {
    let vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", message_timeout_ms.to_string()),
        ("GEMINI_BASE_URL", gemini_url.to_owned()),
        ("GEMINI_TIMEOUT_MS", "1000".to_owned()),
        ("GEMINI_BACKOFF_BASE_MS", "20".to_owned()),
        // The circuit breaker (tested in question-generator's own tests) would open whenever
        // five failures of concurrent requests happen to come in a row, and turn the outcome of
        // the requests after into a matter of timing; the fault runs count outcomes exactly.
        ("GEMINI_BREAKER_THRESHOLD", "10000".to_owned()),
        // Likewise a request whose failures happen to meet no other request's success would be
        // held for Gemini instead of answered; holding has runs of its own (`queued`), with the
        // defaults.
        ("GEMINI_MAX_WAIT_SECONDS", "0".to_owned()),
    ]);
    let lookup = |var: &str| vars.get(var).cloned();
    (
        ApiConfig::from_lookup(lookup).unwrap(),
        GeneratorConfig::from_lookup(lookup).unwrap(),
    )
}

/// The API served over real HTTP; returns its URL and the server task.
pub(super) async fn serve_api(config: &ApiConfig, shutdown: &CancellationToken) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), question_api::ROUTE);
    let api = Arc::new(Api::new(KafkaPublisher::new(&config.kafka).unwrap(), config));
    let server = tokio::spawn(qgen_local::http::serve(listener, api, shutdown.clone()));
    (url, server)
}

/// README, promise 1: a caller held during a broker restart waits for the broker and at most one
/// reconnect backoff more (`reconnect.backoff.max.ms=1000`, `qgen_adapters::kafka::client_config`).
pub(super) const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Slack on the upper bound of a wait for the broker, for a 2-core machine building beside the
/// suite.
pub(super) const LOAD_MARGIN: Duration = Duration::from_secs(3);
/// Slack on the upper bound of a 503: the API's own timer fires at its publish timeout at the
/// latest; this is time to write the answer after it on a loaded machine.
pub(super) const ANSWER_MARGIN: Duration = Duration::from_millis(1_500);

/// The API's publish timeout (`question_api::Api::new`): the message timeout + 1 s.
pub(super) fn publish_timeout(message_timeout: Duration) -> Duration {
    message_timeout + Duration::from_secs(1)
}

/// Promise 2's bounds on the 503s: never before the message timeout (a 503 comes from the
/// broker not acknowledging in time, not from a shortcut), never later than the API's publish
/// timeout and the time to answer.
pub(super) fn check_refusal_times(latency_ms: &[u64], message_timeout: Duration) {
    let Some(&min) = latency_ms.iter().min() else {
        return;
    };
    let at_most = publish_timeout(message_timeout) + ANSWER_MARGIN;
    assert!(
        min >= message_timeout.as_millis() as u64,
        "a 503 came after {min} ms, before the message timeout ({message_timeout:?}): {latency_ms:?}"
    );
    assert!(
        max(latency_ms) <= at_most.as_millis() as u64,
        "a 503 took {} ms, over the publish timeout {:?} + {ANSWER_MARGIN:?}: {latency_ms:?}",
        max(latency_ms),
        publish_timeout(message_timeout)
    );
}

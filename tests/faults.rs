//! Fault injection through the local stack's parts: requests over real HTTP while Gemini fails,
//! stalls and talks nonsense, while the broker is down for a few seconds (librdkafka's mock
//! cluster drops every connection and refuses new ones, keeping its data), and while one batch
//! crashes after its side effects. Proves DESIGN.md's promises 1 and 2:
//!
//! 1. every request that got a 202 ends in at least one terminal response event, and every
//!    copy of that response carries the same `eventId`;
//! 2. while the broker is down the API answers 503 within its timeout, and nothing it refused
//!    is published.
//!
//! Prints the figures (`cargo test -p qgen-tests --test faults -- --nocapture`). The size and
//! the fault rates are set by `FAULT_REQUESTS` (default 500), `FAULT_GEMINI_ERROR_PCT` (30),
//! `FAULT_GEMINI_MALFORMED_PCT` (10) and `FAULT_GEMINI_SLOW_PCT` (5).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::StreamExt;
use qgen::config::{ApiConfig, GeneratorConfig, Secret};
use qgen::kafka::{KafkaPublisher, client_config};
use qgen::testing::{GeminiStandIn, MockBroker, gemini_reply};
use qgen_local::esm::{Emulator, EsmConfig, InvokeError, Invoker};
use question_api::Api;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wiremock::{Request, Respond, ResponseTemplate};

fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A Gemini stand-in that fails by call number, deterministically: of every 100 calls, the
/// first `error_pct` answer 429 or 503, the next `malformed_pct` answer text that is not the
/// schema, the next `slow_pct` answer after the client's timeout, and the rest answer well.
struct Chaos {
    calls: AtomicUsize,
    error_pct: usize,
    malformed_pct: usize,
    slow_pct: usize,
}

impl Respond for Chaos {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        // Spread the faults: call i lands on slot (i * 37) mod 100.
        let slot = (self.calls.fetch_add(1, Ordering::SeqCst) * 37) % 100;
        if slot < self.error_pct {
            let status = if slot.is_multiple_of(2) { 429 } else { 503 };
            return ResponseTemplate::new(status).insert_header("retry-after", "0");
        }
        if slot < self.error_pct + self.malformed_pct {
            return ResponseTemplate::new(200)
                .set_body_json(gemini_reply("{\"questions\": \"nope\"", "STOP"));
        }
        let reply = answer(request);
        if slot < self.error_pct + self.malformed_pct + self.slow_pct {
            return reply.set_delay(Duration::from_secs(3));
        }
        reply
    }
}

fn answer(request: &Request) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(qgen::offline::answer_generate_content(&request.body))
}

/// Runs the generator, then — once — reports failure anyway, as a function that crashed after
/// publishing would: the batch is retried and its responses published again.
struct CrashOnce<I> {
    inner: I,
    invocations: AtomicUsize,
    crash_on: usize,
}

impl<I: Invoker> Invoker for CrashOnce<I> {
    async fn invoke(&self, event: &KafkaEvent, deadline: Instant) -> Result<(), InvokeError> {
        let n = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.invoke(event, deadline).await?;
        if n == self.crash_on {
            return Err(InvokeError("injected crash after publishing".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Posted {
    accepted: Vec<(String, String)>,
    refused: usize,
    refused_latency_ms: Vec<u64>,
    other: Vec<u16>,
}

async fn post_all(http: &reqwest::Client, url: &str, ids: impl Iterator<Item = String>) -> Posted {
    let results: Vec<(String, u16, Value, u64)> = futures::stream::iter(ids)
        .map(|id| async move {
            let body = json!({"request_id": id, "topic": "Fault tolerance", "num_questions": 2, "difficulty": "medium"});
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
            202 => posted
                .accepted
                .push((id, body["event_id"].as_str().unwrap_or_default().to_owned())),
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
async fn read_responses(bootstrap: &str, expected: &HashSet<String>, limit: Duration) -> Vec<Value> {
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

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_accepted_request_is_lost_through_gemini_faults_a_broker_restart_and_a_crashed_batch() {
    // Warnings and errors (producer replaced, batch retried, …) show when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("FAULT_LOG").unwrap_or_else(|_| "warn,rdkafka=error".into()),
        ))
        .with_test_writer()
        .try_init();
    let total = env_number("FAULT_REQUESTS", 500);
    let broker = MockBroker::with_service_topics();
    let bootstrap = broker.bootstrap_servers();
    let gemini = GeminiStandIn::start(Chaos {
        calls: AtomicUsize::new(0),
        error_pct: env_number("FAULT_GEMINI_ERROR_PCT", 30),
        malformed_pct: env_number("FAULT_GEMINI_MALFORMED_PCT", 10),
        slow_pct: env_number("FAULT_GEMINI_SLOW_PCT", 5),
    })
    .await;
    let vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.clone()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "3000".to_owned()),
        ("GEMINI_BASE_URL", gemini.base_url()),
        ("GEMINI_TIMEOUT_MS", "1000".to_owned()),
        ("GEMINI_BACKOFF_BASE_MS", "20".to_owned()),
    ]);
    let lookup = |var: &str| vars.get(var).cloned();
    let api_config = ApiConfig::from_lookup(lookup).unwrap();
    let generator_config = GeneratorConfig::from_lookup(lookup).unwrap();

    // The API over real HTTP.
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), question_api::ROUTE);
    let api = Arc::new(Api::new(
        KafkaPublisher::new(&api_config.kafka).unwrap(),
        &api_config,
    ));
    let server = tokio::spawn(qgen_local::http::serve(listener, api, shutdown.clone()));

    // The trigger emulator feeding the generator, which crashes once after publishing.
    let generator = Generator::new(
        GeminiClient::new(&generator_config.gemini, Secret::new("chaos-key")).unwrap(),
        KafkaPublisher::new(&generator_config.kafka).unwrap(),
        &generator_config,
    );
    let invoker = CrashOnce {
        inner: generator,
        invocations: AtomicUsize::new(0),
        crash_on: 3,
    };
    let mut esm = EsmConfig::new("question.request");
    esm.batch_size = 50;
    esm.batching_window = Duration::from_millis(200);
    esm.retry_base = Duration::from_millis(200);
    esm.retry_max = Duration::from_secs(2);
    let emulator = Emulator::new(&client_config(&generator_config.kafka), esm, invoker).unwrap();
    let esm_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { emulator.run(shutdown).await }
    });

    // Load, with the broker down for a few seconds in the middle.
    let http = reqwest::Client::new();
    let before = total * 2 / 5;
    let during = 48.min(total / 5);
    let started = Instant::now();
    let first = post_all(&http, &url, (0..before).map(|i| format!("fault-{i}"))).await;
    broker.go_down();
    let (second, ()) = tokio::join!(
        post_all(
            &http,
            &url,
            (before..before + during).map(|i| format!("fault-{i}"))
        ),
        async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            broker.come_up();
        }
    );
    let third = post_all(
        &http,
        &url,
        (before + during..total).map(|i| format!("fault-{i}")),
    )
    .await;
    let load_time = started.elapsed();

    let accepted: Vec<(String, String)> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p.accepted.clone())
        .collect();
    let refused = first.refused + second.refused + third.refused;
    let accepted_ids: HashSet<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    let events = read_responses(&bootstrap, &accepted_ids, Duration::from_secs(180)).await;
    shutdown.cancel();
    let _ = server.await;
    let _ = esm_task.await;

    // Promise 1: every accepted request has a terminal response; copies share one eventId.
    let mut by_request: HashMap<String, Vec<&Value>> = HashMap::new();
    for event in &events {
        let id = event["eventData"]["request_id"].as_str().unwrap().to_owned();
        by_request.entry(id).or_default().push(event);
    }
    let lost: Vec<&String> = accepted_ids
        .iter()
        .filter(|id| !by_request.contains_key(*id))
        .collect();
    let mut duplicates = 0;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (id, copies) in &by_request {
        let ids: HashSet<&str> = copies.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1, "{id}: copies with different eventIds {ids:?}");
        duplicates += copies.len() - 1;
        let last = copies.last().unwrap();
        let outcome = match last["eventData"]["error"]["code"].as_str() {
            Some(code) => format!("failed:{code}"),
            None => "completed".to_owned(),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let mut refused_latency: Vec<u64> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p.refused_latency_ms.clone())
        .collect();
    let refused_median = median(&mut refused_latency);
    let refused_max = refused_latency.iter().max().copied().unwrap_or(0);

    eprintln!(
        "\nfault-injection run: {total} requests in {:.1} s\n  accepted (202): {}\n  refused (503, broker down): {refused} \
         (median {refused_median} ms, max {refused_max} ms)\n  responses read: {} for {} requests\n  outcomes: {outcomes:?}\n  \
         duplicates (same eventId): {duplicates}\n  lost: {}\n",
        load_time.as_secs_f64(),
        accepted.len(),
        events.len(),
        by_request.len(),
        lost.len(),
    );
    assert!(lost.is_empty(), "accepted but never answered: {lost:?}");
    assert!(
        first.other.is_empty() && second.other.is_empty() && third.other.is_empty(),
        "unexpected statuses"
    );
    assert_eq!(accepted.len() + refused, total);
    assert!(refused > 0, "the broker outage should have refused some requests");
    // Promise 2: a refusal comes within the API's publish timeout (message timeout 3 s + 1 s).
    assert!(refused_max < 4_500, "503 took {refused_max} ms");
    // Nothing refused was answered: a 503'd request never reached the topic.
    let refused_ids: HashSet<String> = (0..total)
        .map(|i| format!("fault-{i}"))
        .filter(|id| !accepted_ids.contains(id))
        .collect();
    assert!(
        by_request.keys().all(|id| !refused_ids.contains(id)),
        "a refused request was published"
    );
    assert!(
        duplicates > 0,
        "the crashed batch should have re-published its responses"
    );
}

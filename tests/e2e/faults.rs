//! Fault injection through the local stack's parts: requests over real HTTP while Gemini fails,
//! stalls and talks nonsense, while the broker goes away for a few seconds, and while one batch
//! crashes after its side effects. Proves docs/DESIGN.md's promises 1 and 2:
//!
//! 1. every request that got a 202 ends in at least one terminal response event, and every
//!    copy of that response carries the same `eventId`;
//! 2. while the broker is down the API answers 503 within its timeout, and nothing it refused
//!    is published.
//!
//! Three runs:
//! - a tansu process killed (SIGKILL) and restarted on its SQLite data in the middle of the
//!   load, with a message timeout longer than the outage, as a production deployment has: the
//!   callers wait, nobody is refused, nothing is lost;
//! - a tansu process killed while requests arrive, with a message timeout shorter than the
//!   outage: every caller gets a 503 within the timeout, and after the restart the topic holds
//!   what was accepted before the kill and nothing that was refused;
//! - librdkafka's mock cluster refusing every connection for longer than the message timeout
//!   under the same chaos: some callers get 503, and the same API instance and generator go on
//!   afterwards. (On tansu 0.6 this case cannot run: a producer whose messages timed out bumps
//!   its epoch, as librdkafka does since KIP-360, and tansu's storage task panics on the bumped
//!   epoch, failing every later request.)
//!
//! The Gemini faults are decided per request and call (`chaos`), so every request's outcome is
//! known before it is sent: the runs check each response against it (`completed`, or the one
//! failure its faults make), the count of Gemini calls against the retry policy, and the waits
//! against the README's bounds: a caller held by a broker restart waits at most the outage and
//! one reconnect backoff (1 s), a 503 comes between the message timeout and the API's publish
//! timeout (message timeout + 1 s).
//!
//! `failure_path` runs the failure path of the deployed trigger: records given up to
//! question.request.failed and replayed, and partial batch responses. `timeouts` measures the
//! two settings behind those bounds: `reconnect.backoff.max.ms=1000` against librdkafka's
//! default, and how late librdkafka reports a timed-out record.
//!
//! Prints the figures (`cargo test -p qgen-tests --test e2e faults -- --nocapture`). The size and
//! the fault rates are set by `FAULT_REQUESTS` (default 500), `FAULT_GEMINI_ERROR_PCT` (30),
//! `FAULT_GEMINI_MALFORMED_PCT` (10) and `FAULT_GEMINI_SLOW_PCT` (5).

mod chaos;
mod failure_path;
mod timeouts;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::StreamExt;
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::{KafkaPublisher, client_config};
use qgen_contract::msk::KafkaBatchResponse;
use qgen_local::esm::{Emulator, EsmConfig, InvokeError, Invoker};
use qgen_testkit::{GeminiStandIn, MockBroker, TansuBroker, assert_on_contract, read_topic};
use question_api::Api;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::chaos::{Chaos, Rates};

fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the generator, then — once — reports failure anyway, as a function that crashed after
/// publishing would: the batch is retried and its responses published again.
struct CrashOnce<I> {
    inner: I,
    invocations: AtomicUsize,
    crash_on: usize,
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
struct Posted {
    accepted: Vec<(String, String)>,
    accepted_latency_ms: Vec<u64>,
    refused: usize,
    refused_latency_ms: Vec<u64>,
    other: Vec<u16>,
}

/// The topic a request is sent with: a fault run's `fault-{i}` asks about `i`, which decides
/// its faults (see `chaos`).
fn request_topic(id: &str) -> String {
    match id.strip_prefix("fault-").and_then(|i| i.parse().ok()) {
        Some(index) => chaos::topic(index),
        None => "Fault tolerance".to_owned(),
    }
}

async fn post_all(http: &reqwest::Client, url: &str, ids: impl Iterator<Item = String>) -> Posted {
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

fn median(values: &[u64]) -> u64 {
    let mut values = values.to_vec();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn max(values: &[u64]) -> u64 {
    values.iter().max().copied().unwrap_or(0)
}

/// The broker under test, and how it goes away.
enum Broker {
    /// librdkafka's mock cluster: drops every connection and refuses new ones, keeping its data.
    Mock(MockBroker),
    /// A tansu process: killed with SIGKILL, restarted on the same port and SQLite file.
    Tansu(TansuBroker),
}

impl Broker {
    fn bootstrap_servers(&self) -> String {
        match self {
            Broker::Mock(b) => b.bootstrap_servers(),
            Broker::Tansu(b) => b.bootstrap_servers(),
        }
    }

    fn stop(&mut self) {
        match self {
            Broker::Mock(b) => b.go_down(),
            Broker::Tansu(b) => b.kill(),
        }
    }

    async fn start(&mut self) {
        match self {
            Broker::Mock(b) => b.come_up(),
            Broker::Tansu(b) => b.restart().await,
        }
    }
}

fn init_logs() {
    // Warnings and errors (producer replaced, batch retried, …) show when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("FAULT_LOG").unwrap_or_else(|_| "warn,rdkafka=error".into()),
        ))
        .with_test_writer()
        .try_init();
}

/// Both functions' configuration against `bootstrap` and a Gemini stand-in.
fn configs(bootstrap: &str, message_timeout_ms: u64, gemini_url: &str) -> (ApiConfig, GeneratorConfig) {
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
async fn serve_api(config: &ApiConfig, shutdown: &CancellationToken) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), question_api::ROUTE);
    let api = Arc::new(Api::new(KafkaPublisher::new(&config.kafka).unwrap(), config));
    let server = tokio::spawn(qgen_local::http::serve(listener, api, shutdown.clone()));
    (url, server)
}

/// README, promise 1: a caller held during a broker restart waits for the broker and at most one
/// reconnect backoff more (`reconnect.backoff.max.ms=1000`, `qgen_adapters::kafka::client_config`).
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Slack on the upper bound of a wait for the broker, for a 2-core machine building beside the
/// suite.
const LOAD_MARGIN: Duration = Duration::from_secs(3);
/// Slack on the upper bound of a 503: the API's own timer fires at its publish timeout at the
/// latest; this is time to write the answer after it on a loaded machine.
const ANSWER_MARGIN: Duration = Duration::from_millis(1_500);

/// The API's publish timeout (`question_api::Api::new`): the message timeout + 1 s.
fn publish_timeout(message_timeout: Duration) -> Duration {
    message_timeout + Duration::from_secs(1)
}

/// Promise 2's bounds on the 503s: never before the message timeout (a 503 comes from the
/// broker not acknowledging in time, not from a shortcut), never later than the API's publish
/// timeout and the time to answer.
fn check_refusal_times(latency_ms: &[u64], message_timeout: Duration) {
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

/// `completed` or `failed:<code>`.
fn outcome_of(event: &Value) -> String {
    match event["eventData"]["error"]["code"].as_str() {
        Some(code) => format!("failed:{code}"),
        None => "completed".to_owned(),
    }
}

/// The `i` of `fault-{i}`.
fn index_of(id: &str) -> usize {
    id.strip_prefix("fault-")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a fault-run request id: {id}"))
}

/// What a fault run saw.
struct Figures {
    total: usize,
    load_time: Duration,
    /// From the broker's stop until it was back (tansu: restarted and listening).
    outage: Duration,
    message_timeout: Duration,
    /// Per phase: before, during and after the outage.
    phases: [Posted; 3],
    events: Vec<Value>,
    /// The Gemini stand-in: the faults of each request, and the calls it got.
    chaos: Arc<Chaos>,
    rates: Rates,
    /// `GEMINI_MAX_ATTEMPTS` of the generator.
    max_attempts: u32,
}

impl Figures {
    fn accepted_ids(&self) -> HashSet<String> {
        self.phases
            .iter()
            .flat_map(|p| p.accepted.iter().map(|(id, _)| id.clone()))
            .collect()
    }

    fn refused(&self) -> usize {
        self.phases.iter().map(|p| p.refused).sum()
    }

    fn refused_latency_ms(&self) -> Vec<u64> {
        self.phases
            .iter()
            .flat_map(|p| p.refused_latency_ms.clone())
            .collect()
    }

    /// Asserts promise 1, that nothing refused was published, and that every request ended as
    /// its injected faults say it must; then prints the figures.
    fn check_and_print(&self, title: &str) {
        let accepted = self.accepted_ids();
        let mut by_request: HashMap<String, Vec<&Value>> = HashMap::new();
        for event in &self.events {
            let id = event["eventData"]["request_id"].as_str().unwrap().to_owned();
            by_request.entry(id).or_default().push(event);
        }
        let lost: Vec<&String> = accepted
            .iter()
            .filter(|id| !by_request.contains_key(*id))
            .collect();
        let mut duplicates = 0;
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut unexpected = Vec::new();
        for (id, copies) in &by_request {
            let ids: HashSet<&str> = copies.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), 1, "{id}: copies with different eventIds {ids:?}");
            duplicates += copies.len() - 1;
            // Every copy (a re-generated request makes the same calls again) ends as the
            // request's script does.
            let expected = self.rates.script(index_of(id), self.max_attempts).outcome;
            for copy in copies {
                let outcome = outcome_of(copy);
                if outcome != expected {
                    unexpected.push(format!("{id}: {outcome}, expected {expected}"));
                }
            }
            *outcomes.entry(outcome_of(copies.last().unwrap())).or_default() += 1;
        }
        let mut expected_outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for id in &accepted {
            let script = self.rates.script(index_of(id), self.max_attempts);
            *expected_outcomes.entry(script.outcome).or_default() += 1;
        }
        let failure_probability = self.rates.failure_probability(self.max_attempts);
        let calls = self.chaos.calls();
        let refused = self.refused_latency_ms();
        let during = &self.phases[1].accepted_latency_ms;
        eprintln!(
            "\n{title}: {} requests in {:.1} s, outage {} ms\n  accepted (202): {} (during the outage: {}, median {} ms, max {} ms)\n  \
             refused (503): {} (min {} ms, median {} ms, max {} ms)\n  responses read: {} for {} requests\n  outcomes: {outcomes:?}\n  \
             expected by the injected faults: {expected_outcomes:?} (P(failed) per request at these rates: {:.2} %)\n  \
             gemini calls: {}\n  duplicates (same eventId): {duplicates}\n  lost: {}\n",
            self.total,
            self.load_time.as_secs_f64(),
            self.outage.as_millis(),
            accepted.len(),
            during.len(),
            median(during),
            max(during),
            self.refused(),
            refused.iter().min().copied().unwrap_or(0),
            median(&refused),
            max(&refused),
            self.events.len(),
            by_request.len(),
            failure_probability * 100.0,
            calls.values().sum::<usize>(),
            lost.len(),
        );
        assert!(lost.is_empty(), "accepted but never answered: {lost:?}");
        for phase in &self.phases {
            assert!(phase.other.is_empty(), "unexpected statuses {:?}", phase.other);
        }
        // Accepted = posted - refused, each accepted once.
        let accepted_answers: usize = self.phases.iter().map(|p| p.accepted.len()).sum();
        assert_eq!(accepted_answers, accepted.len(), "a request accepted twice");
        assert_eq!(accepted.len() + self.refused(), self.total);
        // A 503'd request never reached the topic, so it was never answered.
        assert!(
            by_request.keys().all(|id| accepted.contains(id)),
            "a refused request was published"
        );
        assert!(
            duplicates > 0,
            "the crashed batch should have re-published its responses"
        );

        // The outcome mix. Only two failures can follow from the injected faults: 4 transient
        // failures (429/503/timeout; GEMINI_MAX_ATTEMPTS) make `gemini_unavailable`, an
        // unusable answer after the repair call makes `invalid_model_output`. Not
        // `deadline_exceeded`: a generation takes seconds of the invocation's 180.
        let codes: HashSet<&str> = outcomes.keys().map(String::as_str).collect();
        let possible = HashSet::from([
            "completed",
            "failed:gemini_unavailable",
            "failed:invalid_model_output",
        ]);
        assert!(
            codes.is_subset(&possible),
            "outcomes the injected faults cannot cause: {outcomes:?}"
        );
        assert!(
            unexpected.is_empty(),
            "{} responses other than the injected faults make: {unexpected:?}",
            unexpected.len()
        );
        assert_eq!(outcomes, expected_outcomes);
        // The same from the rates alone, which also checks that the scripts stand for them: a
        // generation fails with probability p = P(4 transient failures before an answer, or
        // 2 unusable answers): with 35 % transient and 10 % unusable calls p = 4.3 %
        // (`Rates::failure_probability`), 21.7 of 500. Three times the expected failures and 5
        // more is far beyond the spread of the count (sd ~ sqrt(500 p) ~ 4.6).
        let failed = accepted.len() - outcomes.get("completed").copied().unwrap_or(0);
        let failed_bound = (3.0 * failure_probability * accepted.len() as f64).ceil() as usize + 5;
        assert!(
            failed <= failed_bound,
            "{failed} of {} accepted requests failed; the injected faults explain at most {failed_bound}",
            accepted.len()
        );

        // Gemini was called exactly as the policy says: each accepted request a whole number
        // of its scripts (one per generation), each refused one never.
        assert_eq!(self.chaos.strays(), 0, "calls for no request of the run");
        for index in 0..self.total {
            let made = calls.get(&index).copied().unwrap_or(0);
            let id = format!("fault-{index}");
            if accepted.contains(&id) {
                let script = self.rates.script(index, self.max_attempts);
                let per_generation = script.faults.len();
                assert!(
                    made >= per_generation && made.is_multiple_of(per_generation),
                    "{id}: {made} gemini calls, not a multiple of its {per_generation} ({:?} → {})",
                    script.faults,
                    script.outcome
                );
            } else {
                assert_eq!(made, 0, "{id} was refused but generated");
            }
        }
    }

    /// Promise 1's and 2's bounds on waiting: a caller held while the broker was away waited
    /// at most the outage and one reconnect backoff (plus slack for a loaded machine); a 503
    /// came between the message timeout and the API's publish timeout.
    fn check_waits(&self) {
        let during = &self.phases[1].accepted_latency_ms;
        let at_most = self.outage + RECONNECT_BACKOFF_MAX + LOAD_MARGIN;
        assert!(
            max(during) <= at_most.as_millis() as u64,
            "a request sent during the {} ms outage waited {} ms for its 202, over the outage + \
             {RECONNECT_BACKOFF_MAX:?} reconnect backoff + {LOAD_MARGIN:?}: {during:?}",
            self.outage.as_millis(),
            max(during)
        );
        check_refusal_times(&self.refused_latency_ms(), self.message_timeout);
    }
}

/// The fault run: the API over HTTP and the trigger emulator feeding the generator (which
/// crashes once after publishing), under a chaotic Gemini; `total` requests, 16 at a time, with
/// the broker stopped for `outage` while the middle part is sent.
async fn fault_run(mut broker: Broker, message_timeout_ms: u64, outage: Duration) -> Figures {
    init_logs();
    let total = env_number("FAULT_REQUESTS", 500);
    let bootstrap = broker.bootstrap_servers();
    let rates = Rates::from_env();
    // The stand-in needs the attempts before the configuration can name its URL; both are the
    // generator's, read from the same variables.
    let max_attempts = configs(&bootstrap, message_timeout_ms, "http://127.0.0.1:9")
        .1
        .gemini
        .retry
        .max_attempts;
    let chaos = Chaos::new(rates, max_attempts);
    let gemini = GeminiStandIn::start(chaos::Responder(chaos.clone())).await;
    let (api_config, generator_config) = configs(&bootstrap, message_timeout_ms, &gemini.base_url());
    assert_eq!(generator_config.gemini.retry.max_attempts, max_attempts);
    let shutdown = CancellationToken::new();
    let (url, server) = serve_api(&api_config, &shutdown).await;

    let generator = Generator::new(
        GeminiClient::new(&generator_config.gemini, SecretString::from("chaos-key")).unwrap(),
        KafkaPublisher::new(&generator_config.kafka).unwrap(),
        &generator_config,
    );
    let invoker = CrashOnce {
        inner: generator,
        invocations: AtomicUsize::new(0),
        crash_on: 3,
    };
    // The template's retry cap and on-failure topic: "0 lost" means the outage was ridden out
    // within the retries, with nothing given up to question.request.failed.
    let mut esm = EsmConfig::new("question.request", "question.request.failed");
    esm.batch_size = 50;
    esm.batching_window = Duration::from_millis(200);
    esm.retry_base = Duration::from_millis(200);
    esm.retry_max = Duration::from_secs(2);
    let emulator = Emulator::new(&client_config(&generator_config.kafka), esm, invoker).unwrap();
    let esm_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { emulator.run(shutdown).await }
    });

    let http = reqwest::Client::new();
    let before = total * 2 / 5;
    let during = 48.min(total / 5);
    let ids = |range: std::ops::Range<usize>| range.map(|i| format!("fault-{i}"));
    let started = Instant::now();
    let first = post_all(&http, &url, ids(0..before)).await;
    broker.stop();
    let stopped = Instant::now();
    let (second, back) = tokio::join!(post_all(&http, &url, ids(before..before + during)), async {
        // The outage itself.
        tokio::time::sleep(outage).await;
        broker.start().await;
        Instant::now()
    });
    let third = post_all(&http, &url, ids(before + during..total)).await;
    let load_time = started.elapsed();

    let phases = [first, second, third];
    let accepted: HashSet<String> = phases
        .iter()
        .flat_map(|p| p.accepted.iter().map(|(id, _)| id.clone()))
        .collect();
    let events = read_responses(&bootstrap, &accepted, Duration::from_secs(180)).await;
    shutdown.cancel();
    let _ = server.await;
    let _ = esm_task.await;
    Figures {
        total,
        load_time,
        outage: back - stopped,
        message_timeout: Duration::from_millis(message_timeout_ms),
        phases,
        events,
        chaos,
        rates,
        max_attempts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_accepted_request_is_lost_when_tansu_is_killed_and_restarted_under_load() {
    // The message timeout (12 s, under the API function's 15 s) outlasts the 4 s outage, as in
    // a deployment riding out a broker restart: callers wait instead of being refused.
    let broker = Broker::Tansu(TansuBroker::with_service_topics().await);
    let figures = fault_run(broker, 12_000, Duration::from_secs(4)).await;
    figures.check_and_print("fault-injection run, tansu killed for 4 s and restarted");
    assert_eq!(
        figures.refused(),
        0,
        "an outage shorter than the message timeout should refuse nobody"
    );
    let during = &figures.phases[1].accepted_latency_ms;
    assert!(
        max(during) >= 3_000,
        "requests sent during the outage should have waited for the broker ({during:?} ms)"
    );
    figures.check_waits();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_instances_go_on_after_an_outage_longer_than_the_message_timeout() {
    let broker = Broker::Mock(MockBroker::with_service_topics());
    let figures = fault_run(broker, 3_000, Duration::from_secs(4)).await;
    figures.check_and_print("fault-injection run, mock cluster down for 4 s");
    assert!(
        figures.refused() > 0,
        "the outage should have refused some requests"
    );
    // Promise 2: a refusal comes within the API's publish timeout (message timeout 3 s + 1 s).
    figures.check_waits();
    // The same API instance accepts everything once the broker is back.
    let after = &figures.phases[2];
    assert_eq!(after.refused, 0, "the API should have recovered after the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_broker_gets_503s_within_the_timeout_and_nothing_refused_is_published() {
    init_logs();
    let mut broker = TansuBroker::with_service_topics().await;
    let bootstrap = broker.bootstrap_servers();
    let (config, _) = configs(&bootstrap, 3_000, "http://127.0.0.1:9");
    let http = reqwest::Client::new();

    let shutdown = CancellationToken::new();
    let (url, server) = serve_api(&config, &shutdown).await;
    let before = post_all(&http, &url, ["kill-before".to_owned()].into_iter()).await;
    assert_eq!(before.accepted.len(), 1, "the broker is up: {before:?}");
    broker.kill();
    let refused = post_all(&http, &url, (0..32).map(|i| format!("kill-refused-{i}"))).await;
    // This API's producer timed out; tansu 0.6 cannot take its bumped epoch (see the module
    // docs), so it goes before the broker returns. A fresh one publishes after the restart.
    shutdown.cancel();
    let _ = server.await;

    let latency = &refused.refused_latency_ms;
    eprintln!(
        "\nbroker killed: {} requests refused with 503 (min {} ms, median {} ms, max {} ms), {} accepted\n",
        refused.refused,
        latency.iter().min().copied().unwrap_or(0),
        median(latency),
        max(latency),
        refused.accepted.len()
    );
    assert_eq!(refused.refused, 32, "every request should get a 503: {refused:?}");
    check_refusal_times(latency, config.kafka.message_timeout);

    broker.restart().await;
    let shutdown = CancellationToken::new();
    let (url, server) = serve_api(&config, &shutdown).await;
    let after = post_all(&http, &url, ["kill-after".to_owned()].into_iter()).await;
    shutdown.cancel();
    let _ = server.await;
    assert_eq!(
        after.accepted.len(),
        1,
        "a fresh API publishes after the restart: {after:?}"
    );

    // The record from before the kill survived it; nothing refused is on the topic.
    let records = read_topic(&bootstrap, "question.request", 3, Duration::from_secs(10)).await;
    let keys: Vec<String> = records
        .iter()
        .map(|m| String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["kill-after", "kill-before"],
        "question.request holds {keys:?}"
    );
}

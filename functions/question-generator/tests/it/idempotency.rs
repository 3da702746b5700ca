//! Idempotency against a real DynamoDB API (moto, driven through the SDK over HTTP): duplicates
//! in a batch, across batches, after a crash, with other content, and with the store down;
//! the records' TTL, records past it, and two invocations racing for one request.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::kafka::KafkaEvent;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::{Either, select};
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent, ResponseEvent};
use qgen_contract::msk::kafka_event;
use qgen_testkit::{
    AnswersAsAsked, GeminiStandIn, MotoServer, Outage, RecordingPublisher, assert_matches_schema,
    dynamodb_client, free_port, sample_questions,
};
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::{BatchReport, Generator};
use question_generator::idempotency::{
    DATA, DynamoDbStore, EXPIRATION, ID, IN_PROGRESS_EXPIRATION, PAYLOAD_HASH, STATUS, STATUS_COMPLETED,
    STATUS_IN_PROGRESS, epoch_millis, epoch_secs, payload_hash, store_from_env,
};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

const TWO_PARTITIONS: &str = include_str!("../../../../events/msk-batch-two-partitions.json");
const TEMPLATE: &str = include_str!("../../../../template.yaml");
const TABLE: &str = "qgen-idempotency";

fn config(gemini_url: &str) -> GeneratorConfig {
    config_with(gemini_url, &[])
}

/// [`config`] with `overrides` set as well.
fn config_with(gemini_url: &str, overrides: &[(&'static str, &str)]) -> GeneratorConfig {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", "unused:9092".to_owned()),
        ("GEMINI_BASE_URL", gemini_url.to_owned()),
        ("GEMINI_TIMEOUT_MS", "2000".to_owned()),
        ("GEMINI_MAX_ATTEMPTS", "2".to_owned()),
        ("GEMINI_BACKOFF_BASE_MS", "1".to_owned()),
        ("GEMINI_BACKOFF_MAX_MS", "5".to_owned()),
        ("GEMINI_BREAKER_THRESHOLD", "1000".to_owned()),
        // Every failure here is answered, so the store's record of it can be checked; a held
        // request's claim is released like a failed one's (holding has its own tests).
        ("GEMINI_MAX_WAIT_SECONDS", "0".to_owned()),
    ]);
    vars.extend(overrides.iter().map(|&(k, v)| (k, v.to_owned())));
    GeneratorConfig::from_lookup(|var| vars.get(var).cloned()).unwrap()
}

/// The generator with Gemini at `stand_in`, publishing to `publisher`, remembering in `store`
/// (given as `Some`, as `main` gives what `store_from_env` returns).
fn generator<'a>(
    stand_in: &GeminiStandIn,
    publisher: &'a RecordingPublisher,
    store: DynamoDbStore,
) -> Generator<GeminiClient, &'a RecordingPublisher, DynamoDbStore> {
    let config = config(&stand_in.base_url());
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    Generator::new(gemini, publisher, &config).with_idempotency(Some(store))
}

/// The table as `template.yaml` declares it, created through the SDK.
async fn table(moto: &MotoServer) -> Client {
    moto.idempotency_table(TABLE).await
}

/// What most tests here start from: moto with the table, a Gemini stand-in, a recording
/// publisher.
struct Fixture {
    moto: MotoServer,
    client: Client,
    stand_in: GeminiStandIn,
    publisher: RecordingPublisher,
}

impl Fixture {
    async fn start() -> Self {
        Self::with(GeminiStandIn::answering().await).await
    }

    async fn with(stand_in: GeminiStandIn) -> Self {
        let moto = MotoServer::start().await;
        let client = table(&moto).await;
        Fixture {
            moto,
            client,
            stand_in,
            publisher: RecordingPublisher::new(),
        }
    }

    /// The generator remembering in the table.
    fn generator(&self) -> Generator<GeminiClient, &RecordingPublisher, DynamoDbStore> {
        generator(&self.stand_in, &self.publisher, store(&self.client))
    }
}

fn store(client: &Client) -> DynamoDbStore {
    DynamoDbStore::new(client.clone(), TABLE, Duration::from_secs(3_600))
}

fn request(request_id: &str, topic: &str) -> GenerationRequest {
    GenerationRequest {
        request_id: request_id.to_owned(),
        topic: topic.to_owned(),
        num_questions: 2,
        difficulty: Difficulty::Medium,
        context: None,
    }
}

/// One delivery of `request` at `offset`: a fresh request event each time, as when the content
/// service POSTs the same request again.
fn delivery(offset: i64, request: &GenerationRequest) -> Value {
    delivery_on(0, offset, request)
}

fn delivery_on(partition: i32, offset: i64, request: &GenerationRequest) -> Value {
    let event = RequestEvent::new_request(request.clone());
    record_json(&OwnedMessage::new(
        Some(serde_json::to_vec(&event).unwrap()),
        Some(request.request_id.as_bytes().to_vec()),
        "question.request".into(),
        rdkafka::Timestamp::CreateTime(1_795_773_600_000),
        partition,
        offset,
        Some(OwnedHeaders::new().insert(Header {
            key: "eventType",
            value: Some("question.generation.request"),
        })),
    ))
}

fn batch(records: Vec<Value>) -> KafkaEvent {
    kafka_event(records, "arn:aws:kafka:local", "127.0.0.1:9092")
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// The response events published, in order, each checked against the documented schema.
fn responses(publisher: &RecordingPublisher) -> Vec<Value> {
    publisher
        .on_topic("question.response")
        .iter()
        .map(|r| r.json())
        .inspect(|event| assert_matches_schema("response-event.schema.json", event))
        .collect()
}

/// Writes an `IN_PROGRESS` record for `request` held until `until`, as an attempt that crashed
/// (or is still running) leaves it.
async fn claimed_elsewhere(client: &Client, request: &GenerationRequest, until: SystemTime) {
    client
        .put_item()
        .table_name(TABLE)
        .item(ID, AttributeValue::S(request.request_id.clone()))
        .item(STATUS, AttributeValue::S(STATUS_IN_PROGRESS.into()))
        .item(PAYLOAD_HASH, AttributeValue::S(payload_hash(request)))
        .item(
            EXPIRATION,
            AttributeValue::N(epoch_secs(SystemTime::now() + Duration::from_secs(3_600)).to_string()),
        )
        .item(
            IN_PROGRESS_EXPIRATION,
            AttributeValue::N(epoch_millis(until).to_string()),
        )
        .send()
        .await
        .unwrap();
}

async fn record(client: &Client, request_id: &str) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(TABLE)
        .key(ID, AttributeValue::S(request_id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

/// Waits until the wall clock, which the store compares claims with, is past the
/// `in_progress_expiration` the table holds for `request_id`.
async fn until_the_claim_expires(client: &Client, request_id: &str) {
    let until_ms = number(&record(client, request_id).await, IN_PROGRESS_EXPIRATION);
    loop {
        let now_ms = epoch_millis(SystemTime::now());
        if now_ms > until_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(until_ms + 1 - now_ms)).await;
    }
}

/// A Number attribute of `item`, which must be one.
fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    let value = item.get(name).unwrap_or_else(|| panic!("no {name} in {item:?}"));
    let n = value
        .as_n()
        .unwrap_or_else(|_| panic!("{name} is not a Number: {value:?}"));
    n.parse().unwrap()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

#[tokio::test]
async fn the_same_request_sent_five_times_calls_gemini_once_and_gets_five_identical_responses() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-5x", "Python Loops");
    let first = batch(vec![delivery(10, &loops), delivery(11, &loops)]);
    let second = batch(vec![delivery(12, &loops)]);

    // Two deliveries in a batch, the same batch retried by the trigger, one more in a later batch.
    generator.handle(&first, later()).await;
    generator.handle(&first, later()).await;
    generator.handle(&second, later()).await;

    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let responses = responses(&fx.publisher);
    assert_eq!(responses.len(), 5);
    let answer = &responses[0];
    assert_eq!(answer["eventData"]["status"], "completed");
    assert_eq!(answer["eventData"]["questions"].as_array().unwrap().len(), 2);
    for response in &responses {
        assert_eq!(response["eventId"], answer["eventId"]);
        assert_eq!(response["eventData"], answer["eventData"]);
    }
    let stored = record(&fx.client, "req-5x").await;
    assert_eq!(text(&stored, STATUS), STATUS_COMPLETED);
    let stored_event: Value = serde_json::from_str(text(&stored, DATA)).unwrap();
    assert_eq!(stored_event["eventId"], answer["eventId"]);
}

#[tokio::test]
async fn duplicates_in_one_batch_are_generated_once_and_each_gets_the_same_response() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-dup", "Python Loops");
    let other = request("req-other", "SQL Joins");
    let event = batch(vec![
        delivery(1, &loops),
        delivery(2, &other),
        delivery(3, &loops),
        delivery(4, &loops),
    ]);

    let report = generator.handle(&event, later()).await;

    assert_eq!(fx.stand_in.calls().await.len(), 2);
    assert_eq!(report.completed, 4);
    let responses = responses(&fx.publisher);
    let dups: Vec<&Value> = responses
        .iter()
        .filter(|r| r["eventData"]["request_id"] == "req-dup")
        .collect();
    assert_eq!(dups.len(), 3);
    assert!(dups.iter().all(|r| *r == dups[0]));
}

#[tokio::test]
async fn duplicates_in_one_batch_are_generated_once_without_a_store_too() {
    let stand_in = GeminiStandIn::answering().await;
    let config = config(&stand_in.base_url());
    let publisher = RecordingPublisher::new();
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    let generator = Generator::new(gemini, &publisher, &config);
    let loops = request("req-dup", "Python Loops");

    let report = generator
        .handle(&batch(vec![delivery(1, &loops), delivery(2, &loops)]), later())
        .await;

    assert_eq!(report.completed, 2);
    assert_eq!(stand_in.calls().await.len(), 1);
    let responses = responses(&publisher);
    assert_eq!(responses[0], responses[1]);
}

#[tokio::test]
async fn a_retried_batch_is_answered_from_the_store_without_calling_gemini_again() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let event: KafkaEvent = serde_json::from_str(TWO_PARTITIONS).unwrap();

    let first = generator.handle(&event, later()).await;
    let retried = generator.handle(&event, later()).await;

    assert_eq!(first, retried);
    assert_eq!(
        first,
        BatchReport {
            records: 4,
            completed: 3,
            failed: 1,
            dead_lettered: 0,
            ..BatchReport::default()
        }
    );
    assert_eq!(fx.stand_in.calls().await.len(), 3);
    let responses = responses(&fx.publisher);
    let (once, again) = responses.split_at(4);
    for response in once.iter().filter(|r| r["eventData"]["status"] == "completed") {
        let repeat = again
            .iter()
            .find(|r| r["eventData"]["request_id"] == response["eventData"]["request_id"])
            .unwrap();
        assert_eq!(repeat, response);
    }
}

#[tokio::test]
async fn an_expired_claim_left_by_a_crashed_attempt_is_taken_over() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-crashed", "Python Loops");
    claimed_elsewhere(&fx.client, &loops, SystemTime::now() - Duration::from_secs(1)).await;

    let report = generator.handle(&batch(vec![delivery(7, &loops)]), later()).await;

    assert_eq!(report.completed, 1);
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!(responses(&fx.publisher)[0]["eventData"]["status"], "completed");
    assert_eq!(
        text(&record(&fx.client, "req-crashed").await, STATUS),
        STATUS_COMPLETED
    );
}

#[tokio::test]
async fn a_live_claim_is_left_to_its_invocation_and_only_its_partition_is_redelivered() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-busy", "Python Loops");
    let other = request("req-free", "SQL Joins");
    let after = request("req-after", "Rust Traits");
    let until = SystemTime::now() + Duration::from_secs(120);
    claimed_elsewhere(&fx.client, &loops, until).await;
    let (logs, _logging) = qgen_testkit::capture_logs();

    let report = generator
        .handle(
            &batch(vec![
                delivery_on(0, 8, &other),
                delivery_on(1, 7, &loops),
                delivery_on(1, 9, &after),
            ]),
            later(),
        )
        .await;

    assert_eq!(
        (report.in_progress, report.unpublished, report.completed),
        (1, 0, 2)
    );
    // Partition 0 is done; partition 1 is redelivered from the held request on.
    assert_eq!(
        serde_json::to_value(report.response()).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-1", "offset": 7}}
        ]})
    );
    assert_eq!(
        fx.stand_in.calls().await.len(),
        2,
        "only the free requests are generated"
    );
    // The log says how long the other invocation still holds it: read from the stored claim
    // (120 s from the start of the test, so a little under).
    let logged = logs.text();
    let seconds_left: u64 = logged
        .split("seconds_left=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds_left logged:\n{logged}"));
    assert!((60..=120).contains(&seconds_left), "seconds_left={seconds_left}");
    let mut answered: Vec<String> = responses(&fx.publisher)
        .iter()
        .map(|r| r["eventData"]["request_id"].as_str().unwrap().to_owned())
        .collect();
    answered.sort();
    assert_eq!(answered, ["req-after", "req-free"]);
    let held = record(&fx.client, "req-busy").await;
    assert_eq!(text(&held, STATUS), STATUS_IN_PROGRESS);
    assert_eq!(
        held[IN_PROGRESS_EXPIRATION].as_n().unwrap(),
        &epoch_millis(until).to_string()
    );
}

#[tokio::test]
async fn a_retry_takes_over_once_a_live_claim_expires_so_the_request_is_never_lost() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-busy", "Python Loops");
    claimed_elsewhere(
        &fx.client,
        &loops,
        SystemTime::now() + Duration::from_millis(1_500),
    )
    .await;
    let event = batch(vec![delivery(7, &loops)]);
    let held = generator.handle(&event, later()).await;

    // Not a fixed sleep: however slow the machine, the retry comes once the claim the table
    // holds has expired on the clock the store compares it with, and not long after.
    until_the_claim_expires(&fx.client, "req-busy").await;
    let retried = generator.handle(&event, later()).await;

    assert_eq!(held.in_progress, 1, "the claim was taken over while it was live");
    assert!(!held.response.is_success());
    assert_eq!(retried.completed, 1);
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!(responses(&fx.publisher).len(), 1);
}

#[tokio::test]
async fn the_same_request_id_with_other_content_gets_idempotency_conflict() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    generator
        .handle(
            &batch(vec![delivery(1, &request("req-7", "Python Loops"))]),
            later(),
        )
        .await;

    let report = generator
        .handle(&batch(vec![delivery(2, &request("req-7", "SQL Joins"))]), later())
        .await;

    assert_eq!((report.completed, report.failed), (0, 1));
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let conflict = &responses(&fx.publisher)[1];
    assert_eq!(conflict["eventData"]["status"], "failed");
    assert_eq!(conflict["eventData"]["error"]["code"], "idempotency_conflict");
    assert_eq!(conflict["eventData"]["error"]["retryable"], false);
    assert_ne!(conflict["eventId"], responses(&fx.publisher)[0]["eventId"]);
}

#[tokio::test]
async fn other_content_under_the_same_request_id_in_one_batch_gets_idempotency_conflict() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let event = batch(vec![
        delivery(1, &request("req-7", "Python Loops")),
        delivery(2, &request("req-7", "SQL Joins")),
    ]);

    let report = generator.handle(&event, later()).await;

    assert_eq!((report.completed, report.failed), (1, 1));
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let codes: Vec<Value> = responses(&fx.publisher)
        .iter()
        .map(|r| r["eventData"]["error"]["code"].clone())
        .collect();
    assert_eq!(codes, [Value::Null, Value::from("idempotency_conflict")]);
}

/// Fails the first call with 503s, then answers as asked.
struct FailsFirst {
    calls: AtomicUsize,
    failures: usize,
}

impl Respond for FailsFirst {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            ResponseTemplate::new(503)
        } else {
            AnswersAsAsked.respond(request)
        }
    }
}

struct Shared<R>(Arc<R>);

impl<R: Respond> Respond for Shared<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}

#[tokio::test]
async fn a_failed_answer_is_not_remembered_so_a_later_delivery_can_succeed() {
    // GEMINI_MAX_ATTEMPTS is 2: the first request's both calls fail.
    let fx = Fixture::with(
        GeminiStandIn::start(Shared(Arc::new(FailsFirst {
            calls: AtomicUsize::new(0),
            failures: 2,
        })))
        .await,
    )
    .await;
    let generator = fx.generator();
    let loops = request("req-flaky", "Python Loops");
    generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    generator.handle(&batch(vec![delivery(2, &loops)]), later()).await;

    let statuses: Vec<Value> = responses(&fx.publisher)
        .iter()
        .map(|r| r["eventData"]["status"].clone())
        .collect();
    assert_eq!(statuses, [Value::from("failed"), Value::from("completed")]);
    assert_eq!(fx.stand_in.calls().await.len(), 3);
}

#[tokio::test]
async fn an_unreachable_store_still_generates_and_publishes() {
    let closed = unreachable_dynamodb();
    let stand_in = GeminiStandIn::answering().await;
    let publisher = RecordingPublisher::new();
    let generator = generator(&stand_in, &publisher, store(&closed));
    let loops = request("req-nostore", "Python Loops");
    let (logs, _logging) = qgen_testkit::capture_logs();

    let report = generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    assert_eq!(report.completed, 1);
    assert_eq!(stand_in.calls().await.len(), 1);
    assert_eq!(responses(&publisher)[0]["eventData"]["status"], "completed");
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("idempotency store unavailable; generating without it"),
        "{text}"
    );
    // The warning names the call that failed: the claim's conditional write, not a read the
    // store would make only after the table said the request was taken.
    assert!(
        text.contains("error=dynamodb PutItem failed for request req-nostore"),
        "{text}"
    );
}

#[tokio::test]
async fn the_store_is_on_exactly_when_a_table_is_configured() {
    let stand_in = GeminiStandIn::answering().await;
    let without = config(&stand_in.base_url());
    let with = config_with(&stand_in.base_url(), &[("IDEMPOTENCY_TABLE", "qgen-idempotency")]);

    assert!(store_from_env(&without).await.is_none());
    assert!(store_from_env(&with).await.is_some());
}

/// A DynamoDB client whose endpoint is a loopback port nobody listens on.
fn unreachable_dynamodb() -> Client {
    dynamodb_client(&format!("http://127.0.0.1:{}", free_port()))
}

/// The TTL attribute `template.yaml` gives the idempotency table
/// (`TimeToLiveSpecification.AttributeName`).
fn template_ttl_attribute() -> &'static str {
    let spec = TEMPLATE
        .split("TimeToLiveSpecification:")
        .nth(1)
        .expect("template.yaml gives the idempotency table a TTL");
    spec.lines()
        .find_map(|line| line.trim().strip_prefix("AttributeName:"))
        .expect("the TTL names its attribute")
        .trim()
}

/// The generator with the store `IDEMPOTENCY_TABLE` and `IDEMPOTENCY_TTL_SECONDS` configure.
fn configured<'a>(
    stand_in: &GeminiStandIn,
    publisher: &'a RecordingPublisher,
    client: &Client,
    ttl_seconds: &str,
) -> Generator<GeminiClient, &'a RecordingPublisher, DynamoDbStore> {
    let config = config_with(
        &stand_in.base_url(),
        &[
            ("IDEMPOTENCY_TABLE", TABLE),
            ("IDEMPOTENCY_TTL_SECONDS", ttl_seconds),
            // The gated stand-in holds a call for as long as a test needs.
            ("GEMINI_TIMEOUT_MS", "30000"),
        ],
    );
    let idempotency = config.idempotency.clone().unwrap();
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    let store = DynamoDbStore::new(client.clone(), idempotency.table, idempotency.ttl);
    Generator::new(gemini, publisher, &config).with_idempotency(Some(store))
}

#[tokio::test]
async fn an_answered_request_expires_the_configured_retention_from_now_in_epoch_seconds() {
    let fx = Fixture::start().await;
    let generator = configured(&fx.stand_in, &fx.publisher, &fx.client, "900");
    let loops = request("req-ttl", "Python Loops");

    let before = epoch_secs(SystemTime::now());
    generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;
    let after = epoch_secs(SystemTime::now());

    // The attribute DynamoDB's TTL reads, as a Number of seconds (ms would be ~1000 times later).
    assert_eq!(EXPIRATION, template_ttl_attribute());
    let stored = record(&fx.client, "req-ttl").await;
    assert_eq!(text(&stored, STATUS), STATUS_COMPLETED);
    let expiration = number(&stored, template_ttl_attribute());
    assert!(
        (before + 900..=after + 900).contains(&expiration),
        "{expiration} is not 900 s after {before}..={after}"
    );
    assert!(!stored.contains_key(IN_PROGRESS_EXPIRATION));
}

/// Holds every Gemini call until the test opens the gate, then answers as asked, and tells the
/// test when a call arrives. It blocks the stand-in's own server thread, never the test's.
struct Gated {
    arrived: UnboundedSender<()>,
    gate: Mutex<mpsc::Receiver<()>>,
}

impl Respond for Gated {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let _ = self.arrived.send(());
        // Bounded, so a test whose gate never opens fails on its assertions rather than hangs.
        let _ = self.gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        AnswersAsAsked.respond(request)
    }
}

/// The test's side of [`Gated`].
struct Gate {
    arrived: UnboundedReceiver<()>,
    open: mpsc::Sender<()>,
}

impl Gate {
    async fn call_arrived(&mut self) {
        tokio::time::timeout(Duration::from_secs(30), self.arrived.recv())
            .await
            .expect("gemini was called")
            .unwrap();
    }

    /// Lets the held call (and any later one) through.
    fn open(&self) {
        for _ in 0..8 {
            let _ = self.open.send(());
        }
    }
}

async fn gated_stand_in() -> (GeminiStandIn, Gate) {
    let (arrived_tx, arrived) = unbounded_channel();
    let (open, gate) = mpsc::channel();
    let stand_in = GeminiStandIn::start(Gated {
        arrived: arrived_tx,
        gate: Mutex::new(gate),
    })
    .await;
    (stand_in, Gate { arrived, open })
}

#[tokio::test]
async fn a_claim_is_held_until_the_lambda_deadline_and_expires_the_retention_from_now() {
    let (stand_in, mut gate) = gated_stand_in().await;
    let fx = Fixture::with(stand_in).await;
    let generator = configured(&fx.stand_in, &fx.publisher, &fx.client, "900");
    let loops = request("req-claim", "Python Loops");
    let deadline_ms = super::deadline::epoch_ms_from_now(30_000);
    let invocation = super::deadline::invocation(batch(vec![delivery(1, &loops)]), deadline_ms);

    let before = epoch_secs(SystemTime::now());
    let (report, claim) = tokio::join!(generator.invoke(&invocation), async {
        // Read while Gemini holds the call: the record is the claim.
        gate.call_arrived().await;
        let claim = record(&fx.client, "req-claim").await;
        gate.open();
        claim
    });
    let after = epoch_secs(SystemTime::now());

    assert_eq!(report.completed, 1);
    assert_eq!(text(&claim, STATUS), STATUS_IN_PROGRESS);
    // Another invocation may take over once this one's deadline (not its generation's) passes.
    let held_until = number(&claim, IN_PROGRESS_EXPIRATION);
    assert!(
        held_until.abs_diff(deadline_ms) <= 1_000,
        "held until {held_until}, the deadline is {deadline_ms}"
    );
    // The TTL is the retention, as for an answer; a crashed claim is deleted in time, and the
    // TTL never deletes a claim that is still held.
    let expiration = number(&claim, template_ttl_attribute());
    assert!(
        (before + 900..=after + 900).contains(&expiration),
        "{expiration} is not 900 s after {before}..={after}"
    );
    assert!(expiration * 1_000 > held_until);
}

/// Writes a `COMPLETED` record of `request` with content hash `hash`, answered by
/// `response`, whose TTL (`expiration`) is `expiration`.
async fn answered_before(
    client: &Client,
    request: &GenerationRequest,
    hash: &str,
    response: &ResponseEvent,
    expiration: SystemTime,
) {
    client
        .put_item()
        .table_name(TABLE)
        .item(ID, AttributeValue::S(request.request_id.clone()))
        .item(STATUS, AttributeValue::S(STATUS_COMPLETED.into()))
        .item(PAYLOAD_HASH, AttributeValue::S(hash.to_owned()))
        .item(EXPIRATION, AttributeValue::N(epoch_secs(expiration).to_string()))
        .item(DATA, AttributeValue::S(serde_json::to_string(response).unwrap()))
        .send()
        .await
        .unwrap();
}

// DynamoDB deletes an item whose TTL has passed only eventually, typically within a few days,
// and until then reads still return it
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html). moto
// does not delete it at all, as DynamoDB before its sweep: the store itself must treat it as
// absent.

#[tokio::test]
async fn an_answer_past_its_ttl_but_not_yet_deleted_counts_as_absent_so_the_request_is_generated_again() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-stale", "Python Loops");
    let stale = ResponseEvent::completed(
        "stale-request-event",
        "req-stale",
        sample_questions("Python Loops", 2, Difficulty::Medium),
    );
    let expired = SystemTime::now() - Duration::from_secs(3_600);
    answered_before(&fx.client, &loops, &payload_hash(&loops), &stale, expired).await;

    let report = generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    assert_eq!(report.completed, 1);
    assert_eq!(
        fx.stand_in.calls().await.len(),
        1,
        "the expired answer was replayed"
    );
    let answer = &responses(&fx.publisher)[0];
    assert_eq!(answer["eventData"]["status"], "completed");
    assert_ne!(answer["eventId"], stale.event_id.as_str());
    // The new answer replaced the expired one, with a TTL in the future.
    let stored = record(&fx.client, "req-stale").await;
    let stored_event: Value = serde_json::from_str(text(&stored, DATA)).unwrap();
    assert_eq!(stored_event["eventId"], answer["eventId"]);
    assert!(number(&stored, EXPIRATION) > epoch_secs(SystemTime::now()));
}

#[tokio::test]
async fn an_expired_answer_to_other_content_under_the_same_request_id_is_no_conflict() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-reused", "Python Loops");
    let joins = request("req-reused", "SQL Joins");
    let old = ResponseEvent::completed(
        "old-request-event",
        "req-reused",
        sample_questions("SQL Joins", 2, Difficulty::Medium),
    );
    let expired = SystemTime::now() - Duration::from_secs(3_600);
    answered_before(&fx.client, &joins, &payload_hash(&joins), &old, expired).await;

    let report = generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    assert_eq!((report.completed, report.failed), (1, 0));
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let stored = record(&fx.client, "req-reused").await;
    assert_eq!(text(&stored, PAYLOAD_HASH), payload_hash(&loops));
}

#[tokio::test]
async fn two_invocations_racing_for_one_request_call_gemini_once_and_the_loser_redelivers_then_replays_the_answer()
 {
    let (stand_in, mut gate) = gated_stand_in().await;
    let fx = Fixture::with(stand_in).await;
    // Two execution environments: each with its own DynamoDB client, Gemini client, publisher.
    let publishers = [RecordingPublisher::new(), RecordingPublisher::new()];
    let generators = [
        configured(&fx.stand_in, &publishers[0], &fx.moto.dynamodb(), "3600"),
        configured(&fx.stand_in, &publishers[1], &fx.moto.dynamodb(), "3600"),
    ];
    let loops = request("req-race", "Python Loops");
    // The content service sent it twice, and each delivery went to another invocation.
    let batches = [batch(vec![delivery(3, &loops)]), batch(vec![delivery(4, &loops)])];

    // Both claim at once; Gemini holds the winner's call until the other invocation is done,
    // so that one has certainly tried to claim before any answer exists.
    let (loser, held, answered) = {
        let first = pin!(generators[0].handle(&batches[0], later()));
        let second = pin!(generators[1].handle(&batches[1], later()));
        match select(first, second).await {
            Either::Left((held, other)) => {
                gate.open();
                (0, held, other.await)
            }
            Either::Right((held, other)) => {
                gate.open();
                (1, held, other.await)
            }
        }
    };
    let winner = 1 - loser;
    gate.call_arrived().await;

    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!((answered.completed, answered.in_progress), (1, 0));
    assert!(answered.response.is_success());
    let answer = responses(&publishers[winner]);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0]["eventData"]["status"], "completed");
    assert!(responses(&publishers[loser]).is_empty());
    assert_eq!((held.completed, held.in_progress), (0, 1));
    assert_eq!(
        serde_json::to_value(held.response()).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-0", "offset": 3 + loser}}
        ]})
    );

    // The trigger redelivers the loser's partition from that record.
    let redelivered = generators[loser].handle(&batches[loser], later()).await;

    assert_eq!(redelivered.completed, 1);
    assert!(redelivered.response.is_success());
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!(responses(&publishers[loser]), answer);
}

#[tokio::test]
async fn a_held_request_gives_up_its_claim_so_its_redelivery_is_answered_at_once() {
    // Gemini down, behind a breaker that opens at its first failure; the shipped maximum wait.
    let outage = Outage::new();
    outage.set_down(true);
    let fx = Fixture::with(GeminiStandIn::start(outage.clone()).await).await;
    let config = config_with(
        &fx.stand_in.base_url(),
        &[
            ("GEMINI_MAX_WAIT_SECONDS", "1800"),
            ("GEMINI_BREAKER_THRESHOLD", "1"),
            ("GEMINI_BREAKER_COOLDOWN_MS", "500"),
        ],
    );
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    let generator = Generator::new(gemini, &fx.publisher, &config).with_idempotency(Some(store(&fx.client)));
    let event = batch(vec![delivery(1, &request("req-held", "Python Loops"))]);

    // 7 s left, 5.5 s of it kept to publish: held after 1.5 s, its claim good for 5.5 s more.
    let held = generator
        .handle(&event, Instant::now() + Duration::from_secs(7))
        .await;
    outage.set_down(false);
    let redelivered = generator.handle(&event, later()).await;

    assert_eq!((held.held, held.completed), (1, 0), "{held:?}");
    // Not left to a claim nobody holds any more: answered on the redelivery.
    assert_eq!(
        (redelivered.completed, redelivered.in_progress, redelivered.held),
        (1, 0, 0),
        "{redelivered:?}"
    );
    assert_eq!(responses(&fx.publisher).len(), 1);
}

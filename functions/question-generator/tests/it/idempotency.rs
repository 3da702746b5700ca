//! Idempotency against a real DynamoDB API (moto, driven through the SDK over HTTP): duplicates
//! in a batch, across batches, after a crash, with other content, and with the store down.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::kafka::KafkaEvent;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::kafka_event;
use qgen_testkit::{
    AnswersAsAsked, GeminiStandIn, MotoServer, RecordingPublisher, assert_matches_schema, dynamodb_client,
    free_port,
};
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::{BatchReport, Generator};
use question_generator::idempotency::{
    DATA, DynamoDbStore, EXPIRATION, ID, IN_PROGRESS_EXPIRATION, PAYLOAD_HASH, STATUS, STATUS_COMPLETED,
    STATUS_IN_PROGRESS, epoch_millis, epoch_secs, payload_hash,
};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

const TWO_PARTITIONS: &str = include_str!("../../../../events/msk-batch-two-partitions.json");
const TABLE: &str = "qgen-idempotency";

fn config(gemini_url: &str) -> GeneratorConfig {
    let vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", "unused:9092".to_owned()),
        ("GEMINI_BASE_URL", gemini_url.to_owned()),
        ("GEMINI_TIMEOUT_MS", "2000".to_owned()),
        ("GEMINI_MAX_ATTEMPTS", "2".to_owned()),
        ("GEMINI_BACKOFF_BASE_MS", "1".to_owned()),
        ("GEMINI_BACKOFF_MAX_MS", "5".to_owned()),
        ("GEMINI_BREAKER_THRESHOLD", "1000".to_owned()),
    ]);
    GeneratorConfig::from_lookup(|var| vars.get(var).cloned()).unwrap()
}

/// The generator with Gemini at `stand_in`, publishing to `publisher`, remembering in `store`.
fn generator<'a>(
    stand_in: &GeminiStandIn,
    publisher: &'a RecordingPublisher,
    store: DynamoDbStore,
) -> Generator<GeminiClient, &'a RecordingPublisher, DynamoDbStore> {
    let config = config(&stand_in.base_url());
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    Generator::new(gemini, publisher, &config).with_idempotency(store)
}

/// The table as `template.yaml` declares it, created through the SDK.
async fn table(moto: &MotoServer) -> Client {
    moto.idempotency_table(TABLE).await
}

/// What most tests here start from: moto with the table, a Gemini stand-in, a recording
/// publisher.
struct Fixture {
    _moto: MotoServer,
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
            _moto: moto,
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

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let retried = generator.handle(&event, later()).await;

    assert_eq!(held.in_progress, 1);
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
}

/// A DynamoDB client whose endpoint is a loopback port nobody listens on.
fn unreachable_dynamodb() -> Client {
    dynamodb_client(&format!("http://127.0.0.1:{}", free_port()))
}

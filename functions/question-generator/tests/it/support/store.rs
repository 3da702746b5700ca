//! The idempotency table (moto) and its records, and the generator that remembers in it.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::kafka::KafkaEvent;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, ResponseEvent};
use qgen_contract::msk::kafka_event;
use qgen_testkit::{
    AnswersAsAsked, GeminiStandIn, MotoServer, RecordingPublisher, assert_matches_schema, dynamodb_client,
    free_port,
};
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use question_generator::idempotency::{
    DATA, DynamoDbStore, EXPIRATION, ID, IN_PROGRESS_EXPIRATION, PAYLOAD_HASH, STATUS, STATUS_COMPLETED,
    STATUS_IN_PROGRESS, epoch_millis, epoch_secs, payload_hash,
};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use wiremock::{Request, Respond, ResponseTemplate};

pub const TEMPLATE: &str = include_str!("../../../../../template.yaml");
pub const TABLE: &str = "qgen-idempotency";

pub fn config(gemini_url: &str) -> GeneratorConfig {
    config_with(gemini_url, &[])
}

/// [`config`] with `overrides` set as well: the batches' fast settings (`super::batches::config`)
/// with two attempts, the default concurrency and no broker (the publisher records). Every
/// failure here is answered, so the store's record of it can be checked; a held request's claim
/// is released like a failed one's (holding has its own tests).
pub fn config_with(gemini_url: &str, overrides: &[(&'static str, &str)]) -> GeneratorConfig {
    let mut settings = vec![("GEMINI_MAX_ATTEMPTS", "2"), ("GEMINI_MAX_WAIT_SECONDS", "0")];
    settings.extend_from_slice(overrides);
    super::batches::config_with("unused:9092", gemini_url, 16, &settings)
}

/// The generator with Gemini at `stand_in`, publishing to `publisher`, remembering in `store`
/// (given as `Some`, as `main` gives what `store_from_env` returns).
pub fn generator<'a>(
    stand_in: &GeminiStandIn,
    publisher: &'a RecordingPublisher,
    store: DynamoDbStore,
) -> Generator<GeminiClient, &'a RecordingPublisher, DynamoDbStore> {
    let config = config(&stand_in.base_url());
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    Generator::new(gemini, publisher, &config).with_idempotency(Some(store))
}

/// The table as `template.yaml` declares it, created through the SDK.
pub async fn table(moto: &MotoServer) -> Client {
    moto.idempotency_table(TABLE).await
}

/// What most tests here start from: moto with the table, a Gemini stand-in, a recording
/// publisher.
pub struct Fixture {
    pub moto: MotoServer,
    pub client: Client,
    pub stand_in: GeminiStandIn,
    pub publisher: RecordingPublisher,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::with(GeminiStandIn::answering().await).await
    }

    pub async fn with(stand_in: GeminiStandIn) -> Self {
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
    pub fn generator(&self) -> Generator<GeminiClient, &RecordingPublisher, DynamoDbStore> {
        generator(&self.stand_in, &self.publisher, store(&self.client))
    }
}

pub fn store(client: &Client) -> DynamoDbStore {
    DynamoDbStore::new(client.clone(), TABLE, Duration::from_secs(3_600))
}

pub fn request(request_id: &str, topic: &str) -> GenerationRequest {
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
pub fn delivery(offset: i64, request: &GenerationRequest) -> Value {
    delivery_on(0, offset, request)
}

pub fn delivery_on(partition: i32, offset: i64, request: &GenerationRequest) -> Value {
    record_json(&super::batches::message_of(partition, offset, request))
}

pub fn batch(records: Vec<Value>) -> KafkaEvent {
    kafka_event(records, "arn:aws:kafka:local", "127.0.0.1:9092")
}

/// The response events published, in order, each checked against the documented schema.
pub fn responses(publisher: &RecordingPublisher) -> Vec<Value> {
    publisher
        .on_topic("question.response")
        .iter()
        .map(|r| r.json())
        .inspect(|event| assert_matches_schema("response-event.schema.json", event))
        .collect()
}

/// Writes an `IN_PROGRESS` record for `request` held until `until`, as an attempt that crashed
/// (or is still running) leaves it.
pub async fn claimed_elsewhere(client: &Client, request: &GenerationRequest, until: SystemTime) {
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

pub async fn record(client: &Client, request_id: &str) -> HashMap<String, AttributeValue> {
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
pub async fn until_the_claim_expires(client: &Client, request_id: &str) {
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
pub fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    let value = item.get(name).unwrap_or_else(|| panic!("no {name} in {item:?}"));
    let n = value
        .as_n()
        .unwrap_or_else(|_| panic!("{name} is not a Number: {value:?}"));
    n.parse().unwrap()
}

pub fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

/// Holds every Gemini call until the test opens the gate, then answers as asked, and tells the
/// test when a call arrives. It blocks the stand-in's own server thread, never the test's.
pub struct Gated {
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
pub struct Gate {
    arrived: UnboundedReceiver<()>,
    open: mpsc::Sender<()>,
}

impl Gate {
    pub async fn call_arrived(&mut self) {
        tokio::time::timeout(Duration::from_secs(30), self.arrived.recv())
            .await
            .expect("gemini was called")
            .unwrap();
    }

    /// Lets the held call (and any later one) through.
    pub fn open(&self) {
        for _ in 0..8 {
            let _ = self.open.send(());
        }
    }
}

pub async fn gated_stand_in() -> (GeminiStandIn, Gate) {
    let (arrived_tx, arrived) = unbounded_channel();
    let (open, gate) = mpsc::channel();
    let stand_in = GeminiStandIn::start(Gated {
        arrived: arrived_tx,
        gate: Mutex::new(gate),
    })
    .await;
    (stand_in, Gate { arrived, open })
}

/// Writes a `COMPLETED` record of `request` with content hash `hash`, answered by
/// `response`, whose TTL (`expiration`) is `expiration`.
pub async fn answered_before(
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

/// A DynamoDB client whose endpoint is a loopback port nobody listens on.
pub fn unreachable_dynamodb() -> Client {
    dynamodb_client(&format!("http://127.0.0.1:{}", free_port()))
}

/// The TTL attribute `template.yaml` gives the idempotency table
/// (`TimeToLiveSpecification.AttributeName`).
pub fn template_ttl_attribute() -> &'static str {
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
pub fn configured<'a>(
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

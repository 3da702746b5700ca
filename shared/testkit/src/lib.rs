//! Test doubles and harnesses (feature `test-util`): a recording publisher, brokers that speak
//! the real Kafka protocol over TCP, and an HTTP stand-in for Gemini.
//!
//! Fakes are only for the edges tests cannot reach: the publisher fake is for handler tests that
//! are about HTTP or batch shapes; everything about Kafka itself runs against [`MockBroker`]
//! (librdkafka's mock cluster, in-process) or [`TansuBroker`] (an independent broker process).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use wiremock::matchers::{header_exists, method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use qgen_adapters::kafka::{
    Delivered, EventPublisher, OutboundRecord, PublishError, TopicSpec, ensure_topics,
};

/// The topics of the service with the partition counts the tests use.
pub const SERVICE_TOPICS: [(&str, i32); 4] = [
    ("question.request", 3),
    ("question.response", 3),
    ("question.request.dlq", 1),
    ("question.request.failed", 1),
];

/// A record captured by [`RecordingPublisher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRecord {
    /// Destination topic.
    pub topic: String,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl PublishedRecord {
    /// The value parsed as JSON (`Null` when absent or not JSON).
    pub fn json(&self) -> Value {
        self.payload
            .as_deref()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(Value::Null)
    }

    /// The key as text.
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The first header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// An [`EventPublisher`] that records what it is given, or fails every call when built with
/// [`RecordingPublisher::failing`].
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    records: Mutex<Vec<PublishedRecord>>,
    fail: bool,
}

impl RecordingPublisher {
    /// A publisher that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// A publisher whose every call fails, as an unreachable broker would.
    pub fn failing() -> Self {
        RecordingPublisher {
            records: Mutex::new(Vec::new()),
            fail: true,
        }
    }

    /// Everything published so far, in order.
    pub fn records(&self) -> Vec<PublishedRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Everything published to `topic`, in order.
    pub fn on_topic(&self, topic: &str) -> Vec<PublishedRecord> {
        self.records().into_iter().filter(|r| r.topic == topic).collect()
    }
}

impl EventPublisher for RecordingPublisher {
    async fn publish(&self, record: OutboundRecord<'_>) -> Result<Delivered, PublishError> {
        if self.fail {
            return Err(PublishError::Injected(format!("topic {}", record.topic)));
        }
        let mut records = self
            .records
            .lock()
            .map_err(|_| PublishError::Injected("poisoned".into()))?;
        records.push(PublishedRecord {
            topic: record.topic.to_owned(),
            key: record.key.map(<[u8]>::to_vec),
            payload: record.payload.map(<[u8]>::to_vec),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        });
        Ok(Delivered {
            partition: 0,
            offset: records.len() as i64 - 1,
        })
    }
}

/// librdkafka's mock cluster: a Kafka-protocol broker in this process, on a real TCP port.
/// Fast to start; supports groups and commits, not CreateTopics (topics are made here).
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockBroker {
    /// Starts a one-broker cluster with `topics` (name, partitions).
    pub fn start(topics: &[(&str, i32)]) -> Self {
        let cluster = MockCluster::new(1).expect("start librdkafka mock cluster");
        for (name, partitions) in topics {
            cluster
                .create_topic(name, *partitions, 1)
                .expect("create mock topic");
        }
        MockBroker { cluster }
    }

    /// Starts one with the service's topics.
    pub fn with_service_topics() -> Self {
        Self::start(&SERVICE_TOPICS)
    }

    /// `host:port` of the broker.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Makes the broker drop its connections and refuse new ones, keeping its data.
    pub fn go_down(&self) {
        self.cluster.broker_down(1).expect("mock broker down");
    }

    /// Makes the broker accept connections again.
    pub fn come_up(&self) {
        self.cluster.broker_up(1).expect("mock broker up");
    }

    /// Leaves the first `partitions` partitions of `topic` without a leader: producing to them
    /// waits, then fails at the message timeout, while every other topic works.
    pub fn make_unwritable(&self, topic: &str, partitions: i32) {
        for partition in 0..partitions {
            self.cluster
                .partition_leader(topic, partition, None)
                .expect("mock partition leaderless");
        }
    }

    /// Gives the partitions of `topic` their leader back.
    pub fn make_writable(&self, topic: &str, partitions: i32) {
        for partition in 0..partitions {
            self.cluster
                .partition_leader(topic, partition, Some(1))
                .expect("mock partition leader");
        }
    }
}

/// A tansu broker process (an independent Kafka-protocol implementation) with SQLite storage in
/// a temporary directory, on a free loopback port. Killed on drop.
///
/// The binary is `$TANSU_BIN`, else `tansu` on the `PATH`; `scripts/test` installs it when
/// missing. Tests that need it fail, loudly, when it is absent: they are never skipped.
pub struct TansuBroker {
    child: Option<Child>,
    port: u16,
    data: tempfile::TempDir,
}

impl TansuBroker {
    /// Starts the broker and creates `topics` (name, partitions) through the admin API.
    pub async fn start(topics: &[(&str, i32)]) -> Self {
        let mut broker = TansuBroker {
            child: None,
            port: free_port(),
            data: tempfile::tempdir().expect("temporary directory for tansu"),
        };
        broker.restart().await;
        let specs: Vec<TopicSpec> = topics
            .iter()
            .map(|(name, partitions)| TopicSpec::new(name, *partitions))
            .collect();
        let mut admin = ClientConfig::new();
        admin.set("bootstrap.servers", broker.bootstrap_servers());
        ensure_topics(&admin, &specs)
            .await
            .expect("create topics on tansu");
        broker
    }

    /// Starts one with the service's topics.
    pub async fn with_service_topics() -> Self {
        Self::start(&SERVICE_TOPICS).await
    }

    /// `host:port` of the broker.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker process (SIGKILL, as a crash would); its data stays for
    /// [`Self::restart`]. Not SIGTERM: tansu 0.6 then stops its storage at once but keeps
    /// answering open connections with errors for 5 s, which is a different fault.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port with the same data, and waits until it listens.
    pub async fn restart(&mut self) {
        self.kill();
        let binary = std::env::var_os("TANSU_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("tansu"));
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // tansu puts the SQLite file at its working directory + the URL's host and path.
            .current_dir(self.data.path())
            .args(["--storage-engine", "sqlite://tansu.db"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(self.data.path()))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start tansu ({}): {e}. Run scripts/test, which installs it, or set TANSU_BIN",
                    binary.display()
                )
            });
        self.child = Some(child);
        self.wait_until_listening(Duration::from_secs(20)).await;
    }

    async fn wait_until_listening(&mut self, limit: Duration) {
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.data.path().join("tansu.log")).unwrap_or_default();
                panic!("tansu exited with {status} before listening:\n{log}");
            }
            assert!(
                start.elapsed() < limit,
                "tansu did not listen on port {} within {limit:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn log_file(dir: &std::path::Path) -> Stdio {
    std::fs::File::create(dir.join("tansu.log")).map_or_else(|_| Stdio::null(), Stdio::from)
}

/// Produces a request event for `request_id` (about `topic`) to `partition` of
/// `question.request` on `bootstrap`, keyed by its id, created at `created_ms` (now when `None`);
/// returns the value's bytes. For tests that need a record on a given partition or of a given age.
pub async fn produce_request(
    bootstrap: &str,
    partition: i32,
    request_id: &str,
    topic: &str,
    created_ms: Option<i64>,
) -> Vec<u8> {
    use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create producer");
    let value = serde_json::to_vec(&RequestEvent::new_request(GenerationRequest {
        request_id: request_id.to_owned(),
        topic: topic.to_owned(),
        num_questions: 1,
        difficulty: Difficulty::Easy,
        context: None,
    }))
    .expect("request event as JSON");
    let mut record = FutureRecord::to("question.request")
        .partition(partition)
        .key(request_id)
        .payload(&value);
    if let Some(created_ms) = created_ms {
        record = record.timestamp(created_ms);
    }
    producer
        .send(record, Duration::from_secs(5))
        .await
        .expect("produce a request");
    value
}

/// Reads `topic` from the beginning of every partition, without a consumer group, until
/// `expected` records arrived or `limit` passed; returns what arrived, in arrival order.
pub async fn read_topic(bootstrap: &str, topic: &str, expected: usize, limit: Duration) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "qgen-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .expect("assign partition");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < expected {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, consumer.recv()).await {
            Ok(Ok(message)) => out.push(message.detach()),
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    out
}

/// The value of a Kafka message parsed as JSON (`Null` when absent or not JSON).
pub fn message_json(message: &OwnedMessage) -> Value {
    message
        .payload()
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(Value::Null)
}

/// The `eventData.request_id` of each response message, sorted.
pub fn response_request_ids(messages: &[OwnedMessage]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| {
            message_json(m)["eventData"]["request_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// The first header called `name` of a Kafka message, as text.
pub fn message_header(message: &OwnedMessage, name: &str) -> Option<String> {
    message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// Well-formed questions for a topic, as a model would return them.
pub use qgen_contract::offline::questions as sample_questions;

/// A `generateContent` reply whose text is `text`, finishing with `finish_reason`.
pub use qgen_contract::offline::gemini_reply;

/// Answers a `generateContent` call with exactly the questions it asks for. It reads the
/// request data from the last part of the last content, which the generator's client sends as
/// JSON (`topic`, `num_questions`, `difficulty`), as a careful model would.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswersAsAsked;

impl Respond for AnswersAsAsked {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(qgen_contract::offline::answer_generate_content(&request.body))
    }
}

/// An HTTP server on loopback that answers like Gemini's `generateContent`.
pub struct GeminiStandIn {
    server: MockServer,
}

impl GeminiStandIn {
    /// A stand-in that answers every well-formed call (right path, API key header present)
    /// with `responder`; anything else gets wiremock's 404.
    pub async fn start(responder: impl Respond + 'static) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1beta/models/[^/:]+:generateContent$"))
            .and(header_exists("x-goog-api-key"))
            .respond_with(responder)
            .mount(&server)
            .await;
        GeminiStandIn { server }
    }

    /// A stand-in that always returns the questions asked for.
    pub async fn answering() -> Self {
        Self::start(AnswersAsAsked).await
    }

    /// The base URL to configure as `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The calls received so far.
    pub async fn calls(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

/// A moto server process: real AWS APIs (Secrets Manager, DynamoDB, …) on a loopback port, so
/// tests drive the real SDK over HTTP. Started with `python3 -m moto.server`; killed on drop.
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts the server and waits until it answers.
    pub async fn start() -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (pip install 'moto[server]'; scripts/test does it)");
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto exited with {status}: is moto[server] installed?");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A Secrets Manager client for this server, with dummy credentials.
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    /// Creates the secret `name` holding `value`; returns its ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        self.secrets_manager()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("create a secret in moto")
            .arn()
            .expect("moto returns the secret's ARN")
            .to_owned()
    }

    /// A DynamoDB client for this server, with dummy credentials.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        dynamodb_client(&self.endpoint)
    }

    /// Creates the idempotency table `name` as `template.yaml` declares it (partition key `id`,
    /// on demand); returns a client for it.
    pub async fn idempotency_table(&self, name: &str) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let client = self.dynamodb();
        client
            .create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create the idempotency table in moto");
        client
    }
}

/// A DynamoDB client for `endpoint` (`http://host:port`), with dummy credentials.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The committed contract document at `contracts/<path>`.
pub fn contract(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", file.display()))
}

/// Panics, listing every violation, unless `value` matches the committed JSON Schema
/// `contracts/schemas/<schema>`.
pub fn assert_matches_schema(schema: &str, value: &Value) {
    let errors = schema_errors(schema, value);
    assert!(errors.is_empty(), "{value} does not match {schema}: {errors:#?}");
}

/// The violations of `contracts/schemas/<schema>` by `value` (empty when it matches).
pub fn schema_errors(schema: &str, value: &Value) -> Vec<String> {
    let document = contract(&format!("schemas/{schema}"));
    let validator =
        jsonschema::validator_for(&document).unwrap_or_else(|e| panic!("{schema} is not a schema: {e}"));
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Everything logged on this thread while the guard lives, at every level down to TRACE
/// (librdkafka's own messages included, through rdkafka's `tracing` feature). `#[tokio::test]`
/// runs a current-thread runtime, so that is everything the code under test logs.
pub fn capture_logs() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// The lines captured by [`capture_logs`].
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// All of it, as text.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

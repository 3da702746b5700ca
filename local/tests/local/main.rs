//! The local stack end to end over real HTTP and a real broker, read back by an independent
//! client; and the event-source-mapping emulator's batching, retry, commit and resume rules.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen::kafka::{KafkaPublisher, publish_event};
use qgen::msk::record_value;
use qgen::testing::MockBroker;
use qgen_local::client;
use qgen_local::esm::{Emulator, EsmConfig, InvokeError, Invoker};
use qgen_local::stack::{UpOptions, up};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const REQUEST_TOPIC: &str = "question.request";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_posted_over_http_get_responses_an_independent_client_reads() {
    let options = UpOptions {
        api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        partitions: 3,
        batch_size: 100,
        batching_window: Duration::from_millis(200),
        invoke_url: None,
        state_file: None,
    };
    // No KAFKA_BOOTSTRAP_SERVERS (embedded broker) and no GOOGLE_API_KEY (offline source).
    let stack = up(&options, |_| None).await.unwrap();
    assert!(stack.is_offline());
    let ids: Vec<String> = (1..=5).map(|i| format!("local-{i}")).collect();

    for (i, id) in ids.iter().enumerate() {
        let body =
            json!({"request_id": id, "topic": "Python Basics", "num_questions": i + 1, "difficulty": "easy"});
        let (status, accepted) = client::send(stack.api_url(), &body).await.unwrap();
        assert_eq!(status, 202, "{accepted}");
    }
    let (status, refused) = client::send(stack.api_url(), &json!({"topic": "x", "num_questions": 0}))
        .await
        .unwrap();
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("num_questions"))
    );

    let bootstrap = stack.bootstrap_servers();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/read_responses.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([bootstrap.as_str(), "question.response", "60"])
            .args(&ids)
            .output()
            .expect("run python3 (scripts/test installs confluent-kafka)")
    })
    .await
    .unwrap();
    stack.stop().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "reader failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for i in 1..=5 {
        let id = format!("local-{i}");
        let event = events.iter().find(|e| e["request_id"] == id.as_str()).unwrap();
        assert_eq!(event["status"], "completed");
        assert_eq!(event["source"], "offline");
        assert_eq!(event["key"], id.as_str());
        assert_eq!(event["total_questions"], i);
    }
}

/// An invoker that records what it was given and fails while told to.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Vec<String>>>,
    failures_left: AtomicUsize,
}

impl Recorder {
    fn failing(times: usize) -> Self {
        Recorder {
            batches: Mutex::new(Vec::new()),
            failures_left: AtomicUsize::new(times),
        }
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().unwrap().clone()
    }

    fn records(&self) -> usize {
        self.batches().iter().map(Vec::len).sum()
    }
}

impl Invoker for Recorder {
    async fn invoke(&self, event: &KafkaEvent, _deadline: Instant) -> Result<(), InvokeError> {
        let mut ids: Vec<(i64, i64, String)> = Vec::new();
        for record in event.records.values().flatten() {
            let value: Value = serde_json::from_slice(&record_value(record).unwrap().unwrap()).unwrap();
            let id = value["eventData"]["request_id"].as_str().unwrap().to_owned();
            ids.push((record.partition, record.offset, id));
        }
        ids.sort();
        self.batches
            .lock()
            .unwrap()
            .push(ids.into_iter().map(|(_, _, id)| id).collect());
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.failures_left.store(left - 1, Ordering::SeqCst);
            return Err(InvokeError("failing on purpose".into()));
        }
        Ok(())
    }
}

fn esm_config(batch_size: usize, window_ms: u64) -> EsmConfig {
    let mut config = EsmConfig::new(REQUEST_TOPIC);
    config.batch_size = batch_size;
    config.batching_window = Duration::from_millis(window_ms);
    config.retry_base = Duration::from_millis(50);
    config.retry_max = Duration::from_millis(200);
    config
}

fn client_of(broker: &MockBroker) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", broker.bootstrap_servers());
    client
}

fn publisher(broker: &MockBroker) -> KafkaPublisher {
    let config = qgen::config::ApiConfig::from_lookup(|var| {
        (var == "KAFKA_BOOTSTRAP_SERVERS").then(|| broker.bootstrap_servers())
    })
    .unwrap();
    KafkaPublisher::new(&config.kafka).unwrap()
}

async fn send(publisher: &KafkaPublisher, ids: &[&str]) {
    for id in ids {
        let event = RequestEvent::new_request(GenerationRequest {
            request_id: (*id).to_owned(),
            topic: "t".into(),
            num_questions: 1,
            difficulty: Difficulty::Easy,
            context: None,
        });
        publish_event(publisher, REQUEST_TOPIC, id, &event).await.unwrap();
    }
}

async fn produce(broker: &MockBroker, ids: &[&str]) {
    send(&publisher(broker), ids).await;
}

/// Runs `emulator` until `done` says so (or 30 s pass), then stops it cleanly.
async fn run_until<I: Invoker>(emulator: &Emulator<I>, done: impl Fn() -> bool) {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let watch = async {
        let started = Instant::now();
        while !done() && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
    };
    let (result, ()) = tokio::join!(emulator.run(shutdown), watch);
    result.unwrap();
}

/// The group's committed offset of each partition of the request topic.
fn committed(broker: &MockBroker, partitions: i32) -> Vec<Offset> {
    let consumer: BaseConsumer = client_of(broker)
        .set("group.id", "question-generator")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(REQUEST_TOPIC, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    committed.elements().iter().map(|e| e.offset()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_at_most_batch_size_records_and_each_record_once() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1)]);
    produce(&broker, &["a", "b", "c", "d", "e", "f", "g"]).await;
    let recorder = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(3, 300), &recorder).unwrap();

    run_until(&emulator, || recorder.records() >= 7).await;

    let batches = recorder.batches();
    assert!(batches.iter().all(|b| b.len() <= 3), "{batches:?}");
    assert_eq!(batches.concat(), ["a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(committed(&broker, 1), [Offset::Offset(7)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batching_window_gathers_records_that_arrive_within_it() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1)]);
    let recorder = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(100, 1_500), &recorder).unwrap();
    let publisher = publisher(&broker);
    send(&publisher, &["warm-up"]).await;
    let late_producer = async {
        // Once the consumer has taken the warm-up record, send two records 300 ms apart.
        while recorder.records() < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        send(&publisher, &["early"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        send(&publisher, &["late"]).await;
    };

    tokio::join!(run_until(&emulator, || recorder.records() >= 3), late_producer);

    assert_eq!(
        recorder.batches()[1..],
        [vec!["early".to_owned(), "late".to_owned()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_retried_with_the_same_records_and_never_committed() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 2)]);
    produce(&broker, &["x", "y", "z"]).await;
    let failing = Recorder::failing(usize::MAX);
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &failing).unwrap();

    run_until(&emulator, || failing.batches().len() >= 3).await;
    drop(emulator);

    let attempts = failing.batches();
    assert!(attempts.len() >= 3);
    assert!(
        attempts.windows(2).all(|w| w[0] == w[1]),
        "retries must carry the same records: {attempts:?}"
    );
    assert!(
        committed(&broker, 2)
            .iter()
            .all(|o| !matches!(o, Offset::Offset(_))),
        "nothing committed"
    );

    // The function recovers: a new emulator in the group gets the same records again.
    let recovered = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &recovered).unwrap();
    run_until(&emulator, || recovered.records() >= 3).await;
    let mut seen = recovered.batches().concat();
    seen.sort();
    assert_eq!(seen, ["x", "y", "z"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_processing_resumes_from_the_committed_offset() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 2)]);
    produce(&broker, &["1", "2", "3"]).await;
    let first = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &first).unwrap();
    run_until(&emulator, || first.records() >= 3).await;
    drop(emulator);

    produce(&broker, &["4", "5"]).await;
    let second = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &second).unwrap();
    run_until(&emulator, || second.records() >= 2).await;
    // Give a wrongly re-delivered record time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut before = first.batches().concat();
    let mut after = second.batches().concat();
    before.sort();
    after.sort();
    assert_eq!(before, ["1", "2", "3"]);
    assert_eq!(after, ["4", "5"], "only the records after the committed offsets");
    let all: HashSet<String> = before.into_iter().chain(after).collect();
    assert_eq!(all.len(), 5);
}

//! The event-source-mapping emulator against a real broker: batching, one invocation per
//! partition, partial batch responses, retries capped by attempts and by record age, the
//! on-failure topic, commits and resume — the rules of the trigger `template.yaml` deploys — and
//! the `qgen-local up` binary stopped by Ctrl-C (SIGINT) with a batch in flight.
//!
//! This module holds the helpers every trigger test uses (and `trigger_retries` and `replay`);
//! the tests are in `batches`, `failures`, `concurrency` and `ctrl_c`.

mod batches;
mod concurrency;
mod ctrl_c;
mod failures;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_adapters::kafka::{KafkaPublisher, publish_event};
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::{KafkaBatchResponse, record_value};
use qgen_contract::on_failure::FailureRecord;
use qgen_contract::trace::TraceContext;
use qgen_local::esm::{Emulator, EsmConfig, InvokeError, Invoker};
use qgen_testkit::{MockBroker, produce_request, read_topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const REQUEST_TOPIC: &str = "question.request";
pub const FAILED_TOPIC: &str = "question.request.failed";

/// A record of a batch, as an invoker saw it.
pub type Seen = (i32, i64, String);

/// How a [`Recorder`] answers the invocation with this index (from 0) and these records.
type Script = Box<dyn Fn(usize, &[Seen]) -> Result<KafkaBatchResponse, InvokeError> + Send + Sync>;

/// An invoker that records what it was given, sorted by partition and offset, and answers as
/// its script says.
pub struct Recorder {
    batches: Mutex<Vec<Vec<Seen>>>,
    script: Script,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::answering(|_, _| Ok(KafkaBatchResponse::default()))
    }
}

impl Recorder {
    /// Answers with `script`.
    pub fn answering(
        script: impl Fn(usize, &[Seen]) -> Result<KafkaBatchResponse, InvokeError> + Send + Sync + 'static,
    ) -> Self {
        Recorder {
            batches: Mutex::new(Vec::new()),
            script: Box::new(script),
        }
    }

    /// Returns an error for the first `times` invocations, then succeeds.
    fn failing(times: usize) -> Self {
        Recorder::answering(move |n, _| {
            if n < times {
                Err(InvokeError("failing on purpose".into()))
            } else {
                Ok(KafkaBatchResponse::default())
            }
        })
    }

    /// Reports the records whose request_id is in `ids` as failed, every time.
    pub fn refusing(ids: &'static [&'static str]) -> Self {
        Recorder::answering(move |_, seen| {
            Ok(KafkaBatchResponse::retry_from(
                seen.iter()
                    .filter(|(_, _, id)| ids.contains(&id.as_str()))
                    .map(|(p, o, _)| (REQUEST_TOPIC, i64::from(*p), *o)),
            ))
        })
    }

    /// Each batch's request ids.
    fn batches(&self) -> Vec<Vec<String>> {
        self.seen()
            .into_iter()
            .map(|b| b.into_iter().map(|(_, _, id)| id).collect())
            .collect()
    }

    /// Each batch's records.
    pub fn seen(&self) -> Vec<Vec<Seen>> {
        self.batches.lock().unwrap().clone()
    }

    /// Records invoked so far, counting redeliveries.
    pub fn records(&self) -> usize {
        self.seen().iter().map(Vec::len).sum()
    }
}

impl Invoker for Recorder {
    async fn invoke(
        &self,
        event: &KafkaEvent,
        _deadline: Instant,
    ) -> Result<KafkaBatchResponse, InvokeError> {
        // A real function always yields while it works (so must this one, or an emulator that
        // retried with no delay would spin in the test's task and hang it instead of failing).
        tokio::task::yield_now().await;
        let seen = seen_in(event);
        let n = {
            let mut batches = self.batches.lock().unwrap();
            batches.push(seen.clone());
            batches.len() - 1
        };
        (self.script)(n, &seen)
    }
}

/// The records of `event`, sorted by partition and offset.
pub fn seen_in(event: &KafkaEvent) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    for record in event.records.values().flatten() {
        let value: Value = serde_json::from_slice(&record_value(record).unwrap().unwrap()).unwrap();
        let id = value["eventData"]["request_id"].as_str().unwrap().to_owned();
        seen.push((record.partition as i32, record.offset, id));
    }
    seen.sort();
    seen
}

pub fn esm_config(batch_size: usize, window_ms: u64) -> EsmConfig {
    let mut config = EsmConfig::new(REQUEST_TOPIC, FAILED_TOPIC);
    config.batch_size = batch_size;
    config.batching_window = Duration::from_millis(window_ms);
    config.retry_base = Duration::from_millis(50);
    config.retry_max = Duration::from_millis(200);
    config
}

pub fn client_of(broker: &MockBroker) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", broker.bootstrap_servers());
    client
}

pub fn publisher(broker: &MockBroker) -> KafkaPublisher {
    let config = qgen_adapters::config::ApiConfig::from_lookup(|var| {
        (var == "KAFKA_BOOTSTRAP_SERVERS").then(|| broker.bootstrap_servers())
    })
    .unwrap();
    KafkaPublisher::new(&config.kafka).unwrap()
}

pub async fn send(publisher: &KafkaPublisher, ids: &[&str]) {
    for id in ids {
        let event = RequestEvent::new_request(GenerationRequest {
            request_id: (*id).to_owned(),
            topic: "t".into(),
            num_questions: 1,
            difficulty: Difficulty::Easy,
            context: None,
        });
        publish_event(
            publisher,
            REQUEST_TOPIC,
            id,
            &event,
            &TraceContext::new_root(),
            &[],
        )
        .await
        .unwrap();
    }
}

pub async fn produce(broker: &MockBroker, ids: &[&str]) {
    send(&publisher(broker), ids).await;
}

/// Waits until `condition` holds, checking every 10 ms; panics naming `what` if it still does
/// not after `within`, so that a stuck emulator fails the test instead of hanging it.
pub async fn wait_for(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `emulator` until `done` says so, then stops it cleanly; fails the test if `done` does
/// not hold within 30 s.
pub async fn run_until<I: Invoker>(emulator: &Emulator<I>, done: impl Fn() -> bool) {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let watch = async {
        wait_for("the run's end condition", Duration::from_secs(30), done).await;
        stop.cancel();
    };
    let (result, ()) = tokio::join!(emulator.run(shutdown), watch);
    result.unwrap();
}

/// The group's committed offset of each partition of the request topic.
pub fn committed(broker: &MockBroker, partitions: i32) -> Vec<Offset> {
    committed_at(&broker.bootstrap_servers(), partitions)
}

/// [`committed`] on the broker at `bootstrap` (blocking: call it from `spawn_blocking` while an
/// emulator runs in the same task).
pub fn committed_at(bootstrap: &str, partitions: i32) -> Vec<Offset> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
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

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Produces a request event for `id` to `partition` of the request topic, created at
/// `created_ms`; returns the value's bytes.
pub async fn produce_at(broker: &MockBroker, partition: i32, id: &str, created_ms: i64) -> Vec<u8> {
    produce_request(
        &broker.bootstrap_servers(),
        partition,
        id,
        &format!("topic of {id}"),
        Some(created_ms),
    )
    .await
}

/// The on-failure records, parsed, with the partition and offset their payload names.
pub async fn failed_records(broker: &MockBroker, expected: usize) -> Vec<(FailureRecord, OwnedMessage)> {
    read_topic(
        &broker.bootstrap_servers(),
        FAILED_TOPIC,
        expected,
        Duration::from_secs(20),
    )
    .await
    .into_iter()
    .map(|m| (serde_json::from_slice(m.payload().unwrap()).unwrap(), m))
    .collect()
}

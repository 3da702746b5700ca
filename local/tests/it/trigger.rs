//! The event-source-mapping emulator against a real broker: batching, one invocation per
//! partition, partial batch responses, retries capped by attempts and by record age, the
//! on-failure topic, commits and resume — the rules of the trigger `template.yaml` deploys — and
//! the `qgen-local up` binary stopped by Ctrl-C (SIGINT) with a batch in flight.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
        // Once the consumer has taken the warm-up record (so it is assigned and fetching), send
        // two records 300 ms apart.
        wait_for("the warm-up record's invocation", Duration::from_secs(30), || {
            recorder.records() >= 1
        })
        .await;
        send(&publisher, &["early"]).await;
        // Not synchronisation: this gap is what the test is about. "late" arrives 300 ms after
        // "early", well inside the 1.5 s window that "early" opened, and must join its batch.
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

    // Each partition's retries carry the same records as its first attempt: nothing dropped,
    // nothing added. (Both partitions may share one batch or have one each.)
    let attempts = failing.seen();
    assert!(attempts.len() >= 3);
    for partition in 0..2 {
        let of_partition: Vec<Vec<&Seen>> = attempts
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .filter(|(p, _, _)| *p == partition)
                    .collect::<Vec<_>>()
            })
            .filter(|records| !records.is_empty())
            .collect();
        assert!(
            of_partition.windows(2).all(|w| w[0] == w[1]),
            "retries must carry the same records: {attempts:?}"
        );
    }
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
    for (partition, id) in [(0, "1"), (1, "2"), (0, "3")] {
        produce_at(&broker, partition, id, now_ms()).await;
    }
    let first = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &first).unwrap();
    run_until(&emulator, || first.records() >= 3).await;
    drop(emulator);

    // One new record in each partition. A partition's records are delivered in offset order,
    // so once both new ones are invoked, any record wrongly delivered again (from before the
    // committed offset) has been invoked too: no wait after the run is needed.
    produce_at(&broker, 0, "4", now_ms()).await;
    produce_at(&broker, 1, "5", now_ms()).await;
    let second = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &second).unwrap();
    run_until(&emulator, || {
        let seen = second.batches().concat();
        seen.contains(&"4".to_owned()) && seen.contains(&"5".to_owned())
    })
    .await;

    let mut before = first.batches().concat();
    let mut after = second.batches().concat();
    before.sort();
    after.sort();
    assert_eq!(before, ["1", "2", "3"]);
    assert_eq!(after, ["4", "5"], "only the records after the committed offsets");
    let all: HashSet<String> = before.into_iter().chain(after).collect();
    assert_eq!(all.len(), 5);
}

fn now_ms() -> i64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_failure_commits_up_to_the_reported_offset_and_redelivers_from_it() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 3), (FAILED_TOPIC, 1)]);
    for (partition, id) in [(0, "a0"), (0, "a1"), (1, "b0"), (1, "b1"), (1, "b2"), (2, "c0")] {
        produce_at(&broker, partition, id, now_ms()).await;
    }
    // The first invocation given b1 (partition 1, offset 1) reports it; every other succeeds.
    // The records may reach the emulator over several fetches (a loaded machine splits them), so
    // the test keys on b1, not on the first batch.
    let reported = std::sync::atomic::AtomicBool::new(false);
    let recorder = Recorder::answering(move |_, seen| {
        let has_b1 = seen.iter().any(|(_, _, id)| id == "b1");
        Ok(
            if has_b1 && !reported.swap(true, std::sync::atomic::Ordering::SeqCst) {
                KafkaBatchResponse::retry_from([(REQUEST_TOPIC, 1, 1)])
            } else {
                KafkaBatchResponse::default()
            },
        )
    });
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 300), &recorder).unwrap();
    let times = |id: &str| {
        recorder
            .batches()
            .iter()
            .flatten()
            .filter(|seen| *seen == id)
            .count()
    };

    run_until(&emulator, || {
        times("b1") == 2 && times("b2") >= 1 && ["a0", "a1", "b0", "c0"].iter().all(|id| times(id) == 1)
    })
    .await;

    // What the report named was redelivered from b1, on its partition alone; what was before it,
    // and the other partitions, were not redelivered.
    let batches = recorder.batches();
    let with_b1: Vec<&Vec<String>> = batches.iter().filter(|b| b.contains(&"b1".to_owned())).collect();
    assert_eq!(with_b1.len(), 2, "{batches:?}");
    assert_eq!(with_b1[1][0], "b1", "redelivered from b1: {batches:?}");
    assert!(with_b1[1].iter().all(|id| id.starts_with('b')), "{batches:?}");
    for id in ["a0", "a1", "b0", "c0"] {
        assert_eq!(times(id), 1, "{id} is invoked once: {batches:?}");
    }
    assert_eq!(
        committed(&broker, 3),
        [Offset::Offset(2), Offset::Offset(3), Offset::Offset(1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_retry_cap_records_go_to_the_failed_topic_and_the_partition_moves_on() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 2), (FAILED_TOPIC, 1)]);
    produce_at(&broker, 0, "x0", now_ms()).await;
    let y0 = produce_at(&broker, 1, "y0", now_ms()).await;
    let y1 = produce_at(&broker, 1, "y1", now_ms()).await;
    let recorder = Recorder::refusing(&["y0", "y1"]);
    let mut config = esm_config(10, 300);
    config.maximum_retry_attempts = 2;
    let emulator = Emulator::new(&client_of(&broker), config, &recorder).unwrap();
    let shutdown = CancellationToken::new();
    let run = emulator.run(shutdown.clone());
    let check = async {
        let failed = failed_records(&broker, 2).await;
        // The partition moves on: a record after the given-up ones is invoked.
        produce_at(&broker, 1, "y2", now_ms()).await;
        wait_for("y2 to be invoked", Duration::from_secs(20), || {
            recorder.batches().concat().contains(&"y2".to_owned())
        })
        .await;
        shutdown.cancel();
        failed
    };
    let (result, failed) = tokio::join!(run, check);
    result.unwrap();

    let tries_of_y0 = recorder
        .batches()
        .iter()
        .filter(|b| b.contains(&"y0".to_owned()))
        .count();
    assert_eq!(tries_of_y0, 3, "the first invocation and 2 retries");
    assert_eq!(
        recorder
            .batches()
            .concat()
            .iter()
            .filter(|id| *id == "x0")
            .count(),
        1
    );
    assert!(recorder.batches().concat().contains(&"y2".to_owned()));
    assert_eq!(failed.len(), 2, "one on-failure record per record");
    for ((record, message), (offset, value)) in failed.iter().zip([(0, &y0), (1, &y1)]) {
        assert_eq!(record.request_context.condition, "RetriesExhausted");
        assert_eq!(record.request_context.approximate_invoke_count, 3);
        assert_eq!(record.response_context.as_ref().unwrap().status_code, 200);
        assert_eq!(record.batch_info.record_info.offset, offset.to_string());
        let original = &record.originals().unwrap()[0];
        assert_eq!((original.partition, original.offset), (1, offset));
        assert_eq!(original.value.as_ref(), Some(value), "the original bytes");
        assert_eq!(
            message.key(),
            original.key.as_deref(),
            "produced with the original key"
        );
    }
    assert_eq!(committed(&broker, 2), [Offset::Offset(1), Offset::Offset(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_older_than_the_maximum_age_goes_to_the_failed_topic_without_an_invocation() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1), (FAILED_TOPIC, 1)]);
    let old = produce_at(&broker, 0, "old", now_ms() - 120_000).await;
    produce_at(&broker, 0, "new", now_ms()).await;
    let recorder = Recorder::default();
    let mut config = esm_config(10, 300);
    // The smallest age AWS accepts (kafka-retry-configurations.html: 60-604800, or -1).
    config.maximum_record_age_seconds = 60;
    let emulator = Emulator::new(&client_of(&broker), config, &recorder).unwrap();

    run_until(&emulator, || recorder.records() >= 1).await;
    let failed = failed_records(&broker, 1).await;

    assert_eq!(recorder.batches(), [["new"]], "the old record is never invoked");
    let (record, _) = &failed[0];
    assert_eq!(record.request_context.condition, "RecordAgeExceeded");
    assert_eq!(record.request_context.approximate_invoke_count, 0);
    assert!(record.response_context.is_none());
    assert_eq!(record.originals().unwrap()[0].value.as_ref(), Some(&old));
    assert_eq!(committed(&broker, 1), [Offset::Offset(2)]);
}

/// Invocations wait here until `parties` of them are in flight at once.
struct Rendezvous {
    barrier: tokio::sync::Barrier,
    arrived: AtomicUsize,
    parties: usize,
    in_flight: Mutex<Vec<i32>>,
    overlapped_in_a_partition: AtomicBool,
    all_met: AtomicBool,
    invoked: Mutex<Vec<String>>,
}

impl Invoker for Rendezvous {
    async fn invoke(
        &self,
        event: &KafkaEvent,
        _deadline: Instant,
    ) -> Result<KafkaBatchResponse, InvokeError> {
        let partitions: HashSet<i32> = event
            .records
            .values()
            .flatten()
            .map(|r| r.partition as i32)
            .collect();
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            if partitions.iter().any(|p| in_flight.contains(p)) {
                self.overlapped_in_a_partition.store(true, Ordering::SeqCst);
            }
            in_flight.extend(&partitions);
        }
        if self.arrived.fetch_add(1, Ordering::SeqCst) < self.parties {
            // Bounded only so that a broken emulator fails the test instead of hanging it.
            let met = tokio::time::timeout(Duration::from_secs(20), self.barrier.wait()).await;
            if met.is_ok() {
                self.all_met.store(true, Ordering::SeqCst);
            }
        }
        self.in_flight.lock().unwrap().retain(|p| !partitions.contains(p));
        self.invoked.lock().unwrap().extend(
            event
                .records
                .values()
                .flatten()
                .map(|r| format!("{}@{}", r.partition, r.offset)),
        );
        Ok(KafkaBatchResponse::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_invoked_at_once_but_each_partition_one_batch_at_a_time() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 3), (FAILED_TOPIC, 1)]);
    for (partition, id) in [(0, "a"), (0, "b"), (1, "c"), (2, "d")] {
        produce_at(&broker, partition, id, now_ms()).await;
    }
    let rendezvous = Rendezvous {
        barrier: tokio::sync::Barrier::new(3),
        arrived: AtomicUsize::new(0),
        parties: 3,
        in_flight: Mutex::new(Vec::new()),
        overlapped_in_a_partition: AtomicBool::new(false),
        all_met: AtomicBool::new(false),
        invoked: Mutex::new(Vec::new()),
    };
    // One record per batch: a batch is one partition's.
    let emulator = Emulator::new(&client_of(&broker), esm_config(1, 0), &rendezvous).unwrap();

    run_until(&emulator, || rendezvous.invoked.lock().unwrap().len() >= 4).await;

    assert!(
        rendezvous.all_met.load(Ordering::SeqCst),
        "three partitions' batches in flight at once"
    );
    assert!(
        !rendezvous.overlapped_in_a_partition.load(Ordering::SeqCst),
        "never two batches of one partition at once"
    );
    let mut invoked = rendezvous.invoked.lock().unwrap().clone();
    invoked.sort();
    assert_eq!(invoked, ["0@0", "0@1", "1@0", "2@0"]);
}

/// Holds each invocation until released.
struct Held {
    started: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Invoker for Held {
    async fn invoke(
        &self,
        _event: &KafkaEvent,
        _deadline: Instant,
    ) -> Result<KafkaBatchResponse, InvokeError> {
        self.started.notify_one();
        self.release.notified().await;
        Ok(KafkaBatchResponse::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_the_batch_in_flight_finish_and_commit() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1), (FAILED_TOPIC, 1)]);
    produce(&broker, &["p", "q"]).await;
    let held = Held {
        started: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    };
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 300), &held).unwrap();
    let shutdown = CancellationToken::new();

    let stop_while_in_flight = async {
        held.started.notified().await;
        shutdown.cancel();
        held.release.notify_one();
    };
    let (result, ()) = tokio::join!(emulator.run(shutdown.clone()), stop_while_in_flight);

    result.unwrap();
    assert_eq!(committed(&broker, 1), [Offset::Offset(2)]);
}

/// A child process, killed (by its id) if the test ends before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A one-request Lambda Invoke API: reports the request when it arrives, answers `null` (a
/// complete success) when `release` says so.
fn hold_one_invocation(
    listener: std::net::TcpListener,
    arrived: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
) {
    use std::io::{Read, Write};
    let Ok((mut stream, _)) = listener.accept() else {
        return;
    };
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    // Headers, then as many body bytes as Content-Length says.
    let complete = |request: &[u8]| {
        let text = String::from_utf8_lossy(request);
        let Some(end) = text.find("\r\n\r\n") else {
            return false;
        };
        let length = text[..end]
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        request.len() >= end + 4 + length
    };
    while !complete(&request) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = arrived.send(());
    if release.recv_timeout(Duration::from_secs(60)).is_ok() {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull");
    }
}

/// The next line from `lines` that `matches` (within 30 s); every line read is kept in `log`.
fn wait_line(
    lines: &std::sync::mpsc::Receiver<String>,
    log: &mut Vec<String>,
    what: &str,
    matches: &dyn Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                log.push(line.clone());
                if matches(&line) {
                    return line;
                }
            }
            Err(e) => panic!(
                "no stderr line for {what} ({e}); stderr so far:\n{}",
                log.join("\n")
            ),
        }
    }
}

/// Whether process `pid` has a handler installed for SIGINT (Linux: bit 1 of `SigCgt` in
/// `/proc/PID/status`); `None` where there is no `/proc`.
fn catches_sigint(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
    Some(u64::from_str_radix(mask.trim(), 16).ok()? & (1 << (2 - 1)) != 0)
}

/// The binary's wiring of Ctrl-C, end to end: `qgen-local up` (its own embedded broker, the
/// function behind `--invoke-url` played by this test) gets SIGINT while its trigger has a batch
/// in flight; it finishes that batch, commits past it, and exits with success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_qgen_local_up_after_its_batch_in_flight_finishes_and_commits() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let invoke_url = format!("http://{}", listener.local_addr().unwrap());
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    std::thread::spawn(move || hold_one_invocation(listener, arrived_tx, release_rx));

    let state_file = std::env::temp_dir().join(format!("qgen-local-ctrl-c-{}.json", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_qgen-local"));
    command
        .arg("--state-file")
        .arg(&state_file)
        .args(["up", "--api-addr", "127.0.0.1:0", "--partitions", "1"])
        .args(["--batching-window-ms", "0", "--invoke-url", &invoke_url])
        // The embedded broker and the default topic names, whatever this shell exports.
        .env("RUST_LOG", "warn,qgen_local::esm=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("KAFKA_")) {
        command.env_remove(var);
    }
    let mut child = Child(command.spawn().expect("start qgen-local"));
    let pid = child.0.id();
    let stderr = child.0.stderr.take().unwrap();
    let (line_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log: Vec<String> = Vec::new();

    let broker_line = wait_line(&lines, &mut log, "the broker's address", &|l| {
        l.trim_start().starts_with("broker:")
    });
    let bootstrap = broker_line
        .trim_start()
        .trim_start_matches("broker:")
        .trim()
        .to_owned();
    // The banner's last line: right after it, `up` waits for Ctrl-C.
    wait_line(&lines, &mut log, "the start-up banner", &|l| l.contains("stop:"));
    produce_request(&bootstrap, 0, "ctrl-c", "t", None).await;
    arrived
        .recv_timeout(Duration::from_secs(30))
        .expect("the trigger invokes the function with the record");
    if catches_sigint(pid).is_some() {
        wait_for("qgen-local to handle SIGINT", Duration::from_secs(10), || {
            catches_sigint(pid) == Some(true)
        })
        .await;
    }

    let kill = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_line(&lines, &mut log, "the shutdown to begin", &|l| {
        l.contains("shutting down")
    });
    assert!(
        !log.iter().any(|l| l.contains("offsets committed")),
        "nothing is committed while the batch is in flight: {log:?}"
    );
    release.send(()).unwrap();
    let committed = wait_line(&lines, &mut log, "the batch's commit", &|l| {
        l.contains("offsets committed")
    });
    // Under the 30 s that `RunningStack::stop` grants tasks that ignore the shutdown.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "qgen-local still running 20 s after its batch was committed: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert!(
        status.success(),
        "exits cleanly, not killed by the signal: {status:?}"
    );
    assert!(
        committed.contains("0@1"),
        "partition 0 committed past its record (offset 1): {committed}"
    );
    assert!(!state_file.exists(), "the state file is removed on the way out");
    // The rest of stderr, up to its end (the reader stops at the exited child's end of pipe).
    let rest: Vec<String> = std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(10)).ok()).collect();
    assert!(
        !rest.iter().any(|l| l.contains("did not stop")),
        "every task stopped when told: {rest:?}"
    );
}

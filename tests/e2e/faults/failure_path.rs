//! The failure path as `template.yaml` deploys it, run through the trigger emulator with the
//! template's semantics: partial batch responses, retries capped, the records given up written
//! to question.request.failed with Lambda's metadata, and `replay` bringing them back.
//!
//! - `question.response` unwritable for longer than the retry cap: every accepted request lands
//!   in the failed topic with its original bytes, the partitions move on, and after the outage
//!   `replay` (twice) gets every one a terminal response, with no second Gemini call (the
//!   idempotency store answers) and one `eventId` per request;
//! - publishing fails for one partition of a three-partition batch: only that partition is
//!   redelivered, from its first unanswered record; no record of the others is generated twice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use qgen_adapters::kafka::{
    Delivered, EventPublisher, KafkaPublisher, OutboundRecord, PublishError, client_config,
};
use qgen_contract::on_failure::FailureRecord;
use qgen_local::esm::{Emulator, EsmConfig};
use qgen_ops::replay::{ReplayFilter, ReplayOptions, replay};
use qgen_testkit::{GeminiStandIn, MockBroker, MotoServer, produce_request, read_topic};
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use question_generator::idempotency::DynamoDbStore;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::harness::{configs, init_logs, post_all, read_responses, serve_api};
use secrecy::SecretString;

const REQUEST: &str = "question.request";
const RESPONSE: &str = "question.response";
const FAILED: &str = "question.request.failed";

/// The emulator with the template's settings but a small retry cap and short backoff.
fn trigger(retries: i32) -> EsmConfig {
    let mut esm = EsmConfig::new(REQUEST, FAILED);
    esm.maximum_retry_attempts = retries;
    esm.batching_window = Duration::from_millis(100);
    esm.retry_base = Duration::from_millis(100);
    esm.retry_max = Duration::from_millis(400);
    esm
}

/// Per partition of the request topic: (committed offset of the trigger's group, end offset).
fn progress(bootstrap: &str) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "question-generator")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition(REQUEST, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    (0..3)
        .map(|p| {
            let offset = match committed.find_partition(REQUEST, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            let (_, high) = consumer
                .fetch_watermarks(REQUEST, p, Duration::from_secs(10))
                .unwrap();
            (offset, high)
        })
        .collect()
}

/// How many Gemini calls asked about each topic.
async fn calls_by_topic(stand_in: &GeminiStandIn, topics: &[String]) -> HashMap<String, usize> {
    let calls = stand_in.calls().await;
    topics
        .iter()
        .map(|topic| {
            let n = calls
                .iter()
                .filter(|c| String::from_utf8_lossy(&c.body).contains(topic.as_str()))
                .count();
            (topic.clone(), n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_retry_cap_is_given_up_recorded_and_replayed() {
    init_logs();
    let total = 24;
    let broker = MockBroker::with_service_topics();
    let bootstrap = broker.bootstrap_servers();
    let stand_in = GeminiStandIn::answering().await;
    let moto = MotoServer::start().await;
    let table = moto.idempotency_table("qgen-idempotency").await;
    let (api_config, generator_config) = configs(&bootstrap, 1_000, &stand_in.base_url());
    let shutdown = CancellationToken::new();
    let (url, server) = serve_api(&api_config, &shutdown).await;
    let generator = Generator::new(
        GeminiClient::new(&generator_config.gemini, SecretString::from("key")).unwrap(),
        KafkaPublisher::new(&generator_config.kafka).unwrap(),
        &generator_config,
    )
    .with_idempotency(Some(DynamoDbStore::new(
        table,
        "qgen-idempotency",
        Duration::from_secs(3_600),
    )));
    let client = client_config(&generator_config.kafka);
    let emulator = Emulator::new(&client, trigger(2), generator).unwrap();
    let esm = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { emulator.run(shutdown).await }
    });

    // question.response has no leader: every publish of a response fails at the message timeout.
    broker.make_unwritable(RESPONSE, 3);
    let started = Instant::now();
    let ids = (0..total).map(|i| format!("outage-{i}"));
    let posted = post_all(&reqwest::Client::new(), &url, ids).await;
    assert_eq!(
        posted.accepted.len(),
        total,
        "the request topic still works: {posted:?}"
    );
    let failed = read_topic(&bootstrap, FAILED, total, Duration::from_secs(120)).await;
    let given_up_after = started.elapsed();

    // Every record, byte for byte, with Lambda's metadata; the partitions moved on.
    let requests = read_topic(&bootstrap, REQUEST, total, Duration::from_secs(20)).await;
    let by_position: HashMap<(i64, i64), &rdkafka::message::OwnedMessage> = requests
        .iter()
        .map(|m| ((i64::from(m.partition()), m.offset()), m))
        .collect();
    assert_eq!(
        failed.len(),
        total,
        "one failed-topic record per accepted request"
    );
    let mut positions = HashSet::new();
    for message in &failed {
        let record: FailureRecord = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert_eq!(record.request_context.condition, "RetriesExhausted");
        assert_eq!(
            record.request_context.approximate_invoke_count, 3,
            "1 + MaximumRetryAttempts"
        );
        let original = record.originals().unwrap().remove(0);
        let source = by_position[&(original.partition, original.offset)];
        assert_eq!(original.value.as_deref(), source.payload(), "the original value");
        assert_eq!(original.key.as_deref(), source.key(), "the original key");
        assert_eq!(message.key(), source.key(), "produced with the original key");
        positions.insert((original.partition, original.offset));
    }
    assert_eq!(positions.len(), total);
    let moved_on = progress(&bootstrap);
    assert!(
        moved_on.iter().all(|(committed, end)| committed == end),
        "{moved_on:?}"
    );
    let generated = stand_in.calls().await.len();
    assert_eq!(
        generated, total,
        "retries re-publish the stored answer, they do not generate"
    );

    // The outage ends; an operator replays, and (by mistake) replays again.
    broker.make_writable(RESPONSE, 3);
    let publisher = KafkaPublisher::new(&api_config.kafka).unwrap();
    let options = ReplayOptions {
        from: FAILED.into(),
        to: REQUEST.into(),
        dry_run: false,
        filter: ReplayFilter::default(),
    };
    let client = client_config(&api_config.kafka);
    let first = replay(&client, DefaultConsumerContext, &publisher, &options)
        .await
        .unwrap();
    let second = replay(&client, DefaultConsumerContext, &publisher, &options)
        .await
        .unwrap();
    let accepted: HashSet<String> = posted.accepted.iter().map(|(id, _)| id.clone()).collect();
    let events = read_responses(&bootstrap, &accepted, Duration::from_secs(120)).await;
    shutdown.cancel();
    let _ = server.await;
    esm.await.unwrap().unwrap();

    let mut by_request: HashMap<String, HashSet<String>> = HashMap::new();
    for event in &events {
        by_request
            .entry(event["eventData"]["request_id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(event["eventId"].as_str().unwrap().to_owned());
    }
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|id| !by_request.contains_key(*id))
        .collect();
    let completed = events
        .iter()
        .filter(|e| e["eventData"]["status"] == "completed")
        .count();
    let gemini_calls = stand_in.calls().await.len();
    eprintln!(
        "\nquestion.response unwritable, MaximumRetryAttempts 2: {total} accepted\n  \
         given up to {FAILED}: {} (each after 3 invocations), {:.1} s after the first POST\n  \
         partitions moved on (committed = end): {moved_on:?}\n  \
         replayed: {} then {} again\n  responses: {} ({completed} completed) for {} requests, \
         one eventId each\n  Gemini calls: {gemini_calls} for {total} requests\n  lost: {}\n",
        failed.len(),
        given_up_after.as_secs_f64(),
        first.published,
        second.published,
        events.len(),
        by_request.len(),
        lost.len(),
    );
    assert!(lost.is_empty(), "accepted but never answered: {lost:?}");
    assert_eq!((first.published, second.published), (total, total));
    assert!(
        by_request.values().all(|ids| ids.len() == 1),
        "duplicates share their eventId"
    );
    assert_eq!(
        completed,
        events.len(),
        "every response is the stored completed answer"
    );
    assert_eq!(
        gemini_calls, total,
        "replays are answered from the idempotency store"
    );
}

/// Publishes through a real producer, except that the first response for each request of
/// `refuse` fails, as a partition leader moving away would make it.
struct FailsOnce {
    inner: KafkaPublisher,
    refuse: Mutex<HashSet<String>>,
}

impl EventPublisher for FailsOnce {
    async fn publish(&self, record: OutboundRecord<'_>) -> Result<Delivered, PublishError> {
        let key = record
            .key
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        if record.topic == RESPONSE && self.refuse.lock().unwrap().remove(&key) {
            return Err(PublishError::TimedOut(Duration::ZERO));
        }
        self.inner.publish(record).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_partition_cannot_publish_only_it_is_redelivered_from_its_first_unanswered_record() {
    init_logs();
    let broker = MockBroker::with_service_topics();
    let bootstrap = broker.bootstrap_servers();
    let stand_in = GeminiStandIn::answering().await;
    let (_, generator_config) = configs(&bootstrap, 5_000, &stand_in.base_url());
    let mut ids = Vec::new();
    for partition in 0..3 {
        for n in 0..3 {
            let id = format!("p{partition}-{n}");
            produce_request(&bootstrap, partition, &id, &format!("Topic {id}"), None).await;
            ids.push(id);
        }
    }
    let publisher = FailsOnce {
        inner: KafkaPublisher::new(&generator_config.kafka).unwrap(),
        refuse: Mutex::new(HashSet::from(["p2-1".to_owned()])),
    };
    let generator = Generator::new(
        GeminiClient::new(&generator_config.gemini, SecretString::from("key")).unwrap(),
        publisher,
        &generator_config,
    );
    // One batch holds all nine records.
    let mut esm = trigger(2);
    esm.batching_window = Duration::from_millis(500);
    let emulator = Emulator::new(&client_config(&generator_config.kafka), esm, generator).unwrap();
    let shutdown = CancellationToken::new();
    let expected: HashSet<String> = ids.iter().cloned().collect();

    let (result, events) = tokio::join!(emulator.run(shutdown.clone()), async {
        let events = read_responses(&bootstrap, &expected, Duration::from_secs(60)).await;
        shutdown.cancel();
        events
    });
    result.unwrap();

    let answered: HashSet<&str> = events
        .iter()
        .map(|e| e["eventData"]["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(answered.len(), 9, "every request answered: {answered:?}");
    let topics: Vec<String> = ids.iter().map(|id| format!("Topic {id}")).collect();
    let calls = calls_by_topic(&stand_in, &topics).await;
    let twice: Vec<&str> = ids
        .iter()
        .filter(|id| calls[&format!("Topic {id}")] == 2)
        .map(String::as_str)
        .collect();
    assert_eq!(
        twice,
        ["p2-1", "p2-2"],
        "only partition 2 from its first unanswered record is generated again: {calls:?}"
    );
    assert!(
        ids.iter()
            .all(|id| (1..=2).contains(&calls[&format!("Topic {id}")])),
        "{calls:?}"
    );
    let moved_on = progress(&bootstrap);
    assert_eq!(moved_on, [(3, 3), (3, 3), (3, 3)]);
    let p2_1: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventData"]["request_id"] == "p2-1")
        .collect();
    assert_eq!(p2_1.len(), 1, "its one response, published on the redelivery");
}

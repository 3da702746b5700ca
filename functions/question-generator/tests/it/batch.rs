//! The generator handler driven by the MSK samples in `events/`, with the Gemini client talking
//! to a local HTTP stand-in: every request answered, poison dead-lettered, the concurrency
//! bound, and a real broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use qgen_adapters::kafka::KafkaPublisher;
use qgen_adapters::msk::record_json;
use qgen_contract::events::{GenerationRequest, Question, response_event_id};
use qgen_contract::msk::kafka_event;
use qgen_testkit::{
    GeminiStandIn, MockBroker, RecordingPublisher, message_header, read_topic, response_request_ids,
    sample_questions,
};
use question_generator::handler::{BatchReport, Generator};
use question_generator::source::{GenerationError, QuestionSource};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::batches::{POISON, TWO_PARTITIONS, batch, config, gemini, request_message, responses};
use crate::support::later;

#[tokio::test]
async fn answers_every_request_of_a_two_partition_batch() {
    let stand_in = GeminiStandIn::answering().await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);

    let report = generator.handle(&batch(TWO_PARTITIONS), later()).await;

    assert_eq!(
        report,
        BatchReport {
            records: 4,
            completed: 3,
            failed: 1,
            dead_lettered: 0,
            ..BatchReport::default()
        }
    );
    assert_eq!(
        stand_in.calls().await.len(),
        3,
        "the invalid request never reaches Gemini"
    );
    let responses = responses(&publisher);
    for (request_id, n, difficulty) in [
        ("req-101", 3, "easy"),
        ("req-102", 2, "medium"),
        ("req-103", 4, "hard"),
    ] {
        let record = &responses[request_id];
        let event = record.json();
        assert_eq!(event["eventType"], "question.generation.response");
        assert_eq!(event["userId"], "ai-service");
        let request_event_id = format!("evt_qgen_request_{}", request_id.replace('-', ""));
        assert_eq!(event["eventId"], response_event_id(&request_event_id));
        assert_eq!(record.header("eventId"), event["eventId"].as_str());
        let data = &event["eventData"];
        assert_eq!(data["status"], "completed", "{data}");
        assert_eq!(data["total_questions"], n);
        assert_eq!(data["questions"].as_array().unwrap().len(), n);
        assert!(
            data["questions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|q| q["difficulty"] == difficulty)
        );
        assert!(data.get("error").is_none());
    }
    let invalid = responses["req-104"].json();
    assert_eq!(invalid["eventData"]["status"], "failed");
    assert_eq!(invalid["eventData"]["error"]["code"], "invalid_request");
    assert_eq!(invalid["eventData"]["error"]["retryable"], false);
    assert!(
        invalid["eventData"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("topic")
    );
    assert_eq!(invalid["eventData"]["questions"], json!([]));
}

#[tokio::test]
async fn sends_poison_to_the_dlq_and_still_answers_the_records_after_it() {
    let stand_in = GeminiStandIn::answering().await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);

    let report = generator.handle(&batch(POISON), later()).await;

    assert_eq!((report.completed, report.failed, report.dead_lettered), (2, 0, 3));
    let responses = responses(&publisher);
    assert_eq!(responses["req-201"].json()["eventData"]["status"], "completed");
    assert_eq!(responses["req-204"].json()["eventData"]["status"], "completed");
    let dlq = publisher.on_topic("question.request.dlq");
    let offsets: Vec<&str> = dlq
        .iter()
        .map(|r| r.header("dlq-source-offset").unwrap())
        .collect();
    let mut sorted = offsets.clone();
    sorted.sort();
    assert_eq!(sorted, ["10", "8", "9"]);
    for record in &dlq {
        assert_eq!(record.header("dlq-source-topic"), Some("question.request"));
        assert_eq!(record.header("dlq-source-partition"), Some("2"));
        assert!(!record.header("dlq-error").unwrap().is_empty());
    }
    let not_json = dlq
        .iter()
        .find(|r| r.header("dlq-source-offset") == Some("8"))
        .unwrap();
    assert_eq!(not_json.payload.as_deref(), Some(&b"this is not json at all"[..]));
    assert_eq!(not_json.key_str(), Some("req-202"));
    let no_value = dlq
        .iter()
        .find(|r| r.header("dlq-source-offset") == Some("9"))
        .unwrap();
    assert_eq!(
        (no_value.payload.as_deref(), no_value.key.as_deref()),
        (None, None)
    );
}

#[tokio::test]
async fn names_each_partition_from_its_first_record_when_nothing_can_be_published() {
    let stand_in = GeminiStandIn::answering().await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let generator = Generator::new(gemini(&config), RecordingPublisher::failing(), &config);

    let report = generator.handle(&batch(TWO_PARTITIONS), later()).await;

    assert_eq!((report.unpublished, report.records), (4, 4));
    assert_eq!(
        serde_json::to_value(report.response()).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-0", "offset": 41}},
            {"itemIdentifier": {"topic-partition": "question.request-1", "offset": 17}},
        ]})
    );
}

/// A source that records how many calls run at once.
struct SlowSource {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    delay: Duration,
}

impl QuestionSource for SlowSource {
    async fn generate(
        &self,
        request: &GenerationRequest,
        _deadline: Instant,
    ) -> Result<Vec<Question>, GenerationError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(sample_questions(
            &request.topic,
            request.num_questions as usize,
            request.difficulty,
        ))
    }
}

#[tokio::test]
async fn runs_at_most_generation_concurrency_requests_at_once() {
    let records: Vec<Value> = (0..8)
        .map(|i| record_json(&request_message(i % 3, i as i64, &format!("req-{i}"))))
        .collect();
    let event = kafka_event(records, "arn:aws:kafka:local", "127.0.0.1:9092");
    let source = Arc::new(SlowSource {
        in_flight: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        delay: Duration::from_millis(100),
    });
    let config = config("unused:9092", "http://127.0.0.1:9", 3);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(source.clone(), &publisher, &config);

    let report = generator.handle(&event, later()).await;

    assert_eq!(report.completed, 8);
    // Three at once at the peak, never more: concurrent, and bounded. (A wall-clock bound on
    // the batch would say the same less surely on a loaded machine.)
    assert_eq!(source.peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn publishes_responses_and_dead_letters_to_a_real_broker() {
    let broker = MockBroker::with_service_topics();
    let stand_in = GeminiStandIn::answering().await;
    let config = config(&broker.bootstrap_servers(), &stand_in.base_url(), 16);
    let generator = Generator::new(
        gemini(&config),
        KafkaPublisher::new(&config.kafka).unwrap(),
        &config,
    );

    let report = generator.handle(&batch(POISON), later()).await;

    assert_eq!((report.completed, report.dead_lettered), (2, 3));
    let bootstrap = broker.bootstrap_servers();
    let responses = read_topic(&bootstrap, "question.response", 2, Duration::from_secs(10)).await;
    assert_eq!(response_request_ids(&responses), ["req-201", "req-204"]);
    assert!(
        responses
            .iter()
            .all(|m| message_header(m, "eventType").as_deref() == Some("question.generation.response"))
    );
    let dead = read_topic(&bootstrap, "question.request.dlq", 3, Duration::from_secs(10)).await;
    assert_eq!(dead.len(), 3);
    assert!(
        dead.iter()
            .all(|m| message_header(m, "dlq-source-topic").as_deref() == Some("question.request"))
    );
}

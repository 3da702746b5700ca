//! The generator handler driven by the MSK samples in `events/`, with the Gemini client talking
//! to a local HTTP stand-in, and publishing to a recording publisher or a real broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen::config::{GeneratorConfig, Secret};
use qgen::events::{Difficulty, GenerationRequest, Question, RequestEvent, response_event_id};
use qgen::kafka::KafkaPublisher;
use qgen::msk::{kafka_event, record_json};
use qgen::testing::{
    GeminiStandIn, MockBroker, PublishedRecord, RecordingPublisher, assert_matches_schema, message_header,
    message_json, read_topic, sample_questions,
};
use question_generator::gemini::GeminiClient;
use question_generator::handler::{BatchReport, Generator};
use question_generator::source::{GenerationError, QuestionSource};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::ResponseTemplate;

const TWO_PARTITIONS: &str = include_str!("../../../events/msk-batch-two-partitions.json");
const POISON: &str = include_str!("../../../events/msk-batch-poison.json");

fn config(bootstrap: &str, gemini_url: &str, concurrency: usize) -> GeneratorConfig {
    let vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
        ("GEMINI_BASE_URL", gemini_url.to_owned()),
        ("GEMINI_TIMEOUT_MS", "2000".to_owned()),
        ("GENERATION_CONCURRENCY", concurrency.to_string()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "5000".to_owned()),
    ]);
    GeneratorConfig::from_lookup(|var| vars.get(var).cloned()).unwrap()
}

fn gemini(config: &GeneratorConfig) -> GeminiClient {
    GeminiClient::new(&config.gemini, Secret::new("test-key")).unwrap()
}

fn batch(json: &str) -> KafkaEvent {
    serde_json::from_str(json).expect("sample MSK event parses")
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// The response records, by request_id; each checked against the documented schema.
fn responses(publisher: &RecordingPublisher) -> HashMap<String, PublishedRecord> {
    publisher
        .on_topic("question.response")
        .into_iter()
        .inspect(|r| assert_matches_schema("response-event.schema.json", &r.json()))
        .map(|r| (r.key_str().unwrap().to_owned(), r))
        .collect()
}

#[tokio::test]
async fn answers_every_request_of_a_two_partition_batch() {
    let stand_in = GeminiStandIn::answering().await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);

    let report = generator.handle(&batch(TWO_PARTITIONS), later()).await.unwrap();

    assert_eq!(
        report,
        BatchReport {
            records: 4,
            completed: 3,
            failed: 1,
            dead_lettered: 0
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

    let report = generator.handle(&batch(POISON), later()).await.unwrap();

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
async fn returns_err_so_the_batch_is_retried_when_responses_cannot_be_published() {
    let stand_in = GeminiStandIn::answering().await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let generator = Generator::new(gemini(&config), RecordingPublisher::failing(), &config);

    let error = generator
        .handle(&batch(TWO_PARTITIONS), later())
        .await
        .unwrap_err();

    assert_eq!((error.failures, error.records), (4, 4));
}

#[tokio::test]
async fn maps_gemini_failures_to_failed_responses_with_stable_codes() {
    for (reply, code, retryable) in [
        (ResponseTemplate::new(500), "gemini_unavailable", true),
        (ResponseTemplate::new(429), "gemini_unavailable", true),
        (
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": 404, "message": "models/x is not found"}})),
            "gemini_rejected",
            false,
        ),
        (
            ResponseTemplate::new(200).set_body_string("{\"candidates\": []}"),
            "invalid_model_output",
            true,
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_secs(5)),
            "gemini_unavailable",
            true,
        ),
    ] {
        let stand_in = GeminiStandIn::start(reply).await;
        let config = config("unused:9092", &stand_in.base_url(), 16);
        let publisher = RecordingPublisher::new();
        let generator = Generator::new(gemini(&config), &publisher, &config);

        let report = generator.handle(&batch(TWO_PARTITIONS), later()).await.unwrap();

        assert_eq!((report.completed, report.failed), (0, 4), "{code}");
        let event = responses(&publisher)["req-101"].json();
        let error = &event["eventData"]["error"];
        assert_eq!(error["code"], code);
        assert_eq!(error["retryable"], retryable, "{code}");
        assert!(!error.to_string().contains("test-key"));
    }
}

#[tokio::test]
async fn gives_up_at_the_deadline_and_still_publishes_a_failed_response() {
    let stand_in = GeminiStandIn::start(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);
    // The generator keeps message timeout + 0.5 s for publishing: 7 s leaves it 1.5 s.
    let started = Instant::now();

    let report = generator
        .handle(&batch(TWO_PARTITIONS), Instant::now() + Duration::from_secs(7))
        .await
        .unwrap();

    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.failed, 4);
    let event = responses(&publisher)["req-101"].json();
    assert!(
        ["deadline_exceeded", "gemini_unavailable"]
            .contains(&event["eventData"]["error"]["code"].as_str().unwrap())
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

fn request_message(partition: i32, offset: i64, request_id: &str) -> OwnedMessage {
    let event = RequestEvent::new_request(GenerationRequest {
        request_id: request_id.to_owned(),
        topic: format!("Topic {offset}"),
        num_questions: 1,
        difficulty: Difficulty::Easy,
    });
    OwnedMessage::new(
        Some(serde_json::to_vec(&event).unwrap()),
        Some(request_id.as_bytes().to_vec()),
        "question.request".into(),
        rdkafka::Timestamp::CreateTime(1_795_773_600_000),
        partition,
        offset,
        Some(OwnedHeaders::new().insert(Header {
            key: "eventType",
            value: Some("question.generation.request"),
        })),
    )
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
    let started = Instant::now();

    let report = generator.handle(&event, later()).await.unwrap();

    assert_eq!(report.completed, 8);
    assert_eq!(source.peak.load(Ordering::SeqCst), 3);
    // ceil(8 / 3) rounds of 100 ms: concurrent, not one at a time (800 ms).
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
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

    let report = generator.handle(&batch(POISON), later()).await.unwrap();

    assert_eq!((report.completed, report.dead_lettered), (2, 3));
    let bootstrap = broker.bootstrap_servers();
    let responses = read_topic(&bootstrap, "question.response", 2, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = responses
        .iter()
        .map(|m| {
            message_json(m)["eventData"]["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["req-201", "req-204"]);
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

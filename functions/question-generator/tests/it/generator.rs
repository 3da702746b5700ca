//! The generator handler driven by the MSK samples in `events/`, with the Gemini client talking
//! to a local HTTP stand-in, and publishing to a recording publisher or a real broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_adapters::msk::record_json;
use qgen_adapters::secrets::SecretsClient;
use qgen_adapters::telemetry;
use qgen_contract::events::{Difficulty, GenerationRequest, Question, RequestEvent, response_event_id};
use qgen_contract::msk::kafka_event;
use qgen_contract::trace::TraceContext;
use qgen_contract::validation::validate_questions;
use qgen_testkit::{
    AnswersAsAsked, GeminiStandIn, MockBroker, MotoServer, PublishedRecord, RecordingPublisher,
    assert_matches_schema, gemini_error, gemini_reply, message_header, read_topic, response_request_ids,
    sample_questions,
};
use question_generator::config::{ApiKeySource, GeneratorConfig};
use question_generator::gemini::{GeminiClient, api_key};
use question_generator::handler::{BatchReport, Generator};
use question_generator::source::{GenerationError, QuestionSource};
use rdkafka::Message;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

const TWO_PARTITIONS: &str = include_str!("../../../../events/msk-batch-two-partitions.json");
const POISON: &str = include_str!("../../../../events/msk-batch-poison.json");

/// Fast Gemini settings: millisecond backoff, three attempts, and a breaker that stays out of
/// the way (it has tests of its own in `tests/gemini.rs`).
pub(super) fn config(bootstrap: &str, gemini_url: &str, concurrency: usize) -> GeneratorConfig {
    config_with(bootstrap, gemini_url, concurrency, &[])
}

fn config_with(
    bootstrap: &str,
    gemini_url: &str,
    concurrency: usize,
    overrides: &[(&'static str, &str)],
) -> GeneratorConfig {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
        ("GEMINI_BASE_URL", gemini_url.to_owned()),
        ("GEMINI_TIMEOUT_MS", "2000".to_owned()),
        ("GENERATION_CONCURRENCY", concurrency.to_string()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "5000".to_owned()),
        ("GEMINI_MAX_ATTEMPTS", "3".to_owned()),
        ("GEMINI_BACKOFF_BASE_MS", "1".to_owned()),
        ("GEMINI_BACKOFF_MAX_MS", "5".to_owned()),
        ("GEMINI_BREAKER_THRESHOLD", "1000".to_owned()),
    ]);
    vars.extend(overrides.iter().map(|(k, v)| (*k, (*v).to_owned())));
    GeneratorConfig::from_lookup(|var| vars.get(var).cloned()).unwrap()
}

pub(super) fn gemini(config: &GeneratorConfig) -> GeminiClient {
    GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap()
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

#[tokio::test]
async fn maps_gemini_failures_to_failed_responses_with_stable_codes() {
    // Three requests of the batch reach Gemini: transient failures are tried three times each,
    // unusable answers twice (one repair), rejections once.
    for (reply, code, retryable, calls) in [
        (ResponseTemplate::new(500), "gemini_unavailable", true, 9),
        (ResponseTemplate::new(429), "gemini_unavailable", true, 9),
        (
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": 404, "message": "models/x is not found"}})),
            "gemini_rejected",
            false,
            3,
        ),
        (
            ResponseTemplate::new(200).set_body_string("{\"candidates\": []}"),
            "invalid_model_output",
            true,
            6,
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_secs(1)),
            "gemini_unavailable",
            true,
            9,
        ),
    ] {
        let stand_in = GeminiStandIn::start(reply).await;
        let config = config_with(
            "unused:9092",
            &stand_in.base_url(),
            16,
            &[("GEMINI_TIMEOUT_MS", "200")],
        );
        let publisher = RecordingPublisher::new();
        let generator = Generator::new(gemini(&config), &publisher, &config);

        let report = generator.handle(&batch(TWO_PARTITIONS), later()).await;

        assert_eq!((report.completed, report.failed), (0, 4), "{code}");
        assert_eq!(stand_in.calls().await.len(), calls, "{code}");
        let event = responses(&publisher)["req-101"].json();
        let error = &event["eventData"]["error"];
        assert_eq!(error["code"], code);
        assert_eq!(error["retryable"], retryable, "{code}");
        assert!(!error.to_string().contains("test-key"));
    }
}

#[tokio::test]
async fn a_used_up_daily_quota_answers_the_whole_batch_after_one_call() {
    let stand_in =
        GeminiStandIn::start(gemini_error::response(429, gemini_error::per_day_quota("30s"))).await;
    // One at a time, so every request after the first meets the open breaker.
    let config = config("unused:9092", &stand_in.base_url(), 1);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);

    let report = generator.handle(&batch(TWO_PARTITIONS), later()).await;

    assert_eq!((report.completed, report.failed), (0, 4));
    assert_eq!(
        stand_in.calls().await.len(),
        1,
        "three requests reach Gemini; one call"
    );
    let responses = responses(&publisher);
    assert_eq!(
        responses["req-104"].json()["eventData"]["error"]["code"],
        "invalid_request"
    );
    for request_id in ["req-101", "req-102", "req-103"] {
        let error = &responses[request_id].json()["eventData"]["error"];
        assert_eq!(
            (&error["code"], &error["retryable"]),
            (&json!("gemini_quota_exhausted"), &json!(true)),
            "{request_id}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("GenerateRequestsPerDayPerProjectPerModel"),
            "{message}"
        );
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
        .await;

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

pub(super) fn request_message(partition: i32, offset: i64, request_id: &str) -> OwnedMessage {
    let event = RequestEvent::new_request(GenerationRequest {
        request_id: request_id.to_owned(),
        topic: format!("Topic {offset}"),
        num_questions: 1,
        difficulty: Difficulty::Easy,
        context: None,
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

#[tokio::test]
async fn each_response_continues_its_requests_trace_and_meters_request_to_response() {
    let metrics = telemetry::capture();
    let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let messages = [
        with_traceparent(request_message(0, 1, "req-traced"), traced),
        request_message(0, 2, "req-untraced"),
        with_traceparent(request_message(1, 3, "req-malformed"), "00-not-a-trace-01"),
    ];
    let requested_at: HashMap<String, SystemTime> = messages
        .iter()
        .map(|m| {
            let event: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
            (
                event["eventData"]["request_id"].as_str().unwrap().to_owned(),
                at.into(),
            )
        })
        .collect();
    let event = kafka_event(
        messages.iter().map(record_json),
        "arn:aws:kafka:local",
        "127.0.0.1:9092",
    );
    let stand_in = GeminiStandIn::answering().await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);

    let report = generator.handle(&event, later()).await;

    assert_eq!(report.completed, 3);
    let responses = responses(&publisher);
    let header = |id: &str| responses[id].header("traceparent").unwrap().to_owned();
    let trace_id = |id: &str| {
        TraceContext::parse(&header(id))
            .expect("a valid traceparent")
            .trace_id()
    };
    assert_eq!(trace_id("req-traced"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(header("req-traced"), traced, "a span of the generator's own");
    assert!(
        !header("req-malformed").contains("not-a-trace"),
        "replaced, not propagated"
    );
    assert_ne!(trace_id("req-untraced"), trace_id("req-malformed"));
    // The timeline headers: the invocation that answered, and the one Gemini call each made.
    for id in ["req-traced", "req-untraced", "req-malformed"] {
        let invoked = responses[id].header("qgen-batch-invoked-at").unwrap();
        let invoked: SystemTime = chrono::DateTime::parse_from_rfc3339(invoked).unwrap().into();
        assert!(invoked >= requested_at[id] - Duration::from_millis(1) && invoked <= responses[id].acked_at);
        assert_eq!(responses[id].header("qgen-gemini-calls"), Some("1"), "{id}");
        assert_eq!(
            responses[id].header("qgen-gemini-model"),
            Some("gemini-3.6-flash"),
            "{id}"
        );
        assert!(
            responses[id]
                .header("qgen-gemini-ms")
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
    }
    // One latency record per response: from the request's timestamp to the acknowledgement.
    let latencies: Vec<Value> = metrics
        .records()
        .into_iter()
        .filter(|r| r.get("RequestToResponse").is_some())
        .collect();
    assert_eq!(latencies.len(), 3, "{latencies:?}");
    for record in latencies {
        let request_id = record["request_id"].as_str().unwrap();
        assert_eq!(record["Outcome"], "completed");
        assert_eq!(record["trace_id"], trace_id(request_id).as_str());
        let expected = responses[request_id]
            .acked_at
            .duration_since(requested_at[request_id])
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let measured = record["RequestToResponse"].as_f64().unwrap();
        assert!(
            (measured - expected).abs() <= 1.0,
            "{request_id}: {measured} ms, records say {expected} ms"
        );
    }
}

/// `message` with a `traceparent` header added.
fn with_traceparent(mut message: OwnedMessage, traceparent: &str) -> OwnedMessage {
    let headers = message.detach_headers().unwrap_or_default().insert(Header {
        key: "traceparent",
        value: Some(traceparent),
    });
    message.replace_headers(Some(headers))
}

/// A batch of `n` requests for one easy question each, "Topic 0" to "Topic n-1" (`req-0`…),
/// spread over three partitions.
fn numbered_batch(n: usize) -> KafkaEvent {
    let records: Vec<Value> = (0..n)
        .map(|i| record_json(&request_message((i % 3) as i32, i as i64, &format!("req-{i}"))))
        .collect();
    kafka_event(records, "arn:aws:kafka:local", "127.0.0.1:9092")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Answer,
    TooManyRequests,
    Unavailable,
    Malformed,
}

/// Gemini on a bad day, deterministic whatever the order the calls arrive in: what call `n` for
/// "Topic k" gets is `script(k)[n]` (the last step repeats). Over the 20 requests of
/// [`numbered_batch`] that is 30 calls: 9 (30 %) fail with 429 or 503 and 3 (10 %) are
/// malformed JSON; 18 requests end `completed`, `req-11` never gets past the 503s and `req-18`
/// is malformed even after the repair call.
fn script(k: usize) -> &'static [Reply] {
    use Reply::*;
    match k {
        1 | 7 | 13 => &[TooManyRequests, Answer],
        4 | 10 | 16 => &[Unavailable, Answer],
        8 => &[Malformed, Answer],
        11 => &[Unavailable],
        18 => &[Malformed],
        _ => &[Answer],
    }
}

#[derive(Default)]
struct BadDay {
    calls_by_topic: Mutex<HashMap<usize, usize>>,
    replies: Mutex<Vec<Reply>>,
}

impl Respond for BadDay {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let parts = body["contents"][0]["parts"].as_array().unwrap();
        let data: Value = serde_json::from_str(parts.last().unwrap()["text"].as_str().unwrap()).unwrap();
        let k: usize = data["topic"].as_str().unwrap()["Topic ".len()..].parse().unwrap();
        let n = {
            let mut calls = self.calls_by_topic.lock().unwrap();
            let n = calls.entry(k).or_default();
            *n += 1;
            *n - 1
        };
        let steps = script(k);
        let reply = steps[n.min(steps.len() - 1)];
        self.replies.lock().unwrap().push(reply);
        match reply {
            Reply::Answer => AnswersAsAsked.respond(request),
            Reply::TooManyRequests => ResponseTemplate::new(429).insert_header("retry-after", "0"),
            Reply::Unavailable => ResponseTemplate::new(503),
            Reply::Malformed => ResponseTemplate::new(200)
                .set_body_json(gemini_reply(r#"{"questions": [{"question": "#, "STOP")),
        }
    }
}

#[tokio::test]
async fn a_batch_on_a_bad_gemini_day_ends_with_one_valid_response_per_request_before_the_deadline() {
    let bad_day = Arc::new(BadDay::default());
    let stand_in = GeminiStandIn::start(SharedResponder(bad_day.clone())).await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);
    // 5.5 s are kept for publishing (message timeout + 0.5 s): generation gets 3 s.
    let deadline = Instant::now() + Duration::from_millis(8_500);

    let report = generator.handle(&numbered_batch(20), deadline).await;

    assert!(Instant::now() < deadline, "the batch overran its deadline");
    assert_eq!(
        report,
        BatchReport {
            records: 20,
            completed: 18,
            failed: 2,
            dead_lettered: 0,
            ..BatchReport::default()
        }
    );
    let replies = bad_day.replies.lock().unwrap().clone();
    let count = |r: Reply| replies.iter().filter(|&&x| x == r).count();
    assert_eq!(replies.len(), 30);
    assert_eq!(count(Reply::TooManyRequests) + count(Reply::Unavailable), 9);
    assert_eq!(count(Reply::Malformed), 3);
    let published = publisher.on_topic("question.response");
    assert_eq!(published.len(), 20, "exactly one response per request");
    let responses = responses(&publisher);
    assert_eq!(responses.len(), 20);
    for k in 0..20 {
        let data = responses[&format!("req-{k}")].json()["eventData"].clone();
        match k {
            11 => assert_eq!(data["error"]["code"], "gemini_unavailable", "{data}"),
            18 => assert_eq!(data["error"]["code"], "invalid_model_output", "{data}"),
            _ => {
                assert_eq!(data["status"], "completed", "req-{k}: {data}");
                let questions: Vec<Question> = serde_json::from_value(data["questions"].clone()).unwrap();
                let request = GenerationRequest {
                    request_id: format!("req-{k}"),
                    topic: format!("Topic {k}"),
                    num_questions: 1,
                    difficulty: Difficulty::Easy,
                    context: None,
                };
                assert_eq!(validate_questions(&questions, &request), Ok(()), "req-{k}");
                continue;
            }
        }
        assert_eq!(data["status"], "failed");
        assert_eq!(data["questions"], json!([]));
        assert_eq!(data["error"]["retryable"], true);
    }
}

/// Lets a test keep a handle on a responder the stand-in owns.
struct SharedResponder<R>(Arc<R>);

impl<R: Respond> Respond for SharedResponder<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}

#[tokio::test]
async fn the_api_key_never_appears_in_anything_the_generator_logs() {
    let key = "AIzaSy-never-log-this-key-0042";
    let moto = MotoServer::start().await;
    let arn = moto.create_secret("qgen/gemini", key).await;
    let stand_in = GeminiStandIn::start(BadDay::default()).await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let (logs, _logging) = qgen_testkit::capture_logs();

    // What the function does from cold start on: fetch the key, then answer a batch with
    // successes, retries, repairs and failures.
    let key_source = ApiKeySource::SecretArn(arn);
    let api_key = api_key(&key_source, async { SecretsClient::new(moto.secrets_manager()) })
        .await
        .unwrap();
    let generator = Generator::new(
        GeminiClient::new(&config.gemini, api_key).unwrap(),
        &publisher,
        &config,
    );
    let report = generator.handle(&numbered_batch(20), later()).await;

    let text = logs.text();
    assert_eq!((report.completed, report.failed), (18, 2));
    assert_eq!(
        stand_in.calls().await[0].headers.get("x-goog-api-key").unwrap(),
        key
    );
    for expected in [
        "secret fetched",
        "gemini answered",
        "retrying gemini",
        "asking gemini to repair",
        "generation failed",
        "generation completed",
        "gemini answered with an error status",
        "gemini_calls=2",
        "total_tokens=",
    ] {
        assert!(text.contains(expected), "no {expected:?} in the logs:\n{text}");
    }
    assert!(!text.contains(key), "the API key was logged:\n{text}");
    assert!(!text.contains("never-log-this"), "part of the API key was logged");
}

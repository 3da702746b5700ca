//! The invocation's time as Lambda gives it: the runtime API's `Lambda-Runtime-Deadline-Ms`
//! header (milliseconds since the epoch), read by `lambda_runtime` into `Context.deadline` and
//! by [`Generator::invoke`] into the batch's budget: generation stops the publish reserve
//! (`KAFKA_MESSAGE_TIMEOUT_MS` + 0.5 s) before it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Context, LambdaEvent};
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::kafka_event;
use qgen_testkit::{AnswersAsAsked, GeminiStandIn, RecordingPublisher};
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use question_generator::idempotency::epoch_millis;
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::SecretString;
use serde_json::Value;
use wiremock::{Request, Respond, ResponseTemplate};

/// The invocation the runtime hands the handler when the runtime API sent `deadline_ms` as
/// `Lambda-Runtime-Deadline-Ms`: the header goes through `lambda_runtime`'s own parsing.
pub(super) fn invocation(payload: KafkaEvent, deadline_ms: u64) -> LambdaEvent<KafkaEvent> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static("invocation-1"),
    );
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline_ms));
    let context = Context::new(
        "invocation-1",
        Arc::new(lambda_runtime::Config::default()),
        &headers,
    )
    .unwrap();
    assert_eq!(context.deadline, deadline_ms);
    LambdaEvent::new(payload, context)
}

/// Epoch milliseconds `offset_ms` from now (negative: in the past), as Lambda sends a deadline.
pub(super) fn epoch_ms_from_now(offset_ms: i64) -> u64 {
    epoch_millis(SystemTime::now()).saturating_add_signed(offset_ms)
}

/// The generator with a publish reserve of `message_timeout_ms` + 0.5 s and no idempotency
/// store, which answers every request when its time is up: these tests are about the budget, so
/// no request is held for Gemini (`GEMINI_MAX_WAIT_SECONDS` 0; holding has its own tests, and
/// [`holding_generator`] keeps the default).
fn generator<'a>(
    stand_in: &GeminiStandIn,
    publisher: &'a RecordingPublisher,
    message_timeout_ms: u64,
) -> Generator<GeminiClient, &'a RecordingPublisher> {
    generator_with(stand_in, publisher, message_timeout_ms, Some("0"))
}

/// [`generator`] with the shipped maximum wait: a request cut short while it may wait is held.
fn holding_generator<'a>(
    stand_in: &GeminiStandIn,
    publisher: &'a RecordingPublisher,
    message_timeout_ms: u64,
) -> Generator<GeminiClient, &'a RecordingPublisher> {
    generator_with(stand_in, publisher, message_timeout_ms, None)
}

fn generator_with<'a>(
    stand_in: &GeminiStandIn,
    publisher: &'a RecordingPublisher,
    message_timeout_ms: u64,
    max_wait_seconds: Option<&str>,
) -> Generator<GeminiClient, &'a RecordingPublisher> {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", "unused:9092".to_owned()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", message_timeout_ms.to_string()),
        ("GEMINI_BASE_URL", stand_in.base_url()),
        ("GEMINI_TIMEOUT_MS", "20000".to_owned()),
        ("GEMINI_MAX_ATTEMPTS", "3".to_owned()),
        ("GEMINI_BREAKER_THRESHOLD", "1000".to_owned()),
    ]);
    if let Some(seconds) = max_wait_seconds {
        vars.insert("GEMINI_MAX_WAIT_SECONDS", seconds.to_owned());
    }
    let config = GeneratorConfig::from_lookup(|var| vars.get(var).cloned()).unwrap();
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    Generator::new(gemini, publisher, &config)
}

fn request(request_id: &str, topic: &str) -> GenerationRequest {
    GenerationRequest {
        request_id: request_id.to_owned(),
        topic: topic.to_owned(),
        num_questions: 2,
        difficulty: Difficulty::Easy,
        context: None,
    }
}

fn batch(requests: &[GenerationRequest]) -> KafkaEvent {
    let records: Vec<Value> = requests
        .iter()
        .zip(0_i64..)
        .map(|(request, offset)| {
            let event = RequestEvent::new_request(request.clone());
            record_json(&OwnedMessage::new(
                Some(serde_json::to_vec(&event).unwrap()),
                Some(request.request_id.as_bytes().to_vec()),
                "question.request".into(),
                rdkafka::Timestamp::CreateTime(1_795_773_600_000),
                0,
                offset,
                Some(OwnedHeaders::new()),
            ))
        })
        .collect();
    kafka_event(records, "arn:aws:kafka:local", "127.0.0.1:9092")
}

/// Each request's response event (`eventData`), by `request_id`.
fn answers(publisher: &RecordingPublisher) -> HashMap<String, Value> {
    publisher
        .on_topic("question.response")
        .iter()
        .map(|r| {
            let data = r.json()["eventData"].clone();
            (data["request_id"].as_str().unwrap().to_owned(), data)
        })
        .collect()
}

/// The first call for each topic named in `waits` gets a 503 asking for a retry after that many
/// seconds (`Retry-After`); every other call is answered as asked.
struct BusyOnceThenAnswers {
    waits: Vec<(&'static str, u64)>,
    refused: Mutex<HashSet<&'static str>>,
}

impl Respond for BusyOnceThenAnswers {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body);
        for &(topic, seconds) in &self.waits {
            if body.contains(topic) && self.refused.lock().unwrap().insert(topic) {
                return ResponseTemplate::new(503).insert_header("retry-after", seconds.to_string().as_str());
            }
        }
        AnswersAsAsked.respond(request)
    }
}

#[tokio::test]
async fn a_lambda_deadline_thirty_seconds_away_leaves_gemini_thirty_seconds_less_the_publish_reserve() {
    // KAFKA_MESSAGE_TIMEOUT_MS 25 s: the reserve is 25.5 s, so generation has 4.5 s.
    let stand_in = GeminiStandIn::start(BusyOnceThenAnswers {
        waits: vec![("Short Wait Topic", 1), ("Long Wait Topic", 8)],
        refused: Mutex::new(HashSet::new()),
    })
    .await;
    let publisher = RecordingPublisher::new();
    let generator = generator(&stand_in, &publisher, 25_000);
    let event = batch(&[
        request("req-short", "Short Wait Topic"),
        request("req-long", "Long Wait Topic"),
    ]);

    let report = generator
        .invoke(&invocation(event, epoch_ms_from_now(30_000)))
        .await;

    // A 1 s wait fits in the 4.5 s; an 8 s one does not (it would in 30 s), so it is not
    // waited for and the request fails, retryable, after one call.
    let answers = answers(&publisher);
    assert_eq!((report.completed, report.failed), (1, 1), "{answers:?}");
    assert_eq!(answers["req-short"]["status"], "completed");
    assert_eq!(answers["req-long"]["status"], "failed");
    assert_eq!(answers["req-long"]["error"]["code"], "gemini_unavailable");
    assert_eq!(answers["req-long"]["error"]["retryable"], true);
    assert_eq!(
        stand_in.calls().await.len(),
        3,
        "two calls for req-short, one for req-long"
    );
}

#[tokio::test]
async fn a_lambda_deadline_already_past_leaves_no_time_so_gemini_is_not_called() {
    let stand_in = GeminiStandIn::answering().await;
    let publisher = RecordingPublisher::new();
    let generator = generator(&stand_in, &publisher, 5_000);
    let event = batch(&[request("req-late", "Python Loops")]);

    let report = generator
        .invoke(&invocation(event, epoch_ms_from_now(-1_000)))
        .await;

    assert_eq!(stand_in.calls().await.len(), 0);
    assert_eq!(report.failed, 1);
    let answer = &answers(&publisher)["req-late"];
    assert_eq!(answer["status"], "failed");
    assert_eq!(answer["error"]["code"], "deadline_exceeded");
    assert_eq!(answer["error"]["retryable"], true);
    // A response was still published: the batch is not redelivered for it.
    assert!(report.response.is_success());
}

#[tokio::test]
async fn a_request_the_deadline_cuts_short_while_it_may_still_wait_is_held_not_answered() {
    let stand_in = GeminiStandIn::answering().await;
    let publisher = RecordingPublisher::new();
    let generator = holding_generator(&stand_in, &publisher, 5_000);
    let event = batch(&[request("req-late", "Python Loops")]);

    let report = generator
        .invoke(&invocation(event, epoch_ms_from_now(-1_000)))
        .await;

    // Sent just now, it may wait half an hour: its partition is redelivered from it instead.
    assert_eq!((report.held, report.failed), (1, 0));
    assert_eq!(stand_in.calls().await.len(), 0);
    assert!(publisher.on_topic("question.response").is_empty());
    assert_eq!(
        serde_json::to_value(report.response()).unwrap(),
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-0", "offset": 0}}
        ]})
    );
}

//! The API handler driven by the sample events in `events/`: with a recording publisher for the
//! HTTP contract, and with the real Kafka publisher against a broker for the 202/503 promise.

use std::time::{Duration, Instant};

use lambda_http::{Body, Request, Response};
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_contract::trace::TraceContext;
use qgen_testkit::{
    MockBroker, RecordingPublisher, assert_matches_schema, free_port, message_header, message_json,
    read_topic,
};
use question_api::Api;
use serde_json::{Value, json};

const HTTP_V2: &str = include_str!("../../../../events/api-http-v2.json");
const REST_V1: &str = include_str!("../../../../events/api-rest-v1.json");
const FUNCTION_URL_BASE64: &str = include_str!("../../../../events/api-function-url-base64.json");
const INVALID_NUM_QUESTIONS: &str = include_str!("../../../../events/api-invalid-num-questions.json");
const INVALID_MISSING_TOPIC: &str = include_str!("../../../../events/api-invalid-missing-topic.json");
const INVALID_DIFFICULTY: &str = include_str!("../../../../events/api-invalid-difficulty.json");
const INVALID_JSON: &str = include_str!("../../../../events/api-invalid-json.json");
const WRONG_CONTENT_TYPE: &str = include_str!("../../../../events/api-wrong-content-type.json");
const WRONG_METHOD: &str = include_str!("../../../../events/api-wrong-method.json");

fn config(bootstrap: &str, timeout_ms: u64) -> ApiConfig {
    let timeout = timeout_ms.to_string();
    ApiConfig::from_lookup(|var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.to_owned()),
        "KAFKA_MESSAGE_TIMEOUT_MS" => Some(timeout.clone()),
        _ => None,
    })
    .unwrap()
}

fn request(event_json: &str) -> Request {
    lambda_http::request::from_str(event_json).expect("sample event parses")
}

/// The v2 sample with its body replaced.
fn v2_with_body(body: &str) -> Request {
    let mut event: Value = serde_json::from_str(HTTP_V2).unwrap();
    event["body"] = body.into();
    request(&event.to_string())
}

/// The response's JSON body, checked against the documented schema for its status.
fn body_json(response: &Response<Body>) -> Value {
    let body = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
    let schema = if response.status() == 202 {
        "http-accepted.schema.json"
    } else {
        "http-error.schema.json"
    };
    assert_matches_schema(schema, &body);
    body
}

async fn handle(publisher: &RecordingPublisher, request: Request) -> Response<Body> {
    Api::new(publisher, &config("unused:9092", 1000))
        .handle(request)
        .await
}

#[tokio::test]
async fn accepts_each_kind_of_gateway_event_and_publishes_the_contract_envelope() {
    for (sample, request_id, topic, n, difficulty) in [
        (HTTP_V2, "req-123", "Python Loops", 5, "medium"),
        (REST_V1, "req-rest-1", "SQL Joins", 2, "hard"),
        (FUNCTION_URL_BASE64, "req-b64-1", "Rust Ownership", 3, "easy"),
    ] {
        let publisher = RecordingPublisher::new();

        let response = handle(&publisher, request(sample)).await;

        assert_eq!(response.status(), 202, "{request_id}: {:?}", response.body());
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = body_json(&response);
        assert_eq!(body["status"], "accepted");
        assert_eq!(body["request_id"], request_id);
        let records = publisher.on_topic("question.request");
        assert_eq!(records.len(), 1, "{request_id}");
        let record = &records[0];
        assert_eq!(record.key_str(), Some(request_id));
        assert_eq!(record.header("eventType"), Some("question.generation.request"));
        assert_eq!(record.header("content-type"), Some("application/json"));
        let event = record.json();
        assert_matches_schema("request-event.schema.json", &event);
        assert_eq!(record.header("eventId"), event["eventId"].as_str());
        assert_eq!(body["event_id"], event["eventId"]);
        assert_eq!(event["eventType"], "question.generation.request");
        assert_eq!(event["userId"], "content-service");
        assert!(
            event["eventId"]
                .as_str()
                .unwrap()
                .starts_with("evt_qgen_request_")
        );
        assert_eq!(
            event["eventData"],
            json!({"request_id": request_id, "topic": topic, "num_questions": n, "difficulty": difficulty})
        );
        let keys: Vec<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        // Both samples came through API Gateway with an X-Ray trace id; the function URL without.
        let trace = TraceContext::parse(record.header("traceparent").unwrap()).unwrap();
        if sample != FUNCTION_URL_BASE64 {
            assert_eq!(
                trace.trace_id(),
                "6746f0a03c1b5f9e7d2a4b6c8e0f1a2b",
                "{request_id}"
            );
        }
    }
}

/// The trace id of the `traceparent` on the request record published for an HTTP v2 request
/// with `headers`, and that header itself.
async fn published_trace(headers: &[(&str, &str)]) -> (String, String) {
    let mut event: Value = serde_json::from_str(HTTP_V2).unwrap();
    for (name, value) in headers {
        event["headers"][*name] = (*value).into();
    }
    let publisher = RecordingPublisher::new();
    let response = handle(&publisher, request(&event.to_string())).await;
    assert_eq!(response.status(), 202);
    let header = publisher.on_topic("question.request")[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    let trace = TraceContext::parse(&header).unwrap_or_else(|| panic!("invalid traceparent {header}"));
    (trace.trace_id(), header)
}

#[tokio::test]
async fn the_request_record_continues_the_callers_trace_or_x_ray_or_starts_one() {
    let callers = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let (kept, header) = published_trace(&[("traceparent", callers)]).await;
    assert_eq!(kept, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(header, callers, "a span of the API's own");

    // A malformed traceparent is replaced by the X-Ray trace the sample carries.
    let (replaced, header) = published_trace(&[("traceparent", "00-XYZ-00f067aa0ba902b7-01")]).await;
    assert_eq!(replaced, "6746f0a03c1b5f9e7d2a4b6c8e0f1a2b");
    assert!(!header.contains("XYZ"));

    // With neither, a new trace each time.
    let no_xray = [("x-amzn-trace-id", "not an x-ray header")];
    let (first, _) = published_trace(&no_xray).await;
    let (second, _) = published_trace(&no_xray).await;
    assert_ne!(first, second);
    assert_ne!(first, "6746f0a03c1b5f9e7d2a4b6c8e0f1a2b");
}

#[tokio::test]
async fn rejects_each_invalid_sample_naming_the_field_and_publishes_nothing() {
    for (sample, status, code, field) in [
        (INVALID_NUM_QUESTIONS, 400, "invalid_field", Some("num_questions")),
        (INVALID_MISSING_TOPIC, 400, "missing_field", Some("topic")),
        (INVALID_DIFFICULTY, 400, "invalid_field", Some("difficulty")),
        (INVALID_JSON, 400, "invalid_json", Some("body")),
        (
            WRONG_CONTENT_TYPE,
            415,
            "unsupported_media_type",
            Some("content-type"),
        ),
        (WRONG_METHOD, 405, "method_not_allowed", None),
    ] {
        let publisher = RecordingPublisher::new();

        let response = handle(&publisher, request(sample)).await;

        assert_eq!(response.status(), status, "{code}");
        let error = &body_json(&response)["error"];
        assert_eq!(error["code"], code);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        match field {
            Some(field) => assert_eq!(error["field"], field),
            None => assert!(error.get("field").is_none()),
        }
        assert!(publisher.records().is_empty(), "{code}: published something");
    }
}

#[tokio::test]
async fn returns_405_with_an_allow_header_for_other_methods() {
    let response = handle(&RecordingPublisher::new(), request(WRONG_METHOD)).await;
    assert_eq!(response.headers()["allow"], "POST");
}

#[tokio::test]
async fn returns_413_when_the_body_is_over_64_kib() {
    let body = json!({"topic": "x", "num_questions": 1, "pad": "p".repeat(70_000)}).to_string();
    let publisher = RecordingPublisher::new();

    let response = handle(&publisher, v2_with_body(&body)).await;

    assert_eq!(response.status(), 413);
    assert_eq!(body_json(&response)["error"]["field"], "body");
    assert!(publisher.records().is_empty());
}

#[tokio::test]
async fn json_with_a_charset_or_in_capitals_is_json() {
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        " application/json ;x=1",
    ] {
        let mut event: Value = serde_json::from_str(HTTP_V2).unwrap();
        event["headers"]["content-type"] = content_type.into();
        let publisher = RecordingPublisher::new();

        let response = handle(&publisher, request(&event.to_string())).await;

        assert_eq!(response.status(), 202, "{content_type}");
        assert_eq!(publisher.records().len(), 1);
    }
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_accepted_and_one_byte_more_is_413() {
    let mut body = json!({"topic": "x", "num_questions": 1}).to_string();
    // JSON allows trailing whitespace: the same request, as large as the API takes.
    body.push_str(&" ".repeat(qgen_contract::validation::MAX_BODY_BYTES - body.len()));
    let publisher = RecordingPublisher::new();

    let exact = handle(&publisher, v2_with_body(&body)).await;
    body.push(' ');
    let over = handle(&publisher, v2_with_body(&body)).await;

    assert_eq!((exact.status().as_u16(), over.status().as_u16()), (202, 413));
    assert_eq!(publisher.records().len(), 1);
}

#[tokio::test]
async fn generates_a_request_id_when_absent_and_returns_it() {
    let publisher = RecordingPublisher::new();

    let response = handle(
        &publisher,
        v2_with_body(r#"{"topic":"Recursion","num_questions":1}"#),
    )
    .await;

    assert_eq!(response.status(), 202);
    let id = body_json(&response)["request_id"].as_str().unwrap().to_owned();
    assert!(uuid_like(&id), "{id}");
    assert_eq!(publisher.records()[0].key_str(), Some(id.as_str()));
    assert_eq!(publisher.records()[0].json()["eventData"]["difficulty"], "medium");
}

#[tokio::test]
async fn carries_optional_grounding_context_into_the_request_event() {
    let publisher = RecordingPublisher::new();
    let body = json!({"topic": "Photosynthesis", "num_questions": 2, "context": "Plants turn light into sugar.\nChlorophyll is green."});

    let response = handle(&publisher, v2_with_body(&body.to_string())).await;

    assert_eq!(response.status(), 202);
    assert_eq!(
        publisher.records()[0].json()["eventData"]["context"],
        "Plants turn light into sugar.\nChlorophyll is green."
    );
}

#[tokio::test]
async fn rejects_context_over_20_000_characters_naming_the_field() {
    let publisher = RecordingPublisher::new();
    let body = json!({"topic": "Photosynthesis", "num_questions": 2, "context": "c".repeat(20_001)});

    let response = handle(&publisher, v2_with_body(&body.to_string())).await;

    assert_eq!(response.status(), 400);
    assert_eq!(body_json(&response)["error"]["field"], "context");
    assert!(publisher.records().is_empty());
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}

#[tokio::test]
async fn returns_404_for_another_path() {
    let mut event: Value = serde_json::from_str(HTTP_V2).unwrap();
    event["rawPath"] = "/other".into();
    event["requestContext"]["http"]["path"] = "/other".into();
    let publisher = RecordingPublisher::new();

    let response = handle(&publisher, request(&event.to_string())).await;

    assert_eq!(response.status(), 404);
    assert!(publisher.records().is_empty());
}

#[tokio::test]
async fn returns_503_with_a_retry_after_when_the_publisher_fails() {
    let response = handle(&RecordingPublisher::failing(), request(HTTP_V2)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(body_json(&response)["error"]["code"], "unavailable");
    // The caller is told when to come back; other errors are not worth a retry as they are.
    assert_eq!(response.headers()["retry-after"], "5");
    let refused = handle(&RecordingPublisher::failing(), request(INVALID_DIFFICULTY)).await;
    assert!(refused.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn answers_202_only_after_the_broker_stored_the_record() {
    let broker = MockBroker::with_service_topics();
    let config = config(&broker.bootstrap_servers(), 5_000);
    let api = Api::new(KafkaPublisher::new(&config.kafka).unwrap(), &config);

    let response = api.handle(request(HTTP_V2)).await;

    assert_eq!(response.status(), 202);
    let accepted = body_json(&response);
    let messages = read_topic(
        &broker.bootstrap_servers(),
        "question.request",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(messages.len(), 1);
    let event = message_json(&messages[0]);
    assert_eq!(event["eventId"], accepted["event_id"]);
    assert_eq!(event["eventData"]["request_id"], "req-123");
    assert_eq!(
        message_header(&messages[0], "eventType").as_deref(),
        Some("question.generation.request")
    );
    assert_eq!(
        rdkafka::Message::key(&messages[0]),
        Some(&b"req-123"[..]),
        "record key is the request_id"
    );
}

#[tokio::test]
async fn answers_503_within_the_message_timeout_when_no_broker_listens() {
    let config = config(&format!("127.0.0.1:{}", free_port()), 1_500);
    let api = Api::new(KafkaPublisher::new(&config.kafka).unwrap(), &config);
    let started = Instant::now();

    let response = api.handle(request(HTTP_V2)).await;

    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(body_json(&response)["error"]["code"], "unavailable");
    // Not before the broker had its message timeout (1.5 s) to take the record; not after the
    // API's own bound (message timeout + 1 s) with 3 s to spare for a loaded machine (how late
    // librdkafka's own report can come is measured in tests/e2e/faults/timeouts.rs).
    assert!(elapsed >= Duration::from_millis(1_500), "took {elapsed:?}");
    assert!(elapsed < Duration::from_millis(5_500), "took {elapsed:?}");
}

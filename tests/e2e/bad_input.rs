//! Bad input gets a clear answer and loses nothing (docs/DESIGN.md, promises 3 and 4):
//!
//! - a corpus of malformed HTTP requests, sent over real HTTP to the API server, each answered
//!   with the right 4xx and a JSON error naming the problem, and nothing published;
//! - every kind of poison record on a real broker goes to the DLQ with its source coordinates
//!   and the error, and the records after it on the same partition are still answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::{EventPublisher, KafkaPublisher, OutboundRecord, publish_event};
use qgen_adapters::msk::record_json;
use qgen_contract::api::ApiErrorCode;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::kafka_event;
use qgen_contract::trace::TraceContext;
use qgen_testkit::{GeminiStandIn, MockBroker, message_header, read_topic, response_request_ids};
use question_api::Api;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn config_lookup(vars: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
    move |var| vars.get(var).cloned()
}

/// Records on every partition of `topic` (sum of high watermarks).
fn records_on(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "watermarks")
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

struct Case {
    name: &'static str,
    method: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: ApiErrorCode,
    field: Option<&'static str>,
}

/// A JSON body with one field wrong: 400 `invalid_field` naming it.
fn json_case(name: &'static str, body: Value, field: &'static str) -> Case {
    raw_case(
        name,
        body.to_string().into_bytes(),
        400,
        ApiErrorCode::InvalidField,
        Some(field),
    )
}

/// A JSON body without a required field (absent or null): 400 `missing_field` naming it.
fn missing_case(name: &'static str, body: Value, field: &'static str) -> Case {
    raw_case(
        name,
        body.to_string().into_bytes(),
        400,
        ApiErrorCode::MissingField,
        Some(field),
    )
}

fn raw_case(
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: ApiErrorCode,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method: "POST",
        content_type: Some("application/json"),
        body,
        status,
        code,
        field,
    }
}

fn corpus() -> Vec<Case> {
    let ok = |extra: Value| {
        let mut body = json!({"topic": "Python Loops", "num_questions": 3});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let mut cases = vec![
        missing_case("empty object", json!({}), "topic"),
        missing_case("no num_questions", json!({"topic": "x"}), "num_questions"),
        json_case("zero questions", ok(json!({"num_questions": 0})), "num_questions"),
        json_case(
            "negative questions",
            ok(json!({"num_questions": -1})),
            "num_questions",
        ),
        json_case(
            "too many questions",
            ok(json!({"num_questions": 21})),
            "num_questions",
        ),
        json_case(
            "fractional questions",
            ok(json!({"num_questions": 2.5})),
            "num_questions",
        ),
        json_case(
            "questions as text",
            ok(json!({"num_questions": "3"})),
            "num_questions",
        ),
        json_case(
            "questions as bool",
            ok(json!({"num_questions": true})),
            "num_questions",
        ),
        missing_case(
            "questions null",
            ok(json!({"num_questions": null})),
            "num_questions",
        ),
        json_case(
            "questions array",
            ok(json!({"num_questions": [3]})),
            "num_questions",
        ),
        json_case(
            "questions object",
            ok(json!({"num_questions": {"n": 3}})),
            "num_questions",
        ),
        json_case(
            "huge questions",
            ok(json!({"num_questions": 1e300})),
            "num_questions",
        ),
        json_case("topic number", ok(json!({"topic": 7})), "topic"),
        json_case("topic empty", ok(json!({"topic": ""})), "topic"),
        json_case("topic blank", ok(json!({"topic": "   "})), "topic"),
        json_case("topic NUL", ok(json!({"topic": "a\u{0}b"})), "topic"),
        json_case("topic newline", ok(json!({"topic": "a\nb"})), "topic"),
        json_case("topic escape char", ok(json!({"topic": "a\u{1b}[31m"})), "topic"),
        json_case("topic too long", ok(json!({"topic": "t".repeat(201)})), "topic"),
        missing_case("topic null", ok(json!({"topic": null})), "topic"),
        json_case("topic array", ok(json!({"topic": ["x"]})), "topic"),
        json_case(
            "difficulty capitalised",
            ok(json!({"difficulty": "Easy"})),
            "difficulty",
        ),
        json_case(
            "difficulty unknown",
            ok(json!({"difficulty": "extreme"})),
            "difficulty",
        ),
        json_case("difficulty number", ok(json!({"difficulty": 1})), "difficulty"),
        json_case("difficulty empty", ok(json!({"difficulty": ""})), "difficulty"),
        json_case("request_id empty", ok(json!({"request_id": ""})), "request_id"),
        json_case("request_id space", ok(json!({"request_id": "a b"})), "request_id"),
        json_case(
            "request_id too long",
            ok(json!({"request_id": "r".repeat(129)})),
            "request_id",
        ),
        json_case("request_id number", ok(json!({"request_id": 5})), "request_id"),
        json_case(
            "request_id unicode",
            ok(json!({"request_id": "ü-1"})),
            "request_id",
        ),
        json_case("request_id slash", ok(json!({"request_id": "a/b"})), "request_id"),
        json_case("context number", ok(json!({"context": 5})), "context"),
        json_case(
            "context control char",
            ok(json!({"context": "a\u{7}"})),
            "context",
        ),
        raw_case(
            "empty body",
            Vec::new(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "truncated JSON",
            b"{\"topic\": \"x\"".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "array body",
            b"[1, 2]".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "string body",
            b"\"topic\"".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "null body",
            b"null".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "number body",
            b"123".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "trailing comma",
            b"{\"topic\": \"x\", \"num_questions\": 1,}".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "invalid UTF-8",
            b"{\"topic\": \"\xff\xfe\", \"num_questions\": 1}".to_vec(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "deep nesting",
            format!(
                "{{\"topic\": {}{}, \"num_questions\": 1}}",
                "[".repeat(5000),
                "]".repeat(5000)
            )
            .into_bytes(),
            400,
            ApiErrorCode::InvalidJson,
            Some("body"),
        ),
        raw_case(
            "duplicate key",
            b"{\"topic\": \"x\", \"topic\": \"y\", \"num_questions\": 1}".to_vec(),
            400,
            ApiErrorCode::InvalidField,
            Some("topic"),
        ),
        raw_case(
            "body over 64 KiB",
            json!({"topic": "x", "num_questions": 1, "pad": "p".repeat(70_000)})
                .to_string()
                .into_bytes(),
            413,
            ApiErrorCode::PayloadTooLarge,
            Some("body"),
        ),
        raw_case(
            "body over 1 MiB",
            vec![b' '; 2 * 1024 * 1024],
            413,
            ApiErrorCode::PayloadTooLarge,
            Some("body"),
        ),
    ];
    let valid = ok(json!({})).to_string().into_bytes();
    for (name, content_type) in [
        ("text/plain", Some("text/plain")),
        ("xml", Some("application/xml")),
        ("form", Some("application/x-www-form-urlencoded")),
        ("multipart", Some("multipart/form-data; boundary=x")),
        ("no content type", None),
    ] {
        cases.push(Case {
            name,
            method: "POST",
            content_type,
            body: valid.clone(),
            status: 415,
            code: ApiErrorCode::UnsupportedMediaType,
            field: Some("content-type"),
        });
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        cases.push(Case {
            name: method,
            method,
            content_type: Some("application/json"),
            body: valid.clone(),
            status: 405,
            code: ApiErrorCode::MethodNotAllowed,
            field: None,
        });
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_a_json_4xx_naming_the_problem_and_nothing_is_published() {
    let broker = MockBroker::with_service_topics();
    let bootstrap = broker.bootstrap_servers();
    let config = ApiConfig::from_lookup(config_lookup(HashMap::from([(
        "KAFKA_BOOTSTRAP_SERVERS",
        bootstrap.clone(),
    )])))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let api = Arc::new(Api::new(KafkaPublisher::new(&config.kafka).unwrap(), &config));
    let server = tokio::spawn(qgen_local::http::serve(listener, api, shutdown.clone()));
    let http = reqwest::Client::new();
    let url = format!("{base}{}", question_api::ROUTE);
    let cases = corpus();
    // The corpus reaches every error the API can give a caller but two: `not_found` (the wrong
    // path below) and `unavailable` (no broker: tests/e2e/faults.rs).
    let mut covered: Vec<ApiErrorCode> = cases.iter().map(|case| case.code).collect();
    covered.extend([ApiErrorCode::NotFound, ApiErrorCode::Unavailable]);
    for code in ApiErrorCode::ALL {
        assert!(
            covered.contains(&code),
            "no case is answered with {}",
            code.as_str()
        );
    }

    let mut wrong = Vec::new();
    for case in &cases {
        let mut request = http
            .request(case.method.parse().unwrap(), &url)
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let is_json = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        let field = error["field"].as_str();
        let code = error["code"].as_str();
        let explained = error["message"].as_str().is_some_and(|m| !m.is_empty());
        if status != case.status
            || !is_json
            || code != Some(case.code.as_str())
            || !explained
            || field != case.field
        {
            wrong.push(format!("{}: {status} {body}", case.name));
        }
    }
    let wrong_path = http
        .post(format!("{base}/other"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let wrong_path_status = wrong_path.status();
    let not_found: Value = wrong_path.json().await.unwrap();
    let published = records_on(&bootstrap, "question.request");
    // A valid request still goes through: the server survived the corpus.
    let valid = http
        .post(&url)
        .json(&json!({"topic": "Python Loops", "num_questions": 1}))
        .send()
        .await
        .unwrap();
    shutdown.cancel();
    let _ = server.await;

    assert!(
        wrong.is_empty(),
        "{} of {} answered wrongly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(wrong_path_status, 404);
    assert_eq!(not_found["error"]["code"], "not_found");
    assert_eq!(published, 0, "a rejected request was published");
    assert_eq!(valid.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_and_never_block_their_partition() {
    let broker = MockBroker::start(&[
        ("question.request", 1),
        ("question.response", 1),
        ("question.request.dlq", 1),
    ]);
    let bootstrap = broker.bootstrap_servers();
    let stand_in = GeminiStandIn::answering().await;
    let vars = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.clone()),
        ("GEMINI_BASE_URL", stand_in.base_url()),
    ]);
    let config = GeneratorConfig::from_lookup(config_lookup(vars)).unwrap();
    let publisher = KafkaPublisher::new(&config.kafka).unwrap();
    let valid = |id: &str| {
        RequestEvent::new_request(GenerationRequest {
            request_id: id.to_owned(),
            topic: "Graphs".into(),
            num_questions: 1,
            difficulty: Difficulty::Easy,
            context: None,
        })
    };
    let wrong_type = json!({"eventId": "e", "eventType": "question.generation.response", "timestamp": "t",
        "userId": "u", "eventData": {"request_id": "r"}})
    .to_string();
    let huge = vec![b'{'; 300 * 1024];
    let poison: Vec<(&str, Option<&[u8]>)> = vec![
        ("not JSON", Some(b"definitely not json")),
        ("wrong shape", Some(br#"{"hello": "world"}"#)),
        ("wrong eventType", Some(wrong_type.as_bytes())),
        ("empty value", Some(b"")),
        ("absent value", None),
        ("huge value", Some(&huge)),
    ];
    publish_event(
        &publisher,
        "question.request",
        "before",
        &valid("before"),
        &TraceContext::new_root(),
        &[],
    )
    .await
    .unwrap();
    // Each poison record carries headers of its own — a caller's trace, its name, and bytes that
    // are not UTF-8 — which its dead letter must keep, in order, byte for byte.
    const TRACE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const BINARY: &[u8] = &[0xff, 0x00, 0xfe];
    for (name, value) in &poison {
        publisher
            .publish(OutboundRecord {
                topic: "question.request",
                key: Some(name.as_bytes()),
                payload: *value,
                headers: &[
                    ("traceparent", TRACE),
                    ("x-poison", name.as_bytes()),
                    ("x-bytes", BINARY),
                ],
            })
            .await
            .unwrap();
    }
    publish_event(
        &publisher,
        "question.request",
        "after",
        &valid("after"),
        &TraceContext::new_root(),
        &[],
    )
    .await
    .unwrap();
    let records = read_topic(&bootstrap, "question.request", 8, Duration::from_secs(10)).await;
    assert_eq!(records.len(), 8);
    let event = kafka_event(records.iter().map(record_json), "arn:aws:kafka:local", &bootstrap);
    let generator = Generator::new(
        GeminiClient::new(&config.gemini, SecretString::from("key")).unwrap(),
        KafkaPublisher::new(&config.kafka).unwrap(),
        &config,
    );

    let report = generator
        .handle(&event, Instant::now() + Duration::from_secs(60))
        .await;

    assert_eq!((report.completed, report.dead_lettered), (2, 6));
    let responses = read_topic(&bootstrap, "question.response", 2, Duration::from_secs(10)).await;
    assert_eq!(response_request_ids(&responses), ["after", "before"]);
    let dead = read_topic(&bootstrap, "question.request.dlq", 6, Duration::from_secs(10)).await;
    assert_eq!(dead.len(), 6);
    for (offset, (name, value)) in poison.iter().enumerate() {
        let letter = dead
            .iter()
            .find(|m| m.key() == Some(name.as_bytes()))
            .unwrap_or_else(|| panic!("{name} not in the DLQ"));
        assert_eq!(
            message_header(letter, "dlq-source-topic").as_deref(),
            Some("question.request")
        );
        assert_eq!(
            message_header(letter, "dlq-source-partition").as_deref(),
            Some("0")
        );
        assert_eq!(
            message_header(letter, "dlq-source-offset"),
            Some((offset + 1).to_string()),
            "{name}"
        );
        assert!(
            message_header(letter, "dlq-error").is_some_and(|e| !e.is_empty()),
            "{name}"
        );
        let kept: Vec<(String, Option<Vec<u8>>)> = letter
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .filter(|h| !h.key.starts_with("dlq-"))
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let original = [
            ("traceparent", TRACE),
            ("x-poison", name.as_bytes()),
            ("x-bytes", BINARY),
        ]
        .map(|(k, v)| (k.to_owned(), Some(v.to_vec())));
        assert_eq!(kept, original, "{name}: the original headers");
        assert_eq!(
            letter.payload().filter(|p| !p.is_empty()),
            value.filter(|v| !v.is_empty()),
            "{name}"
        );
    }
}

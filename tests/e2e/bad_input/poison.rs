//! Every kind of poison record on a real broker: each goes to the DLQ with its source
//! coordinates, its error and its own headers, and the records after it are still answered.

use std::collections::HashMap;
use std::time::Duration;

use qgen_adapters::kafka::{EventPublisher, KafkaPublisher, OutboundRecord, publish_event};
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::kafka_event;
use qgen_contract::trace::TraceContext;
use qgen_testkit::{GeminiStandIn, MockBroker, message_header, read_topic, response_request_ids};
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use rdkafka::Message;
use rdkafka::message::Headers;
use secrecy::SecretString;
use serde_json::json;
use tokio::time::Instant;

use super::config_lookup;

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

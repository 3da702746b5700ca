//! A DLQ that cannot be written loses nothing (docs/DESIGN.md, promise 3): the poison record
//! whose DLQ copy was not acknowledged is named in the partial batch response, so the trigger
//! redelivers its partition from it instead of committing it; once the DLQ takes records again,
//! the redelivery puts it there, as it came, and the batch succeeds.

use std::time::Duration;

use qgen_adapters::kafka::KafkaPublisher;
use qgen_adapters::msk::record_json;
use qgen_contract::msk::kafka_event;
use qgen_testkit::{GeminiStandIn, MockBroker, message_header, read_topic, response_request_ids};
use question_generator::handler::Generator;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{ClientConfig, Message};
use serde_json::json;
use tokio::time::Instant;

use crate::support::batches::{config, gemini, request_message};

const DLQ: &str = "question.request.dlq";

/// A record at offset 41 of partition 0 that is not JSON, with a header of its own.
fn poison() -> OwnedMessage {
    OwnedMessage::new(
        Some(b"{not json".to_vec()),
        Some(b"req-302".to_vec()),
        "question.request".into(),
        rdkafka::Timestamp::CreateTime(1_795_773_600_000),
        0,
        41,
        Some(OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        })),
    )
}

fn batch(messages: &[OwnedMessage]) -> aws_lambda_events::event::kafka::KafkaEvent {
    kafka_event(
        messages.iter().map(record_json),
        "arn:aws:kafka:local",
        "127.0.0.1:9092",
    )
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Records on the DLQ's one partition (its high watermark).
fn records_on_dlq(bootstrap: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    consumer
        .fetch_watermarks(DLQ, 0, Duration::from_secs(10))
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_the_dlq_did_not_take_is_redelivered_and_dead_lettered_once_it_does() {
    let broker = MockBroker::with_service_topics();
    let bootstrap = broker.bootstrap_servers();
    let stand_in = GeminiStandIn::answering().await;
    let config = config(&bootstrap, &stand_in.base_url(), 16);
    let generator = Generator::new(
        gemini(&config),
        KafkaPublisher::new(&config.kafka).unwrap(),
        &config,
    );
    let first = [
        request_message(0, 40, "req-301"),
        poison(),
        request_message(0, 42, "req-303"),
        request_message(1, 17, "req-304"),
    ];
    broker.make_unwritable(DLQ, 1);

    let during = generator.handle(&batch(&first), later()).await;
    broker.make_writable(DLQ, 1);
    // The trigger redelivers partition 0 from the offset it was given (41): the poison record
    // and the request after it.
    let redelivered = generator.handle(&batch(&first[1..3]), later()).await;

    assert_eq!(
        serde_json::to_value(during.response()).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-0", "offset": 41}},
        ]})
    );
    assert_eq!(
        (during.completed, during.dead_lettered, during.unpublished),
        (3, 0, 1)
    );
    assert_eq!(
        serde_json::to_value(redelivered.response()).unwrap(),
        json!({"batchItemFailures": []})
    );
    assert_eq!((redelivered.completed, redelivered.dead_lettered), (1, 1));
    let dead = read_topic(&bootstrap, DLQ, 1, Duration::from_secs(10)).await;
    assert_eq!(
        records_on_dlq(&bootstrap),
        1,
        "one DLQ record, from the redelivery"
    );
    let record = &dead[0];
    assert_eq!(record.payload(), Some(&b"{not json"[..]));
    assert_eq!(record.key(), Some(&b"req-302"[..]));
    let headers: Vec<&str> = record
        .headers()
        .map(|h| h.iter().map(|h| h.key).collect())
        .unwrap_or_default();
    assert_eq!(
        headers,
        [
            "traceparent",
            "dlq-source-topic",
            "dlq-source-partition",
            "dlq-source-offset",
            "dlq-error"
        ]
    );
    assert_eq!(
        message_header(record, "traceparent").as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(
        message_header(record, "dlq-source-topic").as_deref(),
        Some("question.request")
    );
    assert_eq!(
        message_header(record, "dlq-source-partition").as_deref(),
        Some("0")
    );
    assert_eq!(message_header(record, "dlq-source-offset").as_deref(), Some("41"));
    assert!(message_header(record, "dlq-error").is_some_and(|e| !e.is_empty()));
    // The requests were answered all along: the outage held back only the poison record.
    let responses = read_topic(&bootstrap, "question.response", 4, Duration::from_secs(10)).await;
    assert_eq!(
        response_request_ids(&responses),
        ["req-301", "req-303", "req-303", "req-304"]
    );
}

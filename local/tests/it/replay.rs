//! `replay` against a real broker: records the trigger gave up on, and dead-lettered ones, go
//! back to question.request byte for byte; filters and dry runs; a loop is refused.

use std::time::Duration;

use qgen_local::esm::Emulator;
use qgen_ops::replay::{ReplayError, ReplayFilter, ReplayOptions, ReplaySummary, replay};
use qgen_testkit::{MockBroker, read_topic};
use rdkafka::Message;
use rdkafka::consumer::DefaultConsumerContext;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::trigger::{
    FAILED_TOPIC, REQUEST_TOPIC, Recorder, client_of, esm_config, failed_records, publisher, send,
};

const DLQ_TOPIC: &str = "question.request.dlq";

fn options(from: &str, dry_run: bool, filter: ReplayFilter) -> ReplayOptions {
    ReplayOptions {
        from: from.into(),
        to: REQUEST_TOPIC.into(),
        dry_run,
        filter,
    }
}

async fn run(broker: &MockBroker, options: &ReplayOptions) -> Result<ReplaySummary, ReplayError> {
    replay(
        &client_of(broker),
        DefaultConsumerContext,
        &publisher(broker),
        options,
    )
    .await
}

/// Key, value and headers of a record.
type Bytes = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Vec<u8>)>);

fn bytes(message: &OwnedMessage) -> Bytes {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    (
        message.key().map(<[u8]>::to_vec),
        message.payload().map(<[u8]>::to_vec),
        headers,
    )
}

async fn request_topic(broker: &MockBroker, expected: usize) -> Vec<OwnedMessage> {
    let mut records = read_topic(
        &broker.bootstrap_servers(),
        REQUEST_TOPIC,
        expected,
        Duration::from_secs(20),
    )
    .await;
    records.sort_by_key(Message::offset);
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_up_records_go_back_byte_for_byte_with_filters_and_dry_runs() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1), (FAILED_TOPIC, 1)]);
    send(&publisher(&broker), &["r1", "r2"]).await;
    // A function that never answers them, and no retries: both are given up at once.
    let recorder = Recorder::refusing(&["r1", "r2"]);
    let mut config = esm_config(10, 200);
    config.maximum_retry_attempts = 0;
    let emulator = Emulator::new(&client_of(&broker), config, &recorder).unwrap();
    let shutdown = CancellationToken::new();
    let (result, failed) = tokio::join!(emulator.run(shutdown.clone()), async {
        let failed = failed_records(&broker, 2).await;
        shutdown.cancel();
        failed
    });
    result.unwrap();
    assert_eq!(failed.len(), 2);
    let originals = request_topic(&broker, 2).await;

    let dry = run(&broker, &options(FAILED_TOPIC, true, ReplayFilter::default()))
        .await
        .unwrap();
    assert_eq!((dry.read, dry.selected, dry.published), (2, 2, 0));
    let only_r2 = ReplayFilter {
        request_ids: vec!["r2".into()],
        ..ReplayFilter::default()
    };
    let one = run(&broker, &options(FAILED_TOPIC, false, only_r2))
        .await
        .unwrap();
    assert_eq!((one.read, one.selected, one.published), (2, 1, 1));
    let from_offset_1 = ReplayFilter {
        from_offset: Some(1),
        ..ReplayFilter::default()
    };
    let tail = run(&broker, &options(FAILED_TOPIC, true, from_offset_1))
        .await
        .unwrap();
    assert_eq!((tail.read, tail.selected), (1, 1));
    let all = run(&broker, &options(FAILED_TOPIC, false, ReplayFilter::default()))
        .await
        .unwrap();
    assert_eq!((all.read, all.published, all.unreadable), (2, 2, 0));

    let records = request_topic(&broker, 5).await;
    assert_eq!(records.len(), 5, "two originals, r2 once, then both again");
    let expected = [&originals[1], &originals[0], &originals[1]];
    for (replayed, original) in records[2..].iter().zip(expected) {
        assert_eq!(
            bytes(replayed),
            bytes(original),
            "same key, value (so eventId) and headers"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_records_go_back_without_the_dlq_headers_and_a_loop_is_refused() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1), (DLQ_TOPIC, 1)]);
    let producer: FutureProducer = client_of(&broker).create().unwrap();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "eventType",
            value: Some("question.generation.request"),
        })
        .insert(Header {
            key: "dlq-source-topic",
            value: Some(REQUEST_TOPIC),
        })
        .insert(Header {
            key: "dlq-source-partition",
            value: Some("0"),
        })
        .insert(Header {
            key: "dlq-source-offset",
            value: Some("12"),
        })
        .insert(Header {
            key: "dlq-error",
            value: Some("value is not JSON"),
        });
    producer
        .send(
            FutureRecord::to(DLQ_TOPIC)
                .key("req-9")
                .payload("fixed now")
                .headers(headers),
            Duration::from_secs(5),
        )
        .await
        .unwrap();

    let summary = run(&broker, &options(DLQ_TOPIC, false, ReplayFilter::default()))
        .await
        .unwrap();
    let looped = run(&broker, &options(REQUEST_TOPIC, false, ReplayFilter::default())).await;

    assert_eq!((summary.read, summary.published), (1, 1));
    let records = request_topic(&broker, 1).await;
    assert_eq!(
        bytes(&records[0]),
        (
            Some(b"req-9".to_vec()),
            Some(b"fixed now".to_vec()),
            vec![("eventType".to_owned(), b"question.generation.request".to_vec())]
        )
    );
    assert!(matches!(looped, Err(ReplayError::SameTopic(_))));
}

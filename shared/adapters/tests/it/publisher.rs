//! [`KafkaPublisher`]'s recovery against librdkafka's mock cluster: a producer that the broker's
//! answer broke for good (a fatal error, as librdkafka raises it) is replaced and the next
//! record goes through; a producer whose record only timed out (the broker unreachable) is kept.
//!
//! Which producer the publisher holds is told by its native handle: the test keeps the old
//! handle alive, so a new producer cannot be allocated at the same address.

use qgen_adapters::config::{ApiConfig, KafkaConfig};
use qgen_adapters::kafka::{EventPublisher, KafkaPublisher, OutboundRecord, PublishError};
use qgen_testkit::{MockBroker, env_lookup};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const TOPIC: &str = "events";

fn kafka_config(broker: &MockBroker) -> KafkaConfig {
    let bootstrap = broker.bootstrap_servers();
    ApiConfig::from_lookup(env_lookup(&[
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "3000"),
    ]))
    .unwrap()
    .kafka
}

async fn publish(publisher: &KafkaPublisher, payload: &str) -> Result<i64, PublishError> {
    publisher
        .publish(OutboundRecord {
            topic: TOPIC,
            key: Some(b"k"),
            payload: Some(payload.as_bytes()),
            headers: &[],
        })
        .await
        .map(|delivered| delivered.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_broken_by_a_fatal_error_is_replaced_and_the_next_record_goes_through() {
    let broker = MockBroker::start(&[(TOPIC, 1)]);
    let publisher = KafkaPublisher::new(&kafka_config(&broker)).unwrap();
    // The first record gives the idempotent producer its id and sequence 0 on the partition.
    assert_eq!(publish(&publisher, "first").await.unwrap(), 0);
    let broken = publisher.producer();
    // The broker refuses the next Produce as out of sequence although it is the only request in
    // flight: librdkafka takes that as lost state and raises a fatal error on the producer.
    broker.fail_requests(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );

    let refused = publish(&publisher, "refused").await;
    let after = publish(&publisher, "after").await;

    assert!(
        matches!(refused, Err(PublishError::Delivery { .. })),
        "{refused:?}"
    );
    assert!(
        broken.client().fatal_error().is_some(),
        "the refusal did not break the producer"
    );
    assert_ne!(
        publisher.producer().client().native_ptr(),
        broken.client().native_ptr(),
        "the broken producer was kept"
    );
    assert!(after.is_ok(), "the record after the fatal error: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_record_only_timed_out_is_kept_and_delivers_once_the_broker_is_back() {
    let broker = MockBroker::start(&[(TOPIC, 1)]);
    let publisher = KafkaPublisher::new(&kafka_config(&broker)).unwrap();
    assert_eq!(publish(&publisher, "first").await.unwrap(), 0);
    let kept = publisher.producer();
    broker.go_down();

    let timed_out = publish(&publisher, "broker down").await;
    broker.come_up();
    let after = publish(&publisher, "after").await;

    assert!(
        matches!(
            &timed_out,
            Err(PublishError::Delivery {
                source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
                ..
            })
        ),
        "{timed_out:?}"
    );
    assert_eq!(kept.client().fatal_error(), None);
    assert_eq!(
        publisher.producer().client().native_ptr(),
        kept.client().native_ptr(),
        "a timeout replaced the producer"
    );
    assert!(after.is_ok(), "the record after the timeout: {after:?}");
}

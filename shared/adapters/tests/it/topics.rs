//! The service's topics created through the admin API on a real broker (tansu), as the
//! operator's `qgen topics` does against MSK. librdkafka's mock cluster has no CreateTopics.

use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::auth::KafkaAuth;
use qgen_adapters::kafka::{
    DLQ_RETENTION_MS, EVENT_PARTITIONS, EVENT_RETENTION_MS, TopicSpec, create_service_topics, ensure_topics,
};
use qgen_testkit::TansuBroker;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn partitions(bootstrap: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let topic = &metadata.topics()[0];
    assert!(topic.error().is_none(), "{}: {:?}", topic.name(), topic.error());
    topic.partitions().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_the_four_service_topics_and_is_safe_to_run_again() {
    let broker = TansuBroker::start(&[]).await;
    let bootstrap = broker.bootstrap_servers();
    let config = ApiConfig::from_lookup(|var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.clone()),
        "KAFKA_QUESTION_DLQ_TOPIC" => Some("qgen.dead-letters".into()),
        "KAFKA_QUESTION_FAILED_TOPIC" => Some("qgen.given-up".into()),
        _ => None,
    })
    .unwrap();

    create_service_topics(&config.kafka, &KafkaAuth::None, 1)
        .await
        .unwrap();
    // A second deploy runs it again: existing topics are left alone, not an error.
    create_service_topics(&config.kafka, &KafkaAuth::None, 1)
        .await
        .unwrap();

    assert_eq!(
        partitions(&bootstrap, "question.request"),
        EVENT_PARTITIONS as usize
    );
    assert_eq!(
        partitions(&bootstrap, "question.response"),
        EVENT_PARTITIONS as usize
    );
    assert_eq!(partitions(&bootstrap, "qgen.dead-letters"), 1);
    assert_eq!(partitions(&bootstrap, "qgen.given-up"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_topics_creates_what_is_missing_and_leaves_what_exists() {
    let broker = TansuBroker::start(&[]).await;
    let bootstrap = broker.bootstrap_servers();
    let mut admin = ClientConfig::new();
    admin.set("bootstrap.servers", &bootstrap);

    ensure_topics(&admin, &[TopicSpec::new("made.here", 2)])
        .await
        .unwrap();
    // Asked again with another partition count: the topic exists, so it is left as it is.
    ensure_topics(&admin, &[TopicSpec::new("made.here", 5)])
        .await
        .unwrap();

    assert_eq!(partitions(&bootstrap, "made.here"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topics_carry_their_retention() {
    let broker = TansuBroker::start(&[]).await;
    let bootstrap = broker.bootstrap_servers();
    let config =
        ApiConfig::from_lookup(|var| (var == "KAFKA_BOOTSTRAP_SERVERS").then(|| bootstrap.clone())).unwrap();
    create_service_topics(&config.kafka, &KafkaAuth::None, 1)
        .await
        .unwrap();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let resources = [
        ResourceSpecifier::Topic("question.request"),
        ResourceSpecifier::Topic("question.request.dlq"),
        ResourceSpecifier::Topic("question.request.failed"),
    ];
    let described = admin
        .describe_configs(&resources, &AdminOptions::new())
        .await
        .unwrap();
    let retention: Vec<Option<String>> = described
        .into_iter()
        .map(|r| {
            r.unwrap()
                .get("retention.ms")
                .and_then(|entry| entry.value.clone())
        })
        .collect();

    assert_eq!(
        retention,
        [
            Some(EVENT_RETENTION_MS.to_string()),
            Some(DLQ_RETENTION_MS.to_string()),
            Some(DLQ_RETENTION_MS.to_string())
        ]
    );
}

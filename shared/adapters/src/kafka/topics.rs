//! The service's topics ([`service_topics`]) and their creation through the admin API
//! ([`ensure_topics`], [`create_service_topics`]): MSK does not create topics on first use.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::auth::KafkaAuth;
use super::client_config;
use crate::config::KafkaConfig;

/// A topic the service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor (1 on a local broker, 3 on MSK).
    pub replication: i32,
    /// Topic-level settings, e.g. `retention.ms`.
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic with `partitions` partitions, replication 1 and broker-default settings.
    pub fn new(name: &str, partitions: i32) -> Self {
        TopicSpec {
            name: name.to_owned(),
            partitions,
            replication: 1,
            config: Vec::new(),
        }
    }
}

/// Topics could not be created.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin client could not be built.
    #[error("could not create the Kafka admin client")]
    Client(#[source] KafkaError),
    /// The CreateTopics request failed as a whole.
    #[error("CreateTopics failed")]
    Request(#[source] KafkaError),
    /// The broker refused one topic.
    #[error("creating topic {topic} failed: {code}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
}

/// Creates every topic in `topics` that does not exist yet (MSK does not create them on first
/// use). Topics that already exist are left as they are.
pub async fn ensure_topics(client: &ClientConfig, topics: &[TopicSpec]) -> Result<(), AdminError> {
    ensure_topics_with(client, DefaultClientContext, topics).await
}

/// [`ensure_topics`] with a client context (for IAM tokens: [`KafkaAuth::context`]).
pub async fn ensure_topics_with<C: ClientContext + 'static>(
    client: &ClientConfig,
    context: C,
    topics: &[TopicSpec],
) -> Result<(), AdminError> {
    // librdkafka refuses an empty CreateTopics; nothing to create is simply done.
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<C> = client.create_with_context(context).map_err(AdminError::Client)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.config.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(AdminError::Request)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(())
}

/// `retention.ms` of `question.request` and `question.response`: 7 days, long enough to replay
/// a weekend's traffic after an outage of the generator or of the content service.
pub const EVENT_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// `retention.ms` of the DLQ and of the trigger's on-failure topic: 14 days, time for a person
/// to look at what was set aside and replay it.
pub const DLQ_RETENTION_MS: u64 = 14 * 24 * 60 * 60 * 1000;
/// Partitions of `question.request` and `question.response`: the MSK trigger runs at most one
/// generator per partition, so this bounds the generator's concurrency (times
/// `GENERATION_CONCURRENCY` Gemini calls).
pub const EVENT_PARTITIONS: i32 = 3;

/// The topics the service needs, named as `config` names them: the request and response topics
/// with [`EVENT_PARTITIONS`] partitions and 7 days of retention, the DLQ and the trigger's
/// on-failure topic with one partition and 14 days. `replication` is 1 on a one-broker local
/// stack, 3 on a three-AZ MSK cluster (then `min.insync.replicas=2`, so `acks=all` survives one
/// broker down).
pub fn service_topics(config: &KafkaConfig, replication: i32) -> Vec<TopicSpec> {
    let settings = |retention_ms: u64| {
        let mut settings = vec![("retention.ms".to_owned(), retention_ms.to_string())];
        if replication >= 3 {
            settings.push(("min.insync.replicas".to_owned(), "2".to_owned()));
        }
        settings
    };
    let topic = |name: &str, partitions: i32, retention_ms: u64| TopicSpec {
        name: name.to_owned(),
        partitions,
        replication,
        config: settings(retention_ms),
    };
    vec![
        topic(&config.request_topic, EVENT_PARTITIONS, EVENT_RETENTION_MS),
        topic(&config.response_topic, EVENT_PARTITIONS, EVENT_RETENTION_MS),
        topic(&config.dlq_topic, 1, DLQ_RETENTION_MS),
        topic(&config.failed_topic, 1, DLQ_RETENTION_MS),
    ]
}

/// Creates the service's topics ([`service_topics`]) on the brokers of `config`, authenticated
/// as `auth`; topics that exist are left alone, so this is safe to run on every deploy.
pub async fn create_service_topics(
    config: &KafkaConfig,
    auth: &KafkaAuth,
    replication: i32,
) -> Result<(), AdminError> {
    let mut client = client_config(config);
    auth.apply(&mut client);
    ensure_topics_with(&client, auth.context(), &service_topics(config, replication)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::tests::config;

    #[test]
    fn service_topics_follow_the_configured_names_with_retention() {
        let mut kafka = config();
        kafka.dlq_topic = "qgen.dlq".into();

        let topics = service_topics(&kafka, 3);

        let summary: Vec<(&str, i32, i32)> = topics
            .iter()
            .map(|t| (t.name.as_str(), t.partitions, t.replication))
            .collect();
        assert_eq!(
            summary,
            [
                ("question.request", 3, 3),
                ("question.response", 3, 3),
                ("qgen.dlq", 1, 3),
                ("question.request.failed", 1, 3)
            ]
        );
        let setting =
            |t: &TopicSpec, key: &str| t.config.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(setting(&topics[0], "retention.ms").as_deref(), Some("604800000"));
        assert_eq!(setting(&topics[2], "retention.ms").as_deref(), Some("1209600000"));
        assert_eq!(setting(&topics[3], "retention.ms").as_deref(), Some("1209600000"));
        assert_eq!(setting(&topics[0], "min.insync.replicas").as_deref(), Some("2"));
        // One broker cannot hold two in-sync replicas.
        assert_eq!(
            setting(&service_topics(&kafka, 1)[0], "min.insync.replicas"),
            None
        );
    }
}

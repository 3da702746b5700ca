//! The broker the local stack runs against.

use qgen_adapters::config::KafkaConfig;
use qgen_adapters::kafka::{AdminError, TopicSpec, ensure_topics, service_topics};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// The broker could not be started or prepared.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// librdkafka's mock cluster did not start.
    #[error("could not start the embedded broker")]
    Embedded(#[source] KafkaError),
    /// The topics could not be created.
    #[error("could not create the topics")]
    Topics(#[source] AdminError),
}

/// The service's topics ([`qgen_adapters::kafka::service_topics`]) on a one-broker local stack, the
/// request and response topics with `partitions` partitions.
pub fn local_topics(config: &KafkaConfig, partitions: i32) -> Vec<TopicSpec> {
    let mut topics = service_topics(config, 1);
    for topic in &mut topics {
        if topic.name == config.request_topic || topic.name == config.response_topic {
            topic.partitions = partitions;
        }
    }
    topics
}

/// An embedded broker (in this process, on a real TCP port) or an external one.
pub enum Broker {
    /// librdkafka's mock cluster: groups and commits work; it lives as long as this value.
    Embedded(MockCluster<'static, DefaultProducerContext>),
    /// A broker somebody else runs.
    External(String),
}

impl Broker {
    /// Uses `external` when given (creating any missing topic through the admin API), else
    /// starts an embedded broker with the topics.
    pub async fn start(external: Option<String>, topics: &[TopicSpec]) -> Result<Self, BrokerError> {
        match external {
            Some(bootstrap) => {
                let mut admin = ClientConfig::new();
                admin.set("bootstrap.servers", &bootstrap);
                ensure_topics(&admin, topics).await.map_err(BrokerError::Topics)?;
                Ok(Broker::External(bootstrap))
            }
            None => {
                let cluster = MockCluster::new(1).map_err(BrokerError::Embedded)?;
                for topic in topics {
                    cluster
                        .create_topic(&topic.name, topic.partitions, 1)
                        .map_err(BrokerError::Embedded)?;
                }
                Ok(Broker::Embedded(cluster))
            }
        }
    }

    /// `host:port` list of the broker.
    pub fn bootstrap_servers(&self) -> String {
        match self {
            Broker::Embedded(cluster) => cluster.bootstrap_servers(),
            Broker::External(bootstrap) => bootstrap.clone(),
        }
    }

    /// `embedded` or `external`, for the start-up banner.
    pub fn kind(&self) -> &'static str {
        match self {
            Broker::Embedded(_) => "embedded (librdkafka mock cluster)",
            Broker::External(_) => "external",
        }
    }
}

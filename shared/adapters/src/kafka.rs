//! The Kafka side: the [`EventPublisher`] port the handlers are written against,
//! [`KafkaPublisher`], its rdkafka implementation, and the service's topics.
//!
//! Authentication (SCRAM from Secrets Manager, MSK IAM tokens) lives in [`auth`].

pub mod auth;

use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;

use crate::config::{KafkaConfig, SaslMechanism};
use qgen_contract::events::Envelope;

use self::auth::{AuthError, KafkaAuth, KafkaContext};

/// Header naming the event type of a record.
pub const HEADER_EVENT_TYPE: &str = "eventType";
/// Header carrying the record's `eventId`, so consumers can de-duplicate without parsing.
pub const HEADER_EVENT_ID: &str = "eventId";
/// Header naming the payload's media type.
pub const HEADER_CONTENT_TYPE: &str = "content-type";
/// Media type of every envelope.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// A record to produce; borrowed, so publishing costs no copies before librdkafka's own.
#[derive(Debug, Clone, Copy)]
pub struct OutboundRecord<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// Record key (`request_id` for events); `None` for a keyless record.
    pub key: Option<&'a [u8]>,
    /// Record value; `None` for a null value (a dead letter of a record that had none).
    pub payload: Option<&'a [u8]>,
    /// Record headers, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// Where the broker stored an acknowledged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition written.
    pub partition: i32,
    /// Offset assigned.
    pub offset: i64,
}

/// A record could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event could not be turned into JSON.
    #[error("failed to serialize event {event_id}")]
    Serialize {
        /// The event's id.
        event_id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The broker did not acknowledge the record (unreachable, timed out, refused).
    #[error("delivery to topic {topic} failed")]
    Delivery {
        /// Destination topic.
        topic: String,
        /// librdkafka's report.
        #[source]
        source: KafkaError,
    },
    /// The producer could not be built from the configuration.
    #[error("could not create the Kafka producer")]
    Create(#[source] KafkaError),
    /// Credentials for the brokers could not be resolved.
    #[error("could not authenticate to Kafka")]
    Auth(#[source] AuthError),
    /// No acknowledgement came within the caller's time limit.
    #[error("no acknowledgement within {0:?}")]
    TimedOut(Duration),
    /// A test double was told to fail.
    #[error("publishing is failing on purpose: {0}")]
    Injected(String),
}

/// Publishes records and resolves once the broker has acknowledged them.
pub trait EventPublisher: Send + Sync {
    /// Produces `record` and waits for the broker's acknowledgement.
    fn publish(
        &self,
        record: OutboundRecord<'_>,
    ) -> impl Future<Output = Result<Delivered, PublishError>> + Send;
}

impl<T: EventPublisher> EventPublisher for &T {
    fn publish(
        &self,
        record: OutboundRecord<'_>,
    ) -> impl Future<Output = Result<Delivered, PublishError>> + Send {
        (**self).publish(record)
    }
}

impl<T: EventPublisher> EventPublisher for std::sync::Arc<T> {
    fn publish(
        &self,
        record: OutboundRecord<'_>,
    ) -> impl Future<Output = Result<Delivered, PublishError>> + Send {
        (**self).publish(record)
    }
}

/// Serializes `event` and publishes it with key `key` and the contract's headers
/// (`eventType`, `eventId`, `content-type`).
pub async fn publish_event<P, D>(
    publisher: &P,
    topic: &str,
    key: &str,
    event: &Envelope<D>,
) -> Result<Delivered, PublishError>
where
    P: EventPublisher + ?Sized,
    D: Serialize,
{
    let payload = serde_json::to_vec(event).map_err(|source| PublishError::Serialize {
        event_id: event.event_id.clone(),
        source,
    })?;
    let headers = [
        (HEADER_EVENT_TYPE, event.event_type.as_bytes()),
        (HEADER_EVENT_ID, event.event_id.as_bytes()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.as_bytes()),
    ];
    publisher
        .publish(OutboundRecord {
            topic,
            key: Some(key.as_bytes()),
            payload: Some(&payload),
            headers: &headers,
        })
        .await
}

/// The librdkafka settings every client of the service shares: brokers, security protocol and
/// SASL mechanism. Credentials are added by [`KafkaAuth::apply`].
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("security.protocol", config.security_protocol.as_str())
        .set("client.id", "qgen")
        // librdkafka's reconnect backoff grows to 10 s by default, so a client may notice a
        // restarted broker seconds after it is back while the API's callers wait. Measured by
        // tests/faults.rs (tansu killed for 4 s): the longest wait for a 202 fell from 10.3-10.6 s
        // to 4.3-4.5 s with at most 1 s between attempts.
        .set("reconnect.backoff.max.ms", "1000");
    match &config.sasl {
        None => {}
        Some(SaslMechanism::ScramSha512 { .. }) => {
            client.set("sasl.mechanism", "SCRAM-SHA-512");
        }
        // MSK IAM is OAUTHBEARER with a SigV4-signed URL as the token (see `auth`).
        Some(SaslMechanism::AwsMskIam) => {
            client.set("sasl.mechanism", "OAUTHBEARER");
        }
    }
    client
}

/// The producer settings: durable (`acks=all`, idempotent, so a retry inside librdkafka never
/// duplicates or reorders) and bounded in time, so a caller waiting on the acknowledgement
/// hears back well before its function times out.
pub fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let timeout_ms = config.message_timeout.as_millis().to_string();
    // A request in flight when the broker vanishes is only timed out after request.timeout.ms,
    // and its records after that: half the message timeout keeps the caller's worst case (a 503
    // answered while the broker is down) near the message timeout rather than twice it.
    let request_timeout_ms = (config.message_timeout.as_millis() / 2).max(500).to_string();
    let mut client = client_config(config);
    client
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", &timeout_ms)
        .set("request.timeout.ms", &request_timeout_ms)
        // One request, one record: waiting to batch only adds latency to the API. The
        // generator's concurrent responses still share requests while one is in flight.
        .set("linger.ms", "0")
        // lz4, not zstd: measured by `scripts/bench` in one run, a produce-and-ack with zstd
        // took 2.2x as long as with lz4 (0.071 vs 0.032 ms for a request, 0.077 vs 0.037 ms for
        // a five-question response), on the API's critical path; lz4 still shrinks the
        // generator's batches of repetitive JSON.
        .set("compression.type", "lz4");
    client
}

/// The rdkafka implementation of [`EventPublisher`]: one per execution environment, shared by
/// every invocation (building a producer costs a connection and a metadata round trip).
///
/// After a broker incident an idempotent producer can stay broken: a fatal error refuses every
/// later record, and a producer whose records timed out bumps its epoch, which some brokers
/// (tansu, seen in the fault-injection run) then answer with errors forever. So when a delivery
/// fails with anything but a plain timeout, the publisher replaces the producer: one incident
/// costs the calls in flight, not the rest of the execution environment.
pub struct KafkaPublisher {
    producer: RwLock<FutureProducer<KafkaContext>>,
    /// What a replacement producer is built from.
    client: ClientConfig,
    auth: KafkaAuth,
    queue_timeout: Duration,
}

impl KafkaPublisher {
    /// Resolves the credentials `config` asks for (a SCRAM secret from Secrets Manager, an IAM
    /// signer from the function's role; nothing for PLAINTEXT and SSL) and builds the producer.
    /// What a function's `main` calls, once per execution environment.
    pub async fn connect(config: &KafkaConfig) -> Result<Self, PublishError> {
        let auth = KafkaAuth::resolve(config).await.map_err(PublishError::Auth)?;
        Self::with_auth(config, &auth)
    }

    /// Builds a producer that needs no credentials (PLAINTEXT or SSL, as local brokers and the
    /// tests use). It connects lazily, so this fails only on bad configuration.
    pub fn new(config: &KafkaConfig) -> Result<Self, PublishError> {
        Self::with_auth(config, &KafkaAuth::None)
    }

    /// Builds the producer with credentials already resolved.
    pub fn with_auth(config: &KafkaConfig, auth: &KafkaAuth) -> Result<Self, PublishError> {
        if !auth.fits(config) {
            return Err(PublishError::Create(KafkaError::ClientCreation(format!(
                "KAFKA_SASL_MECHANISM {:?} needs matching credentials (use KafkaPublisher::connect)",
                config.sasl
            ))));
        }
        let mut client = producer_config(config);
        auth.apply(&mut client);
        let producer = client
            .create_with_context(auth.context())
            .map_err(PublishError::Create)?;
        Ok(KafkaPublisher {
            producer: RwLock::new(producer),
            client,
            auth: auth.clone(),
            queue_timeout: config.message_timeout,
        })
    }

    /// The current producer (a cheap handle), e.g. for flushing at shutdown.
    pub fn producer(&self) -> FutureProducer<KafkaContext> {
        match self.producer.read() {
            Ok(producer) => producer.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces `failed` after `error` unless the error was a plain timeout (the broker is
    /// unreachable: a new producer would not help) or another caller replaced it already.
    fn recover(&self, failed: &FutureProducer<KafkaContext>, error: &KafkaError) {
        let fatal = failed.client().fatal_error();
        let timed_out = matches!(
            error,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
        );
        if timed_out && fatal.is_none() {
            return;
        }
        let Ok(mut current) = self.producer.write() else {
            return;
        };
        if !std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
            return;
        }
        match self.client.create_with_context(self.auth.context()) {
            Ok(producer) => {
                tracing::warn!(error = %error, fatal = ?fatal, "delivery failed: producer replaced");
                *current = producer;
            }
            Err(e) => tracing::error!(error = %e, "delivery failed and no new producer could be built"),
        }
    }
}

impl EventPublisher for KafkaPublisher {
    async fn publish(&self, record: OutboundRecord<'_>) -> Result<Delivered, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(record.topic).headers(headers);
        if let Some(key) = record.key {
            future_record = future_record.key(key);
        }
        if let Some(payload) = record.payload {
            future_record = future_record.payload(payload);
        }
        let producer = self.producer();
        match producer.send(future_record, self.queue_timeout).await {
            Ok(delivery) => Ok(Delivered {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((source, _message)) => {
                self.recover(&producer, &source);
                Err(PublishError::Delivery {
                    topic: record.topic.to_owned(),
                    source,
                })
            }
        }
    }
}

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
/// on-failure topic with one partition and 14 days. `replication` is 1 on a one-broker local stack, 3 on a three-AZ MSK cluster (then
/// `min.insync.replicas=2`, so `acks=all` survives one broker down).
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
    use crate::config::SecurityProtocol;

    fn config() -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "b-1:9094,b-2:9094".into(),
            request_topic: "question.request".into(),
            response_topic: "question.response".into(),
            dlq_topic: "question.request.dlq".into(),
            failed_topic: "question.request.failed".into(),
            security_protocol: SecurityProtocol::Ssl,
            sasl: None,
            message_timeout: Duration::from_millis(4_000),
        }
    }

    #[test]
    fn producer_is_durable_idempotent_and_bounded() {
        let client = producer_config(&config());
        assert_eq!(client.get("bootstrap.servers"), Some("b-1:9094,b-2:9094"));
        assert_eq!(client.get("security.protocol"), Some("ssl"));
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(client.get("enable.idempotence"), Some("true"));
        assert_eq!(client.get("message.timeout.ms"), Some("4000"));
        assert_eq!(client.get("compression.type"), Some("lz4"));
    }

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

    #[test]
    fn a_sasl_config_without_credentials_is_refused_up_front() {
        let mut kafka = config();
        kafka.security_protocol = SecurityProtocol::SaslSsl;
        kafka.sasl = Some(SaslMechanism::AwsMskIam);
        assert!(matches!(
            KafkaPublisher::new(&kafka),
            Err(PublishError::Create(_))
        ));
    }
}

//! [`KafkaPublisher`], the rdkafka implementation of [`EventPublisher`], and the librdkafka
//! settings every client of the service starts from.

use std::sync::RwLock;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::auth::{KafkaAuth, KafkaContext};
use super::{Delivered, EventPublisher, OutboundRecord, PublishError};
use crate::config::{KafkaConfig, SaslMechanism};

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
        if !needs_new_producer(error, fatal.is_some()) {
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

/// Whether a delivery that failed with `error` calls for a new producer: always once the
/// producer is in a fatal state, never for a plain timeout of a healthy one (the broker is
/// unreachable: a new producer would not reach it either), and for any other error, since a
/// fresh producer costs one connection and rules out a wedged one.
fn needs_new_producer(error: &KafkaError, fatal: bool) -> bool {
    let timed_out = matches!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    );
    fatal || !timed_out
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
                acked_at: std::time::SystemTime::now(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecurityProtocol;
    use crate::kafka::tests::config;

    #[test]
    fn producer_is_durable_idempotent_and_bounded() {
        let client = producer_config(&config());
        assert_eq!(client.get("bootstrap.servers"), Some("b-1:9094,b-2:9094"));
        assert_eq!(client.get("security.protocol"), Some("ssl"));
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(client.get("enable.idempotence"), Some("true"));
        assert_eq!(client.get("message.timeout.ms"), Some("4000"));
        // Half the message timeout, so a request lost with the broker times out in time.
        assert_eq!(client.get("request.timeout.ms"), Some("2000"));
        assert_eq!(client.get("compression.type"), Some("lz4"));
    }

    #[test]
    fn a_producer_is_replaced_unless_a_healthy_one_only_timed_out() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::Fatal);
        assert!(!needs_new_producer(&timed_out, false));
        assert!(needs_new_producer(&timed_out, true));
        assert!(needs_new_producer(&refused, false));
        assert!(needs_new_producer(&refused, true));
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

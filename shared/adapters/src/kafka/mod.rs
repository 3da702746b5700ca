//! The Kafka side: the [`EventPublisher`] port the handlers are written against, the records
//! it takes and the errors it reports. Its rdkafka implementation, [`KafkaPublisher`], is in
//! `producer.rs`; the service's topics and their creation in `topics.rs`.
//!
//! Authentication (SCRAM from Secrets Manager, MSK IAM tokens) lives in [`auth`].

pub mod auth;
mod producer;
mod topics;

use std::future::Future;
use std::time::{Duration, SystemTime};

use rdkafka::error::KafkaError;
use serde::Serialize;

use qgen_contract::events::Envelope;
use qgen_contract::headers::{
    CONTENT_TYPE_JSON, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_EVENT_TYPE, TRACEPARENT,
};
use qgen_contract::trace::TraceContext;

use self::auth::AuthError;

pub use self::producer::{KafkaPublisher, client_config, producer_config};
pub use self::topics::{
    AdminError, DLQ_RETENTION_MS, EVENT_PARTITIONS, EVENT_RETENTION_MS, TopicSpec, create_service_topics,
    ensure_topics, ensure_topics_with, service_topics,
};

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

/// Where the broker stored an acknowledged record, and when the acknowledgement arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition written.
    pub partition: i32,
    /// Offset assigned.
    pub offset: i64,
    /// When the publisher received the broker's acknowledgement: where the request-to-response
    /// latency ends.
    pub acked_at: SystemTime,
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

/// Serializes `event` and publishes it with key `key`, the contract's headers (`eventType`,
/// `eventId`, `content-type`, `traceparent` from `trace`) and then `extra` headers.
pub async fn publish_event<P, D>(
    publisher: &P,
    topic: &str,
    key: &str,
    event: &Envelope<D>,
    trace: &TraceContext,
    extra: &[(&str, &[u8])],
) -> Result<Delivered, PublishError>
where
    P: EventPublisher + ?Sized,
    D: Serialize,
{
    let payload = serde_json::to_vec(event).map_err(|source| PublishError::Serialize {
        event_id: event.event_id.clone(),
        source,
    })?;
    let traceparent = trace.to_header();
    let mut headers = vec![
        (HEADER_EVENT_TYPE, event.event_type.as_bytes()),
        (HEADER_EVENT_ID, event.event_id.as_bytes()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.as_bytes()),
        (TRACEPARENT, traceparent.as_bytes()),
    ];
    headers.extend_from_slice(extra);
    publisher
        .publish(OutboundRecord {
            topic,
            key: Some(key.as_bytes()),
            payload: Some(&payload),
            headers: &headers,
        })
        .await
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use crate::config::{KafkaConfig, SecurityProtocol};

    /// A TLS cluster of two brokers with the default topic names, for the unit tests of
    /// `producer` and `topics`.
    pub(crate) fn config() -> KafkaConfig {
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
}

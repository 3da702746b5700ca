//! The client commands of the local stack: `send` a request, and `demo` (send one request and
//! print its questions). Tailing the responses is the operator's `qgen tail`
//! ([`qgen_ops::tail`]), which reads the stack's broker from the state file this stack writes
//! ([`qgen_ops::connect::State`]).

use std::time::Duration;

use qgen_ops::tail::{assign_all, reader};
use rdkafka::consumer::DefaultConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message};
use serde_json::Value;
use tokio::time::Instant;

/// A client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API could not be reached.
    #[error("the API did not answer")]
    Http(#[from] reqwest::Error),
    /// The API refused the request.
    #[error("the API answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: Value,
    },
    /// Kafka failed.
    #[error("kafka failed")]
    Kafka(#[from] KafkaError),
    /// No response arrived in time.
    #[error("no response for {request_id} within {seconds} s")]
    Timeout {
        /// The request.
        request_id: String,
        /// How long we waited.
        seconds: u64,
    },
}

/// POSTs `body` to the API at `api`; returns the status and JSON body.
pub async fn send(api: &str, body: &Value) -> Result<(u16, Value), ClientError> {
    let response = reqwest::Client::new()
        .post(format!("{api}{}", question_api::ROUTE))
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Sends one request and waits for its response; returns the response event.
pub async fn demo(
    api: &str,
    bootstrap: &str,
    topic: &str,
    request: &Value,
    wait: Duration,
) -> Result<Value, ClientError> {
    let consumer = reader(
        ClientConfig::new().set("bootstrap.servers", bootstrap),
        DefaultConsumerContext,
    )?;
    // Only responses published after this point: read from the current end of each partition.
    assign_all(&consumer, topic, true)?;
    let (status, accepted) = send(api, request).await?;
    if status != 202 {
        return Err(ClientError::Refused {
            status,
            body: accepted,
        });
    }
    let request_id = accepted["request_id"].as_str().unwrap_or_default().to_owned();
    println!(
        "202 accepted: request_id={request_id} event_id={}",
        accepted["event_id"].as_str().unwrap_or_default()
    );
    let deadline = Instant::now() + wait;
    loop {
        let message = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(message) => message?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    request_id,
                    seconds: wait.as_secs(),
                });
            }
        };
        let event: Value = message
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(Value::Null);
        if event["eventData"]["request_id"] == request_id.as_str() {
            return Ok(event);
        }
    }
}

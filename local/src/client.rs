//! The client commands: `send` a request, `tail` the responses as the content service would
//! (de-duplicating by `eventId`), and `demo` (send one request and print its questions).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where a running stack can be reached; written by `up`, read by the client commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The broker.
    pub bootstrap: String,
    /// The API's base URL.
    pub api: String,
}

impl State {
    /// The default location of the state file.
    pub fn default_path() -> PathBuf {
        std::env::temp_dir().join("qgen-local.json")
    }

    /// Writes the state to `path`.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
    }

    /// Reads the state from `path`.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read(path).map_err(|_| ClientError::NotRunning(path.to_owned()))?;
        serde_json::from_slice(&text).map_err(|_| ClientError::NotRunning(path.to_owned()))
    }
}

/// A client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No stack seems to be running.
    #[error("no running stack found ({0} is missing): start one with `scripts/local up`")]
    NotRunning(PathBuf),
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

fn reader(bootstrap: &str) -> Result<StreamConsumer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "qgen-local-client")
        .set("enable.auto.commit", "false")
        .create()
}

/// Assigns every partition of `topic`, at its end when `from_end`, else at its beginning.
fn assign_all(consumer: &StreamConsumer, topic: &str, from_end: bool) -> Result<(), KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let offset = if from_end {
            let (_low, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
            Offset::Offset(high)
        } else {
            Offset::Beginning
        };
        assignment.add_partition_offset(topic, partition.id(), offset)?;
    }
    consumer.assign(&assignment)
}

/// Prints every response event on `topic` until `shutdown`, ignoring repeated `eventId`s as
/// the content service should (retried batches re-publish the same event).
pub async fn tail(
    bootstrap: &str,
    topic: &str,
    from_beginning: bool,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    let consumer = reader(bootstrap)?;
    assign_all(&consumer, topic, !from_beginning)?;
    let mut seen = HashSet::new();
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message?,
            () = shutdown.cancelled() => return Ok(()),
        };
        let event: Value = message
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(Value::Null);
        let event_id = event["eventId"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(event_id.clone()) {
            println!("(duplicate {event_id} ignored)");
            continue;
        }
        println!("{}", describe(&event));
    }
}

/// Sends one request and waits for its response; returns the response event.
pub async fn demo(
    api: &str,
    bootstrap: &str,
    topic: &str,
    request: &Value,
    wait: Duration,
) -> Result<Value, ClientError> {
    let consumer = reader(bootstrap)?;
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

/// A response event as a person reads it: one line, then the questions.
pub fn describe(event: &Value) -> String {
    let data = &event["eventData"];
    let mut out = format!(
        "{} request_id={} status={}",
        event["eventId"].as_str().unwrap_or("?"),
        data["request_id"].as_str().unwrap_or("?"),
        data["status"].as_str().unwrap_or("?"),
    );
    if let Some(source) = data["source"].as_str() {
        out.push_str(&format!(" source={source}"));
    }
    if let Some(code) = data["error"]["code"].as_str() {
        out.push_str(&format!(
            " error={code}: {}",
            data["error"]["message"].as_str().unwrap_or("")
        ));
    }
    for (i, q) in data["questions"].as_array().into_iter().flatten().enumerate() {
        out.push_str(&format!(
            "\n  {}. {}",
            i + 1,
            q["question"].as_str().unwrap_or("")
        ));
        for option in q["options"].as_array().into_iter().flatten() {
            let mark = if option == &q["correct_answer"] { "*" } else { " " };
            out.push_str(&format!("\n     {mark} {}", option.as_str().unwrap_or("")));
        }
    }
    out
}

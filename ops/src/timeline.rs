//! `timeline REQUEST_ID`: one request's way through the service, read from the topics alone —
//! accepted (the request record: partition, offset, time), the batch that took it and its
//! Gemini calls (the response record's `qgen-*` headers), each response published, any dead
//! letter or record the trigger gave up — with times and the trace id that finds it in the
//! functions' logs. Reading the records is [`read`]; making them a timeline is pure
//! ([`timeline`]), so it is tested without a broker.

use std::collections::BTreeMap;
use std::time::Duration;

use qgen_adapters::config::KafkaConfig;
use qgen_contract::headers::{
    HEADER_BATCH_INVOKED_AT, HEADER_GEMINI_CALLS, HEADER_GEMINI_MODEL, HEADER_GEMINI_MS, TRACEPARENT,
};
use qgen_contract::trace::TraceContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

/// A record of one of the service's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its Kafka timestamp, in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// Its headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Its value.
    pub value: Option<Vec<u8>>,
}

impl Record {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn json(&self) -> Value {
        self.value
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or(Value::Null)
    }

    fn place(&self) -> String {
        format!("{}[{}]@{}", self.topic, self.partition, self.offset)
    }

    fn trace_id(&self) -> Option<String> {
        self.header(TRACEPARENT)
            .and_then(TraceContext::parse)
            .map(|t| t.trace_id())
    }
}

/// The service's topics, by role.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `question.request`.
    pub request: String,
    /// `question.response`.
    pub response: String,
    /// `question.request.dlq`.
    pub dlq: String,
    /// `question.request.failed`.
    pub failed: String,
}

impl From<&KafkaConfig> for Topics {
    fn from(kafka: &KafkaConfig) -> Self {
        Topics {
            request: kafka.request_topic.clone(),
            response: kafka.response_topic.clone(),
            dlq: kafka.dlq_topic.clone(),
            failed: kafka.failed_topic.clone(),
        }
    }
}

impl Topics {
    /// The four, for [`read`].
    pub fn names(&self) -> [&str; 4] {
        [&self.request, &self.response, &self.dlq, &self.failed].map(String::as_str)
    }
}

/// One step of a request's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// What happened, in a few words.
    pub what: String,
}

/// The steps the records of one request tell, oldest first.
pub fn timeline(topics: &Topics, records: &[Record]) -> Vec<Step> {
    let mut steps = Vec::new();
    for record in records {
        let trace = record
            .trace_id()
            .map_or_else(|| "no valid traceparent".to_owned(), |id| format!("trace {id}"));
        let event = record.json();
        let event_id = event["eventId"].as_str().unwrap_or("?");
        if record.topic == topics.request {
            let at = time_of(&event["timestamp"]).or(record.timestamp_ms);
            steps.extend(at.map(|at_ms| Step {
                at_ms,
                what: format!("accepted            {} {event_id} ({trace})", record.place()),
            }));
        } else if record.topic == topics.response {
            if let Some(at_ms) = record
                .header(HEADER_BATCH_INVOKED_AT)
                .and_then(|t| time_of(&t.into()))
            {
                steps.push(Step {
                    at_ms,
                    what: "batch invoked       (the invocation that answered)".into(),
                });
                if let Some(calls) = record.header(HEADER_GEMINI_CALLS) {
                    steps.push(Step {
                        at_ms,
                        what: format!(
                            "gemini              {calls} call(s), {} ms in all, model {}",
                            record.header(HEADER_GEMINI_MS).unwrap_or("?"),
                            record.header(HEADER_GEMINI_MODEL).unwrap_or("?")
                        ),
                    });
                }
            }
            let data = &event["eventData"];
            let status = match data["error"]["code"].as_str() {
                Some(code) => format!("failed: {code}"),
                None => data["status"].as_str().unwrap_or("?").to_owned(),
            };
            steps.extend(record.timestamp_ms.map(|at_ms| Step {
                at_ms,
                what: format!(
                    "response published {} {event_id} {status} ({trace})",
                    record.place()
                ),
            }));
        } else {
            let what = if record.topic == topics.dlq {
                "dead-lettered"
            } else {
                "given up by trigger"
            };
            steps.extend(record.timestamp_ms.map(|at_ms| Step {
                at_ms,
                what: format!("{what:<19} {}", record.place()),
            }));
        }
    }
    steps.sort_by_key(|s| s.at_ms);
    steps
}

/// `steps` as a person reads them: the time of each and the time since the first.
pub fn render(request_id: &str, steps: &[Step]) -> String {
    let Some(first) = steps.first() else {
        return format!("no record of {request_id} on the service's topics");
    };
    let mut out = format!("request {request_id}");
    for step in steps {
        let since = Duration::from_millis((step.at_ms - first.at_ms).max(0) as u64);
        out.push_str(&format!(
            "\n  {}  +{:>8.3} s  {}",
            qgen_contract::on_failure::rfc3339_millis(step.at_ms),
            since.as_secs_f64(),
            step.what
        ));
    }
    out
}

/// A JSON string holding an RFC 3339 time, in milliseconds since the epoch.
fn time_of(value: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Reading the topics failed.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// The broker refused or could not be reached.
    #[error("kafka failed")]
    Kafka(#[from] KafkaError),
    /// No record arrived for this long while some partition had not reached its end.
    #[error("no record arrived for {0:?} before every partition was read to its end")]
    Stalled(Duration),
}

/// How long reading may go without a record before it gives up, as `replay` does.
const STALL: Duration = Duration::from_secs(30);

/// Every record keyed `request_id` on `topics`, each read from its start to its end when the
/// call began (a topic that does not exist is skipped). `context` carries the authentication
/// (MSK IAM tokens), as for `replay`.
pub async fn read<C: ConsumerContext + 'static>(
    client: &ClientConfig,
    context: C,
    topics: &[&str],
    request_id: &str,
) -> Result<Vec<Record>, TimelineError> {
    let consumer: StreamConsumer<C> = client
        .clone()
        .set("group.id", "qgen-timeline")
        .set("enable.auto.commit", "false")
        .create_with_context(context)?;
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
            for partition in t.partitions().iter().map(|p| p.id()) {
                let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
                if low < high {
                    assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
                    ends.insert(((*topic).to_owned(), partition), high);
                }
            }
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let mut records = Vec::new();
    while !ends.is_empty() {
        let message = tokio::time::timeout(STALL, consumer.recv())
            .await
            .map_err(|_| TimelineError::Stalled(STALL))??;
        let place = (message.topic().to_owned(), message.partition());
        match ends.get(&place) {
            Some(&end) if message.offset() + 1 >= end => {
                ends.remove(&place);
            }
            Some(_) => {}
            None => continue,
        }
        if message.key() != Some(request_id.as_bytes()) {
            continue;
        }
        records.push(Record {
            topic: place.0,
            partition: place.1,
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            headers: message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            value: message.payload().map(<[u8]>::to_vec),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topics() -> Topics {
        Topics {
            request: "question.request".into(),
            response: "question.response".into(),
            dlq: "question.request.dlq".into(),
            failed: "question.request.failed".into(),
        }
    }

    fn record(topic: &str, offset: i64, timestamp_ms: i64, headers: &[(&str, &str)], value: Value) -> Record {
        Record {
            topic: topic.into(),
            partition: 1,
            offset,
            timestamp_ms: Some(timestamp_ms),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            value: Some(value.to_string().into_bytes()),
        }
    }

    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_records_of_a_request_tell_its_steps_in_time_order() {
        let request = record(
            "question.request",
            41,
            1_795_773_600_020,
            &[(TRACEPARENT, TRACE)],
            json!({"eventId": "evt_req", "timestamp": "2026-11-27T10:00:00.000Z"}),
        );
        let response = record(
            "question.response",
            7,
            1_795_773_604_500,
            &[
                (
                    TRACEPARENT,
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
                ),
                (HEADER_BATCH_INVOKED_AT, "2026-11-27T10:00:01.000Z"),
                (HEADER_GEMINI_CALLS, "2"),
                (HEADER_GEMINI_MS, "3200"),
                (HEADER_GEMINI_MODEL, "gemini-3.6-flash"),
            ],
            json!({"eventId": "evt_resp", "eventData": {"status": "completed"}}),
        );

        let steps = timeline(&topics(), &[response, request]);

        let whats: Vec<&str> = steps
            .iter()
            .map(|s| s.what.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(whats, ["accepted", "batch", "gemini", "response"]);
        assert_eq!(
            steps.iter().map(|s| s.at_ms - steps[0].at_ms).collect::<Vec<_>>(),
            [0, 1_000, 1_000, 4_500]
        );
        assert!(
            steps[0]
                .what
                .contains("question.request[1]@41 evt_req (trace 4bf92f3577b34da6a3ce929d0e0e4736)")
        );
        assert!(
            steps[2]
                .what
                .contains("2 call(s), 3200 ms in all, model gemini-3.6-flash")
        );
        assert!(
            steps[3]
                .what
                .contains("evt_resp completed (trace 4bf92f3577b34da6a3ce929d0e0e4736)")
        );
        let text = render("req-1", &steps);
        assert!(
            text.contains("2026-11-27T10:00:04.500Z  +   4.500 s  response published"),
            "{text}"
        );
    }

    #[test]
    fn failures_dead_letters_and_given_up_records_are_steps_too() {
        let failed = record(
            "question.response",
            8,
            5_000,
            &[],
            json!({"eventId": "e", "eventData": {"status": "failed", "error": {"code": "gemini_quota_exhausted"}}}),
        );
        let dead = record("question.request.dlq", 3, 2_000, &[], json!("poison"));
        let given_up = record("question.request.failed", 0, 9_000, &[], json!({}));

        let steps = timeline(&topics(), &[failed, dead, given_up]);

        assert!(steps[0].what.starts_with("dead-lettered"));
        assert!(
            steps[1]
                .what
                .contains("failed: gemini_quota_exhausted (no valid traceparent)")
        );
        assert!(steps[2].what.starts_with("given up by trigger"));
        assert_eq!(render("req-x", &[]), "no record of req-x on the service's topics");
    }
}

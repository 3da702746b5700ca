//! `qgen tail`: the response events of `question.response` as the content service should read
//! them, one line each with their questions, de-duplicated by `eventId` (a retried batch
//! publishes the same event again).

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A consumer of `client`'s brokers that reads without committing anything (no group offsets
/// are moved: tailing never changes what another reader sees).
pub fn reader<C: ConsumerContext + 'static>(
    client: &ClientConfig,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
    client
        .clone()
        .set("group.id", "qgen-tail")
        .set("enable.auto.commit", "false")
        .create_with_context(context)
}

/// Assigns every partition of `topic`, at its end when `from_end`, else at its beginning.
pub fn assign_all<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    from_end: bool,
) -> Result<(), KafkaError> {
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
/// the content service should.
pub async fn tail<C: ConsumerContext + 'static>(
    client: &ClientConfig,
    context: C,
    topic: &str,
    from_beginning: bool,
    shutdown: CancellationToken,
) -> Result<(), KafkaError> {
    let consumer = reader(client, context)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_completed_event_reads_as_a_line_and_its_questions_with_the_answer_marked() {
        let event = json!({"eventId": "e-1", "eventData": {
            "request_id": "r-1", "status": "completed", "source": "gemini",
            "questions": [{"question": "What does len([1, 2]) return?",
                           "options": ["1", "2"], "correct_answer": "2"}]
        }});
        assert_eq!(
            describe(&event),
            "e-1 request_id=r-1 status=completed source=gemini\n  1. What does len([1, 2]) return?\n       1\n     * 2"
        );
    }

    #[test]
    fn a_failed_event_reads_with_its_code_and_message() {
        let event = json!({"eventId": "e-2", "eventData": {
            "request_id": "r-2", "status": "failed",
            "error": {"code": "gemini_quota_exhausted", "message": "the daily quota is spent"}
        }});
        assert_eq!(
            describe(&event),
            "e-2 request_id=r-2 status=failed error=gemini_quota_exhausted: the daily quota is spent"
        );
    }
}

//! What the benchmarks share: the mock broker, the functions' configuration pointed at the
//! stand-ins, and the requests measured (one API request, a batch of request records).

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_adapters::msk::record_json;
use qgen_contract::events::RequestEvent;
use qgen_contract::headers::{HEADER_EVENT_ID, HEADER_EVENT_TYPE};
use qgen_contract::msk::kafka_event;
use qgen_contract::validation::{Limits, parse_request_body};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::{BenchError, fail};

/// The topic the API publishes requests to.
pub(crate) const REQUEST_TOPIC: &str = "question.request";
/// The topic the generator publishes responses to.
pub(crate) const RESPONSE_TOPIC: &str = "question.response";
const DLQ_TOPIC: &str = "question.request.dlq";
/// The request body of the `publish` benchmark.
pub(crate) const BODY: &str = r#"{"topic":"Python Loops","num_questions":5,"difficulty":"medium"}"#;

/// A one-broker mock cluster with the service's topics.
pub(crate) fn mock_broker() -> Result<MockCluster<'static, DefaultProducerContext>, BenchError> {
    let cluster = MockCluster::new(1).map_err(|e| fail("mock cluster", e))?;
    for (topic, partitions) in [(REQUEST_TOPIC, 3), (RESPONSE_TOPIC, 3), (DLQ_TOPIC, 1)] {
        cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| fail("mock topic", e))?;
    }
    Ok(cluster)
}

/// The functions' configuration with everything at its default but the broker and Gemini.
pub(crate) fn lookup(bootstrap: &str, gemini: Option<&str>) -> impl Fn(&str) -> Option<String> + use<> {
    let bootstrap = bootstrap.to_owned();
    let gemini = gemini.map(str::to_owned);
    move |var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.clone()),
        "GOOGLE_API_KEY" => Some("bench-key".to_owned()),
        "GEMINI_BASE_URL" => gemini.clone(),
        _ => None,
    }
}

/// The API Gateway request of the `publish` benchmark, carrying [`BODY`].
pub(crate) fn api_request() -> Result<lambda_http::Request, BenchError> {
    http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("https://api.example{}", question_api::ROUTE))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(lambda_http::Body::from(BODY.as_bytes().to_vec()))
        .map_err(|e| fail("request", e))
}

/// `n` request records on `question.request`, as the broker would hold them, spread over three
/// partitions.
fn request_messages(n: usize) -> Result<Vec<OwnedMessage>, BenchError> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"request_id":"bench-{i}","topic":"Python Loops {i}","num_questions":5,"difficulty":"medium"}}"#
            );
            let request =
                parse_request_body(body.as_bytes(), &Limits::default()).map_err(|e| fail("body", e))?;
            let event = RequestEvent::new_request(request);
            let payload = serde_json::to_vec(&event).map_err(|e| fail("event", e))?;
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: HEADER_EVENT_TYPE,
                    value: Some(event.event_type.as_bytes()),
                })
                .insert(Header {
                    key: HEADER_EVENT_ID,
                    value: Some(event.event_id.as_bytes()),
                });
            Ok(OwnedMessage::new(
                Some(payload),
                Some(event.event_data.request_id.into_bytes()),
                REQUEST_TOPIC.to_owned(),
                rdkafka::Timestamp::CreateTime(1_795_773_600_000),
                (i % 3) as i32,
                (i / 3) as i64,
                Some(headers),
            ))
        })
        .collect()
}

/// The MSK batch of the `batch` benchmark: [`BATCH`](crate::BATCH) requests of five questions each.
pub fn batch_event(n: usize, bootstrap: &str) -> Result<KafkaEvent, BenchError> {
    let messages = request_messages(n)?;
    Ok(kafka_event(
        messages.iter().map(record_json),
        "arn:aws:kafka:eu-west-1:000000000000:cluster/bench/bench",
        bootstrap,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::BATCH;

    #[test]
    fn the_benchmark_batch_is_a_real_msk_event_of_distinct_requests() {
        let event = batch_event(BATCH, "127.0.0.1:9092").unwrap();
        let records: Vec<_> = event.records.values().flatten().collect();
        assert_eq!(records.len(), BATCH);
        assert_eq!(event.records.len(), 3);
        let keys: HashSet<_> = records.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys.len(), BATCH);
    }
}

//! The handler with fast settings, and the batches it is driven with.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::kafka_event;
use qgen_testkit::{
    AnswersAsAsked, PublishedRecord, RecordingPublisher, assert_matches_schema, gemini_reply,
};
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use secrecy::SecretString;
use serde_json::Value;
use wiremock::{Request, Respond, ResponseTemplate};

pub const TWO_PARTITIONS: &str = include_str!("../../../../../events/msk-batch-two-partitions.json");
pub const POISON: &str = include_str!("../../../../../events/msk-batch-poison.json");

/// Fast Gemini settings: millisecond backoff, three attempts, and a breaker that stays out of
/// the way (it has tests of its own in `gemini_breaker.rs`).
pub fn config(bootstrap: &str, gemini_url: &str, concurrency: usize) -> GeneratorConfig {
    config_with(bootstrap, gemini_url, concurrency, &[])
}

pub fn config_with(
    bootstrap: &str,
    gemini_url: &str,
    concurrency: usize,
    overrides: &[(&'static str, &str)],
) -> GeneratorConfig {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
        ("GEMINI_BASE_URL", gemini_url.to_owned()),
        ("GEMINI_TIMEOUT_MS", "2000".to_owned()),
        ("GENERATION_CONCURRENCY", concurrency.to_string()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "5000".to_owned()),
        ("GEMINI_MAX_ATTEMPTS", "3".to_owned()),
        ("GEMINI_BACKOFF_BASE_MS", "1".to_owned()),
        ("GEMINI_BACKOFF_MAX_MS", "5".to_owned()),
        ("GEMINI_BREAKER_THRESHOLD", "1000".to_owned()),
    ]);
    vars.extend(overrides.iter().map(|(k, v)| (*k, (*v).to_owned())));
    GeneratorConfig::from_lookup(|var| vars.get(var).cloned()).unwrap()
}

pub fn gemini(config: &GeneratorConfig) -> GeminiClient {
    GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap()
}

pub fn batch(json: &str) -> KafkaEvent {
    serde_json::from_str(json).expect("sample MSK event parses")
}

/// The response records, by request_id; each checked against the documented schema.
pub fn responses(publisher: &RecordingPublisher) -> HashMap<String, PublishedRecord> {
    publisher
        .on_topic("question.response")
        .into_iter()
        .inspect(|r| assert_matches_schema("response-event.schema.json", &r.json()))
        .map(|r| (r.key_str().unwrap().to_owned(), r))
        .collect()
}

pub fn request_message(partition: i32, offset: i64, request_id: &str) -> OwnedMessage {
    let request = GenerationRequest {
        request_id: request_id.to_owned(),
        topic: format!("Topic {offset}"),
        num_questions: 1,
        difficulty: Difficulty::Easy,
        context: None,
    };
    message_of(partition, offset, &request)
}

/// The record of a fresh request event for `request` at `partition`/`offset` of
/// question.request, keyed by its `request_id`, with its `eventType` header.
pub fn message_of(partition: i32, offset: i64, request: &GenerationRequest) -> OwnedMessage {
    let event = RequestEvent::new_request(request.clone());
    OwnedMessage::new(
        Some(serde_json::to_vec(&event).unwrap()),
        Some(request.request_id.as_bytes().to_vec()),
        "question.request".into(),
        rdkafka::Timestamp::CreateTime(1_795_773_600_000),
        partition,
        offset,
        Some(OwnedHeaders::new().insert(Header {
            key: "eventType",
            value: Some("question.generation.request"),
        })),
    )
}

/// `message` with a `traceparent` header added.
pub fn with_traceparent(mut message: OwnedMessage, traceparent: &str) -> OwnedMessage {
    let headers = message.detach_headers().unwrap_or_default().insert(Header {
        key: "traceparent",
        value: Some(traceparent),
    });
    message.replace_headers(Some(headers))
}

/// A batch of `n` requests for one easy question each, "Topic 0" to "Topic n-1" (`req-0`…),
/// spread over three partitions.
pub fn numbered_batch(n: usize) -> KafkaEvent {
    let records: Vec<Value> = (0..n)
        .map(|i| record_json(&request_message((i % 3) as i32, i as i64, &format!("req-{i}"))))
        .collect();
    kafka_event(records, "arn:aws:kafka:local", "127.0.0.1:9092")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Answer,
    TooManyRequests,
    Unavailable,
    Malformed,
}

/// Gemini on a bad day, deterministic whatever the order the calls arrive in: what call `n` for
/// "Topic k" gets is `script(k)[n]` (the last step repeats). Over the 20 requests of
/// [`numbered_batch`] that is 30 calls: 9 (30 %) fail with 429 or 503 and 3 (10 %) are
/// malformed JSON; 18 requests end `completed`, `req-11` never gets past the 503s and `req-18`
/// is malformed even after the repair call.
pub fn script(k: usize) -> &'static [Reply] {
    use Reply::*;
    match k {
        1 | 7 | 13 => &[TooManyRequests, Answer],
        4 | 10 | 16 => &[Unavailable, Answer],
        8 => &[Malformed, Answer],
        11 => &[Unavailable],
        18 => &[Malformed],
        _ => &[Answer],
    }
}

#[derive(Default)]
pub struct BadDay {
    calls_by_topic: Mutex<HashMap<usize, usize>>,
    pub replies: Mutex<Vec<Reply>>,
}

impl Respond for BadDay {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let parts = body["contents"][0]["parts"].as_array().unwrap();
        let data: Value = serde_json::from_str(parts.last().unwrap()["text"].as_str().unwrap()).unwrap();
        let k: usize = data["topic"].as_str().unwrap()["Topic ".len()..].parse().unwrap();
        let n = {
            let mut calls = self.calls_by_topic.lock().unwrap();
            let n = calls.entry(k).or_default();
            *n += 1;
            *n - 1
        };
        let steps = script(k);
        let reply = steps[n.min(steps.len() - 1)];
        self.replies.lock().unwrap().push(reply);
        match reply {
            Reply::Answer => AnswersAsAsked.respond(request),
            Reply::TooManyRequests => ResponseTemplate::new(429).insert_header("retry-after", "0"),
            Reply::Unavailable => ResponseTemplate::new(503),
            Reply::Malformed => ResponseTemplate::new(200)
                .set_body_json(gemini_reply(r#"{"questions": [{"question": "#, "STOP")),
        }
    }
}

//! What the generator's responses and logs carry: each request's trace, the timeline headers,
//! the request-to-response latency, and never the API key.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use qgen_adapters::msk::record_json;
use qgen_adapters::secrets::SecretsClient;
use qgen_adapters::telemetry;
use qgen_contract::msk::kafka_event;
use qgen_contract::trace::TraceContext;
use qgen_testkit::{GeminiStandIn, MotoServer, RecordingPublisher};
use question_generator::config::ApiKeySource;
use question_generator::gemini::{GeminiClient, api_key};
use question_generator::handler::Generator;
use rdkafka::Message;
use serde_json::Value;

use crate::support::batches::{
    BadDay, config, gemini, numbered_batch, request_message, responses, with_traceparent,
};
use crate::support::later;

#[tokio::test]
async fn each_response_continues_its_requests_trace_and_meters_request_to_response() {
    let metrics = telemetry::capture();
    let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let messages = [
        with_traceparent(request_message(0, 1, "req-traced"), traced),
        request_message(0, 2, "req-untraced"),
        with_traceparent(request_message(1, 3, "req-malformed"), "00-not-a-trace-01"),
    ];
    let requested_at: HashMap<String, SystemTime> = messages
        .iter()
        .map(|m| {
            let event: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
            (
                event["eventData"]["request_id"].as_str().unwrap().to_owned(),
                at.into(),
            )
        })
        .collect();
    let event = kafka_event(
        messages.iter().map(record_json),
        "arn:aws:kafka:local",
        "127.0.0.1:9092",
    );
    let stand_in = GeminiStandIn::answering().await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);

    let report = generator.handle(&event, later()).await;

    assert_eq!(report.completed, 3);
    let responses = responses(&publisher);
    let header = |id: &str| responses[id].header("traceparent").unwrap().to_owned();
    let trace_id = |id: &str| {
        TraceContext::parse(&header(id))
            .expect("a valid traceparent")
            .trace_id()
    };
    assert_eq!(trace_id("req-traced"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(header("req-traced"), traced, "a span of the generator's own");
    assert!(
        !header("req-malformed").contains("not-a-trace"),
        "replaced, not propagated"
    );
    assert_ne!(trace_id("req-untraced"), trace_id("req-malformed"));
    // The timeline headers: the invocation that answered, and the one Gemini call each made.
    for id in ["req-traced", "req-untraced", "req-malformed"] {
        let invoked = responses[id].header("qgen-batch-invoked-at").unwrap();
        let invoked: SystemTime = chrono::DateTime::parse_from_rfc3339(invoked).unwrap().into();
        assert!(invoked >= requested_at[id] - Duration::from_millis(1) && invoked <= responses[id].acked_at);
        assert_eq!(responses[id].header("qgen-gemini-calls"), Some("1"), "{id}");
        assert_eq!(
            responses[id].header("qgen-gemini-model"),
            Some("gemini-3.6-flash"),
            "{id}"
        );
        assert!(
            responses[id]
                .header("qgen-gemini-ms")
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
    }
    // One latency record per response: from the request's timestamp to the acknowledgement.
    let latencies: Vec<Value> = metrics
        .records()
        .into_iter()
        .filter(|r| r.get("RequestToResponse").is_some())
        .collect();
    assert_eq!(latencies.len(), 3, "{latencies:?}");
    for record in latencies {
        let request_id = record["request_id"].as_str().unwrap();
        assert_eq!(record["Outcome"], "completed");
        assert_eq!(record["trace_id"], trace_id(request_id).as_str());
        let expected = responses[request_id]
            .acked_at
            .duration_since(requested_at[request_id])
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let measured = record["RequestToResponse"].as_f64().unwrap();
        assert!(
            (measured - expected).abs() <= 1.0,
            "{request_id}: {measured} ms, records say {expected} ms"
        );
    }
}

#[tokio::test]
async fn the_api_key_never_appears_in_anything_the_generator_logs() {
    let key = "AIzaSy-never-log-this-key-0042";
    let moto = MotoServer::start().await;
    let arn = moto.create_secret("qgen/gemini", key).await;
    let stand_in = GeminiStandIn::start(BadDay::default()).await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let (logs, _logging) = qgen_testkit::capture_logs();

    // What the function does from cold start on: fetch the key, then answer a batch with
    // successes, retries, repairs and failures.
    let key_source = ApiKeySource::SecretArn(arn);
    let api_key = api_key(&key_source, async { SecretsClient::new(moto.secrets_manager()) })
        .await
        .unwrap();
    let generator = Generator::new(
        GeminiClient::new(&config.gemini, api_key).unwrap(),
        &publisher,
        &config,
    );
    let report = generator.handle(&numbered_batch(20), later()).await;

    let text = logs.text();
    assert_eq!((report.completed, report.failed), (18, 2));
    assert_eq!(
        stand_in.calls().await[0].headers.get("x-goog-api-key").unwrap(),
        key
    );
    for expected in [
        "secret fetched",
        "gemini answered",
        "retrying gemini",
        "asking gemini to repair",
        "generation failed",
        "generation completed",
        "gemini answered with an error status",
        "gemini_calls=2",
        "total_tokens=",
    ] {
        assert!(text.contains(expected), "no {expected:?} in the logs:\n{text}");
    }
    assert!(!text.contains(key), "the API key was logged:\n{text}");
    assert!(!text.contains("never-log-this"), "part of the API key was logged");
}

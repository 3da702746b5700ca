//! One request's trace and timeline, end to end: over HTTP into the local stack (API, broker,
//! trigger emulator, generator, a Gemini stand-in), read back from the topics by `timeline`.

use std::net::SocketAddr;
use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_contract::trace::TraceContext;
use qgen_local::stack::{UpOptions, up};
use qgen_ops::timeline::{self, Record, Topics};
use rdkafka::ClientConfig;
use rdkafka::consumer::DefaultConsumerContext;
use serde_json::json;

/// The topics the stack runs with: the configuration's defaults.
fn topics() -> Topics {
    let config =
        ApiConfig::from_lookup(|var| (var == "KAFKA_BOOTSTRAP_SERVERS").then(|| "b:9092".into())).unwrap();
    Topics::from(&config.kafka)
}

fn trace_of(record: &Record) -> String {
    let (_, value) = record.headers.iter().find(|(k, _)| k == "traceparent").unwrap();
    let header = std::str::from_utf8(value).unwrap();
    TraceContext::parse(header)
        .unwrap_or_else(|| panic!("invalid traceparent {header}"))
        .trace_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_trace_and_timeline_are_read_back_from_its_records() {
    let (gemini, gemini_stand_in) = super::gemini::stand_in().await;
    let options = UpOptions {
        api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        partitions: 3,
        batch_size: 10,
        batching_window: Duration::from_millis(100),
        invoke_url: None,
        state_file: None,
    };
    let stack = up(&options, |var| match var {
        "GOOGLE_API_KEY" => Some("stand-in-key".into()),
        "GEMINI_BASE_URL" => Some(gemini.clone()),
        _ => None,
    })
    .await
    .unwrap();
    assert!(!stack.is_offline());
    let callers = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let http = reqwest::Client::new();
    for (request_id, traceparent) in [
        ("tl-traced", Some(callers)),
        ("tl-plain", None),
        ("tl-malformed", Some("00-zzzz-00f067aa0ba902b7-01")),
    ] {
        let mut post = http
            .post(format!("{}{}", stack.api_url(), question_api::ROUTE))
            .json(&json!({"request_id": request_id, "topic": "Python Loops", "num_questions": 2}));
        if let Some(traceparent) = traceparent {
            post = post.header("traceparent", traceparent);
        }
        assert_eq!(post.send().await.unwrap().status(), 202, "{request_id}");
    }
    let bootstrap = stack.bootstrap_servers();
    // Waits for the three answers.
    let responses =
        qgen_testkit::read_topic(&bootstrap, "question.response", 3, Duration::from_secs(60)).await;
    assert_eq!(responses.len(), 3);
    let client = ClientConfig::new().set("bootstrap.servers", &bootstrap).clone();
    let topics = topics();

    let mut traces = Vec::new();
    for request_id in ["tl-traced", "tl-plain", "tl-malformed"] {
        let records = timeline::read(&client, DefaultConsumerContext, &topics.names(), request_id)
            .await
            .unwrap();
        let steps = timeline::timeline(&topics, &records);

        let kinds: Vec<&str> = steps
            .iter()
            .map(|s| s.what.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["accepted", "batch", "gemini", "response"],
            "{request_id}: {steps:#?}"
        );
        assert!(steps[2].what.contains("1 call(s)"), "{}", steps[2].what);
        let request = records.iter().find(|r| r.topic == "question.request").unwrap();
        let response = records.iter().find(|r| r.topic == "question.response").unwrap();
        assert_eq!(
            trace_of(request),
            trace_of(response),
            "{request_id}: one trace end to end"
        );
        traces.push(trace_of(request));
    }
    stack.stop().await;
    drop(gemini_stand_in);

    assert_eq!(
        traces[0], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the caller's trace"
    );
    assert_ne!(traces[1], traces[2], "a new trace each");
    assert!(!traces.contains(&"zzzz".to_owned()));
}

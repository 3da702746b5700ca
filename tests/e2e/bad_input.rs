//! Bad input gets a clear answer and loses nothing (docs/DESIGN.md, promises 3 and 4):
//!
//! - a corpus of malformed HTTP requests, sent over real HTTP to the API server, each answered
//!   with the right 4xx and a JSON error naming the problem, and nothing published;
//! - every kind of poison record on a real broker goes to the DLQ with its source coordinates
//!   and the error, and the records after it on the same partition are still answered.
//!
//! `corpus` holds the malformed requests; `poison` the poison records.

mod corpus;
mod poison;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_contract::api::ApiErrorCode;
use qgen_testkit::MockBroker;
use question_api::Api;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::corpus::corpus;

fn config_lookup(vars: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
    move |var| vars.get(var).cloned()
}

/// Records on every partition of `topic` (sum of high watermarks).
fn records_on(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "watermarks")
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_a_json_4xx_naming_the_problem_and_nothing_is_published() {
    let broker = MockBroker::with_service_topics();
    let bootstrap = broker.bootstrap_servers();
    let config = ApiConfig::from_lookup(config_lookup(HashMap::from([(
        "KAFKA_BOOTSTRAP_SERVERS",
        bootstrap.clone(),
    )])))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let api = Arc::new(Api::new(KafkaPublisher::new(&config.kafka).unwrap(), &config));
    let server = tokio::spawn(qgen_local::http::serve(listener, api, shutdown.clone()));
    let http = reqwest::Client::new();
    let url = format!("{base}{}", question_api::ROUTE);
    let cases = corpus();
    // The corpus reaches every error the API can give a caller but two: `not_found` (the wrong
    // path below) and `unavailable` (no broker: tests/e2e/faults.rs).
    let mut covered: Vec<ApiErrorCode> = cases.iter().map(|case| case.code).collect();
    covered.extend([ApiErrorCode::NotFound, ApiErrorCode::Unavailable]);
    for code in ApiErrorCode::ALL {
        assert!(
            covered.contains(&code),
            "no case is answered with {}",
            code.as_str()
        );
    }

    let mut wrong = Vec::new();
    for case in &cases {
        let mut request = http
            .request(case.method.parse().unwrap(), &url)
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let is_json = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        let field = error["field"].as_str();
        let code = error["code"].as_str();
        let explained = error["message"].as_str().is_some_and(|m| !m.is_empty());
        if status != case.status
            || !is_json
            || code != Some(case.code.as_str())
            || !explained
            || field != case.field
        {
            wrong.push(format!("{}: {status} {body}", case.name));
        }
    }
    let wrong_path = http
        .post(format!("{base}/other"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let wrong_path_status = wrong_path.status();
    let not_found: Value = wrong_path.json().await.unwrap();
    let published = records_on(&bootstrap, "question.request");
    // A valid request still goes through: the server survived the corpus.
    let valid = http
        .post(&url)
        .json(&json!({"topic": "Python Loops", "num_questions": 1}))
        .send()
        .await
        .unwrap();
    shutdown.cancel();
    let _ = server.await;

    assert!(
        wrong.is_empty(),
        "{} of {} answered wrongly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(wrong_path_status, 404);
    assert_eq!(not_found["error"]["code"], "not_found");
    assert_eq!(published, 0, "a rejected request was published");
    assert_eq!(valid.status(), 202);
}

//! `qgen topics`, `qgen replay --dry-run`, `qgen recommend` and a `qgen` with no broker to talk
//! to, run as processes.

use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use qgen_testkit::{MockBroker, TansuBroker};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

/// Runs `qgen` with `args` and only the `KAFKA_*` variables in `env`.
async fn qgen(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qgen"));
    command.args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("KAFKA_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output().expect("run qgen"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_creates_the_service_topics_on_the_broker_the_kafka_variables_name() {
    let broker = TansuBroker::start(&[]).await;
    let bootstrap = broker.bootstrap_servers();

    let output = qgen(
        &["topics", "--replication", "1"],
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
            ("KAFKA_QUESTION_FAILED_TOPIC", "qgen.given-up"),
        ],
    )
    .await;

    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for topic in [
        "question.request (",
        "question.response (",
        "question.request.dlq (",
        "qgen.given-up (",
    ] {
        assert!(stdout.contains(topic), "{topic} missing from:\n{stdout}");
    }
    assert_eq!(stdout.matches("replication 1): ready").count(), 4, "{stdout}");
}

/// An on-failure record as Lambda writes it, holding the request record of `request_id`.
fn given_up(request_id: &str, offset: i64) -> serde_json::Value {
    json!({
        "requestContext": {"requestId": "f", "functionArn": "arn:aws:lambda:eu-west-1:1:function:g",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "version": "1.0", "timestamp": "2026-12-07T10:00:00.000Z",
        "KafkaBatchInfo": {"batchSize": 1, "eventSourceArn": "arn:aws:kafka:eu-west-1:1:cluster/c/1",
                           "bootstrapServers": "b", "payloadSize": 1,
                           "recordInfo": {"offset": offset.to_string(), "timestamp": "2026-12-07T09:59:00.000Z"}},
        "payload": {"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:eu-west-1:1:cluster/c/1",
                    "bootstrapServers": "b", "records": {"question.request-0": [{
            "topic": "question.request", "partition": 0, "offset": offset,
            "timestamp": 1_796_637_540_000_i64, "timestampType": "CREATE_TIME",
            "key": STANDARD.encode(request_id), "value": STANDARD.encode(format!("{{\"id\":\"{request_id}\"}}")),
            "headers": []
        }]}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_the_local_stacks_broker_from_its_state_file_and_keeps_to_its_filters() {
    let broker = MockBroker::with_service_topics();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    for (id, offset) in [("r-1", 7), ("r-2", 8)] {
        let value = given_up(id, offset).to_string();
        producer
            .send(
                FutureRecord::to("question.request.failed")
                    .key(id)
                    .payload(&value)
                    .partition(0),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("qgen-local.json");
    std::fs::write(
        &state_file,
        json!({"bootstrap": broker.bootstrap_servers(), "api": "http://127.0.0.1:9"}).to_string(),
    )
    .unwrap();

    let output = qgen(
        &[
            "--state-file",
            state_file.to_str().unwrap(),
            "replay",
            "--dry-run",
            "--request-id",
            "r-2",
        ],
        &[],
    )
    .await;

    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout
            .contains("would replay question.request.failed/0@1 (was question.request/0@8, request_id r-2)"),
        "{stdout}"
    );
    assert!(!stdout.contains("r-1"), "{stdout}");
    assert!(
        stdout.contains(
            "question.request.failed: read 2, selected 1, would publish 1 to question.request, 0 unreadable"
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn with_no_broker_named_and_no_local_stack_it_fails_saying_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.json");

    let output = qgen(&["--state-file", absent.to_str().unwrap(), "tail"], &[]).await;

    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no running local stack found") && stderr.contains("KAFKA_BOOTSTRAP_SERVERS"),
        "{stderr}"
    );
}

#[tokio::test]
async fn recommend_prints_the_planners_answer_for_every_option_given() {
    let output = qgen(
        &[
            "recommend",
            "--rate",
            "20",
            "--gemini-p50",
            "3",
            "--gemini-p99",
            "9",
            "--quota-rpm",
            "2000",
            "--batching-window",
            "0.5",
            "--p99-target",
            "45",
        ],
        &[],
    )
    .await;

    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected = qgen_planner::recommend(&qgen_planner::Options {
        rate: 20.0,
        gemini_p50: 3.0,
        gemini_p99: 9.0,
        quota_rpm: Some(2000.0),
        batching_window: 0.5,
        p99_target: 45.0,
    })
    .unwrap();
    assert_eq!(text(&output.stdout), expected.to_string());
}

#[tokio::test]
async fn recommend_refuses_a_rate_that_is_not_positive_naming_it() {
    let output = qgen(&["recommend", "--rate", "0"], &[]).await;

    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--rate"),
        "{}",
        text(&output.stderr)
    );
}

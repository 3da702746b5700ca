//! `qgen topics`, `replay --dry-run`, `timeline`, `tail`, `recommend` and a `qgen` with no broker
//! to talk to, run as processes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
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
        "version": "1.0", "timestamp": "2026-01-05T10:00:00.000Z",
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

/// Produces `value` keyed `key` to partition 0 of `topic` on `broker`.
async fn produce(broker: &MockBroker, topic: &str, key: &str, value: &serde_json::Value) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    let value = value.to_string();
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(&value).partition(0),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_prints_a_requests_steps_from_the_topics() {
    let broker = MockBroker::with_service_topics();
    let request = json!({"eventId": "e-9", "timestamp": "2026-01-05T10:00:00.000Z",
                         "eventData": {"request_id": "r-9"}});
    let response = json!({"eventId": "e-10", "eventData": {"request_id": "r-9", "status": "completed"}});
    produce(&broker, "question.request", "r-9", &request).await;
    produce(&broker, "question.response", "r-9", &response).await;
    produce(&broker, "question.response", "r-8", &response).await;

    let output = qgen(
        &["timeline", "r-9"],
        &[("KAFKA_BOOTSTRAP_SERVERS", &broker.bootstrap_servers())],
    )
    .await;

    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "request r-9", "{stdout}");
    assert_eq!(lines.len(), 3, "the request and its one response:\n{stdout}");
    assert!(
        lines[1].starts_with(
            "  2026-01-05T10:00:00.000Z  +   0.000 s  accepted            question.request[0]@0 e-9"
        ),
        "{stdout}"
    );
    assert!(
        lines[2].contains("response published question.response[0]@0 e-10 completed"),
        "{stdout}"
    );
}

#[test]
fn tail_prints_each_response_once_from_the_beginning_until_interrupted() {
    let broker = MockBroker::with_service_topics();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let completed = json!({"eventId": "e-1", "eventData": {"request_id": "r-1", "status": "completed"}});
    let failed = json!({"eventId": "e-2", "eventData": {"request_id": "r-2", "status": "failed",
                                                         "error": {"code": "gemini_unavailable", "message": "down"}}});
    runtime.block_on(async {
        for event in [&completed, &completed, &failed] {
            produce(&broker, "question.response", "k", event).await;
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_qgen"))
        .args(["tail", "--from-beginning"])
        .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qgen");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        stdout
            .lines()
            .map_while(Result::ok)
            .try_for_each(|l| lines.send(l))
    });

    // Synchronised on what it prints: the three records, in order, the repeat named as such. The
    // bound only turns a tail that prints nothing (reading from the end, say) into a failure.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match printed.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("qgen tail printed only {seen:?}: {e}");
            }
        }
    }
    // Ctrl-C: it stops and succeeds.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = child.wait().unwrap();

    assert_eq!(
        seen,
        [
            "e-1 request_id=r-1 status=completed",
            "(duplicate e-1 ignored)",
            "e-2 request_id=r-2 status=failed error=gemini_unavailable: down",
        ]
    );
    assert!(status.success(), "{status:?}");
}

//! The local stack end to end over real HTTP and a real broker, read back by an independent
//! client; and (in `trigger`) the event-source-mapping emulator's batching, partial batch,
//! retry, on-failure, commit and resume rules (and, in `trigger_retries`, the backoff between retries
//! and the partitions held back meanwhile); (in `replay`) the replay command; and (in
//! `template`) that the emulator's defaults are the deployed trigger's; (in `dashboard`) that the
//! dashboard and alarms read only metrics the code emits; (in `timeline`) one request's trace and
//! timeline read back from its records; (in `oversized_body`) that a body over the read limit
//! gets a 413 the client can read.

mod dashboard;
mod gemini;
mod oversized_body;
mod replay;
mod template;
mod timeline;
mod trigger;
mod trigger_retries;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use qgen_local::client;
use qgen_local::stack::{UpOptions, up};
use qgen_testkit::assert_matches_schema;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_posted_over_http_get_responses_an_independent_client_reads() {
    let options = UpOptions {
        api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        partitions: 3,
        batch_size: 100,
        batching_window: Duration::from_millis(200),
        invoke_url: None,
        state_file: None,
    };
    // No KAFKA_BOOTSTRAP_SERVERS (embedded broker) and no GOOGLE_API_KEY (offline source).
    let stack = up(&options, |_| None).await.unwrap();
    assert!(stack.is_offline());
    let ids: Vec<String> = (1..=5).map(|i| format!("local-{i}")).collect();

    for (i, id) in ids.iter().enumerate() {
        let body =
            json!({"request_id": id, "topic": "Python Basics", "num_questions": i + 1, "difficulty": "easy"});
        let (status, accepted) = client::send(stack.api_url(), &body).await.unwrap();
        assert_eq!(status, 202, "{accepted}");
    }
    let (status, refused) = client::send(stack.api_url(), &json!({"topic": "x", "num_questions": 0}))
        .await
        .unwrap();
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("num_questions"))
    );

    let bootstrap = stack.bootstrap_servers();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/read_responses.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([bootstrap.as_str(), "question.response", "60"])
            .args(&ids)
            .output()
            .expect("run python3 (scripts/test installs confluent-kafka)")
    })
    .await
    .unwrap();
    stack.stop().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "reader failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for i in 1..=5 {
        let id = format!("local-{i}");
        let event = events.iter().find(|e| e["request_id"] == id.as_str()).unwrap();
        assert_matches_schema("response-event.schema.json", &event["event"]);
        assert_eq!(event["status"], "completed");
        assert_eq!(event["source"], "offline");
        assert_eq!(event["key"], id.as_str());
        assert_eq!(event["total_questions"], i);
    }
}

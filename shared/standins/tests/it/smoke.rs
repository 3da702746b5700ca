//! The smoke runner's verdicts on stand-in "functions": shell scripts that stop at start-up,
//! or never poll.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use qgen_standins::smoke::{Smoke, run};

/// An executable shell script with `body`, in `dir`.
fn script(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let path = dir.path().join("bootstrap");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "#!/bin/sh\n{body}").unwrap();
    drop(file);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn smoke(binary: PathBuf) -> Smoke {
    Smoke {
        runner: String::new(),
        event: None,
        expect_status: None,
        expect_exit_error: None,
        expect_output: None,
        timeout: 30.0,
        binary,
        env: vec!["SETTING=value".into()],
    }
}

#[tokio::test]
async fn a_function_that_stops_at_start_up_naming_the_setting_passes_an_exit_error_check() {
    let dir = tempfile::tempdir().unwrap();
    // It sees the stand-in's address, the settings given, and nothing of this environment.
    let binary = script(
        &dir,
        r#"echo "{\"msg\":\"bad $SETTING $AWS_LAMBDA_FUNCTION_NAME ${HOME:-no-home}\"}"; exit 1"#,
    );
    let mut check = smoke(binary);
    check.expect_exit_error = Some("bad value smoke no-home".into());

    let verdict = run(&check).await;

    assert!(verdict.is_ok(), "{verdict:?}");
}

#[tokio::test]
async fn a_function_that_never_polls_fails_and_so_does_a_line_that_is_not_json() {
    let dir = tempfile::tempdir().unwrap();
    let binary = script(&dir, "echo plain text; exit 0");

    let failures = run(&smoke(binary)).await.unwrap_err();

    assert!(
        failures.iter().any(|f| f.contains("never polled")),
        "{failures:?}"
    );
    assert!(
        failures.iter().any(|f| f.contains("not a JSON line: plain text")),
        "{failures:?}"
    );
}

#[tokio::test]
async fn an_exit_error_check_fails_when_the_function_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let binary = script(&dir, "echo '{}'; exit 0");
    let mut check = smoke(binary);
    check.expect_exit_error = Some("KAFKA_BOOTSTRAP_SERVERS".into());

    let failures = run(&check).await.unwrap_err();

    assert!(failures.iter().any(|f| f.contains("did not")), "{failures:?}");
    assert!(
        failures.iter().any(|f| f.contains("KAFKA_BOOTSTRAP_SERVERS")),
        "{failures:?}"
    );
}

/// A function in Python, as the runtime client does it: one poll, one response of `status`.
const ANSWERS: &str = r#"exec python3 - "$@" <<'PY'
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
with urllib.request.urlopen(api + "next") as invocation:
    request_id = invocation.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.load(invocation)
body = json.dumps({"statusCode": event["status"]}).encode()
urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=body))
print(json.dumps({"answered": request_id}), flush=True)
PY"#;

#[tokio::test]
async fn an_event_is_handed_to_the_function_and_its_response_checked() {
    let dir = tempfile::tempdir().unwrap();
    let binary = script(&dir, ANSWERS);
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"status": 400}"#).unwrap();
    let mut check = smoke(binary);
    check.event = Some(event);
    check.expect_status = Some(400);
    check.expect_output = Some("smoke-1".into());
    let mut wrong = check.clone();
    wrong.expect_status = Some(202);

    let verdict = run(&check).await;
    let failures = run(&wrong).await.unwrap_err();

    assert!(verdict.is_ok_and(|summary| summary.contains("\"statusCode\": 400")));
    assert!(
        failures.iter().any(|f| f.starts_with("status 400, expected 202")),
        "{failures:?}"
    );
}

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

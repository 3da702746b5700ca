//! A Lambda bootstrap binary run against the [`RuntimeApi`] stand-in, and what it did checked
//! (`qgen-standins runtime-api`, which `scripts/check-deploy` runs on the arm64 binaries under
//! qemu).
//!
//! With an event, the stand-in hands it to the function once and records the response the
//! function posts back; without one it only records that the function asked (its configuration
//! was read and its clients were built, since both happen before the first poll). The binary
//! runs through a runner (e.g. `qemu-aarch64-static`) with a clean environment and is stopped
//! once the stand-in has what it waits for.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::runtime_api::{Completion, RuntimeApi};

/// One run and what it must show.
#[derive(Debug, Clone, clap::Args)]
pub struct Smoke {
    /// A command the binary runs under (e.g. `qemu-aarch64-static -L /usr/aarch64-linux-gnu`).
    #[arg(long, default_value = "")]
    pub runner: String,
    /// An event (JSON file) to hand the function once.
    #[arg(long)]
    pub event: Option<PathBuf>,
    /// The `statusCode` the function's response must carry.
    #[arg(long)]
    pub expect_status: Option<i64>,
    /// The function must stop at start-up, without polling, printing this text.
    #[arg(long)]
    pub expect_exit_error: Option<String>,
    /// Text the function must print (it is given until the timeout).
    #[arg(long)]
    pub expect_output: Option<String>,
    /// Seconds the run may take.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// The bootstrap binary.
    pub binary: PathBuf,
    /// `VAR=VALUE` settings added to its environment.
    pub env: Vec<String>,
}

/// What a run saw.
struct Seen {
    output: String,
    exited: Option<i32>,
    elapsed: Duration,
    polls: u64,
    response: Option<Bytes>,
    error: Option<Completion>,
}

/// Runs the binary as `smoke` says and checks it: `Ok` with a one-line summary, or every
/// expectation that did not hold. The function's output is printed either way.
pub async fn run(smoke: &Smoke) -> Result<String, Vec<String>> {
    let event = match &smoke.event {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => vec![Bytes::from(bytes)],
            Err(e) => return Err(vec![format!("cannot read {}: {e}", path.display())]),
        },
        None => Vec::new(),
    };
    let seen = watch(smoke, event)
        .await
        .map_err(|e| vec![format!("cannot run {}: {e}", smoke.binary.display())])?;
    println!("{}", seen.output.trim_end());
    let failures = check(smoke, &seen);
    if !failures.is_empty() {
        return Err(failures);
    }
    let detail = match &seen.response {
        Some(body) => {
            let text = String::from_utf8_lossy(body);
            format!("response {}", text.chars().take(120).collect::<String>())
        }
        None => format!("{} poll(s)", seen.polls),
    };
    let name = smoke
        .binary
        .parent()
        .and_then(|dir| dir.file_name())
        .unwrap_or(smoke.binary.as_os_str());
    Ok(format!(
        "ok {}: {detail} in {:.1}s",
        name.to_string_lossy(),
        seen.elapsed.as_secs_f64()
    ))
}

/// Runs the binary against a fresh stand-in until it has what it waits for (and the expected
/// output, if any), the binary exits, or the timeout.
async fn watch(smoke: &Smoke, event: Vec<Bytes>) -> std::io::Result<Seen> {
    let mut api = RuntimeApi::start_for("smoke", event).await?;
    let mut words = smoke.runner.split_whitespace().map(str::to_owned);
    let program = words.next().unwrap_or_else(|| smoke.binary.display().to_string());
    let mut command = Command::new(program);
    command.args(words);
    if !smoke.runner.trim().is_empty() {
        command.arg(&smoke.binary);
    }
    command.env_clear();
    command.env("PATH", std::env::var("PATH").unwrap_or("/usr/bin:/bin".into()));
    for (var, value) in [
        ("AWS_LAMBDA_RUNTIME_API", api.address().as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "smoke"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/smoke"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "smoke"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_REGION", "eu-west-1"),
    ] {
        command.env(var, value);
    }
    for pair in &smoke.env {
        let (var, value) = pair.split_once('=').unwrap_or((pair, ""));
        command.env(var, value);
    }
    // Standard output and error in one pipe, read as they come, so an expected line can end
    // the wait early.
    let (reader, writer) = std::io::pipe()?;
    command
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    let started = Instant::now();
    let mut child = command.spawn()?;
    drop(command);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (read_all, all_read) = std::sync::mpsc::channel();
    std::thread::spawn({
        let lines = lines.clone();
        move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            let _ = read_all.send(());
        }
    });
    let printed = |lines: &Mutex<Vec<String>>| match &smoke.expect_output {
        None => true,
        Some(text) => lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|l| l.contains(text)),
    };

    let limit = Duration::from_secs_f64(smoke.timeout);
    let mut exited = None;
    let mut response = None;
    let mut error = None;
    while started.elapsed() < limit {
        while let Some(completion) = api.try_completion() {
            match completion.kind.as_str() {
                "response" => response = Some(completion.body),
                _ => error = Some(completion),
            }
        }
        // What the stand-in waits for: a poll it had nothing for (the event, if any, was
        // handed out), or a response or error posted back.
        let waited_for = api.held_polls() > 0 || response.is_some() || error.is_some();
        if waited_for && printed(&lines) {
            break;
        }
        if let Some(status) = child.try_wait()? {
            exited = Some(status.code().unwrap_or(-1));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if child.try_wait()?.is_none() {
        let _ = child.kill();
    }
    child.wait()?;
    let _ = all_read.recv_timeout(Duration::from_secs(5));
    let elapsed = started.elapsed();
    while let Some(completion) = api.try_completion() {
        match completion.kind.as_str() {
            "response" => response = Some(completion.body),
            _ => error = Some(completion),
        }
    }
    let output = lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    Ok(Seen {
        output,
        exited,
        elapsed,
        polls: api.polls(),
        response,
        error,
    })
}

/// Every expectation of `smoke` that `seen` does not meet.
fn check(smoke: &Smoke, seen: &Seen) -> Vec<String> {
    let mut failures = Vec::new();
    let output = &seen.output;
    if let Some(text) = &smoke.expect_exit_error {
        if seen.exited.is_none_or(|code| code == 0) {
            failures.push(format!(
                "expected the function to stop at start-up, it did not (exit {:?})",
                seen.exited
            ));
        }
        if !output.contains(text.as_str()) {
            failures.push(format!("expected {text:?} in its output"));
        }
        if seen.polls > 0 {
            failures.push("it polled for events despite a bad configuration".into());
        }
        return failures;
    }
    if seen.polls == 0 {
        failures.push(format!(
            "it never polled the Runtime API (exit {:?}, {:.1}s)",
            seen.exited,
            seen.elapsed.as_secs_f64()
        ));
    }
    if smoke.event.is_some() {
        if let Some(error) = &seen.error {
            let body = String::from_utf8_lossy(&error.body);
            failures.push(format!("it reported an error: {}: {body}", error.kind));
        } else if let Some(body) = &seen.response {
            if let Some(expected) = smoke.expect_status {
                let status = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|response| response["statusCode"].as_i64());
                if status != Some(expected) {
                    let text = String::from_utf8_lossy(body);
                    let status = status.map_or("none".to_owned(), |s| s.to_string());
                    failures.push(format!("status {status}, expected {expected}: {text}"));
                }
            }
        } else {
            failures.push("it never posted a response".into());
        }
    }
    if let Some(text) = &smoke.expect_output
        && !output.contains(text.as_str())
    {
        failures.push(format!("expected {text:?} in its output"));
    }
    // With AWS_LAMBDA_LOG_FORMAT=JSON every line is JSON: log records and EMF metrics alike.
    if let Some(line) = output
        .lines()
        .find(|line| serde_json::from_str::<Value>(line).is_err())
    {
        failures.push(format!(
            "not a JSON line: {}",
            line.chars().take(200).collect::<String>()
        ));
    }
    failures
}

//! What each `qgen-local` command does once `main.rs` has parsed its arguments: read the state
//! file or the environment, run the part of the library behind it, print the outcome. Each
//! returns the message the binary prints before it exits with a failure, the error's causes
//! included.

use std::path::Path;
use std::time::Duration;

use qgen_ops::commands::error_chain;
use qgen_ops::connect::State;
use serde_json::Value;

use crate::client;
use crate::stack::{self, UpOptions};

/// `up`: starts the stack described by `options`, prints where it listens, and stops it on
/// Ctrl-C.
pub async fn up(options: UpOptions) -> Result<(), String> {
    // EMF metric lines are for CloudWatch; on a terminal they drown the progress log.
    if std::env::var_os("QGEN_LOCAL_METRICS").is_none() {
        qgen_adapters::telemetry::silence();
    }
    let stack = stack::up(&options, |var| std::env::var(var).ok())
        .await
        .map_err(|e| error_chain(&e))?;
    eprintln!(
        "\nqgen local stack is up{}\n  broker:  {}\n  API:     POST {}{}\n  try:     scripts/local demo   (or curl, see docs/local.md)\n  stop:    Ctrl-C\n",
        if stack.is_offline() {
            " (OFFLINE question source: placeholders, not an LLM)"
        } else {
            ""
        },
        stack.bootstrap_servers(),
        stack.api_url(),
        question_api::ROUTE,
    );
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("shutting down…");
    stack.stop().await;
    Ok(())
}

/// `send`: POSTs `body` to the stack recorded in `state_file` and prints the answer; anything
/// but 202 is a failure.
pub async fn send(state_file: &Path, body: &Value) -> Result<(), String> {
    let state = State::load(state_file).map_err(|e| e.to_string())?;
    let (status, body) = client::send(&state.api, body)
        .await
        .map_err(|e| error_chain(&e))?;
    println!("{status} {body}");
    if status == 202 {
        Ok(())
    } else {
        Err(format!("the API answered {status}"))
    }
}

/// `demo`: sends `body` to the stack recorded in `state_file` and prints its questions when
/// they arrive (within a minute).
pub async fn demo(state_file: &Path, body: &Value) -> Result<(), String> {
    let state = State::load(state_file).map_err(|e| e.to_string())?;
    let event = client::demo(
        &state.api,
        &state.bootstrap,
        &response_topic(),
        body,
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| error_chain(&e))?;
    println!("{}", qgen_ops::tail::describe(&event));
    Ok(())
}

/// `gemini-stand-in`: answers `generateContent` on `addr` until Ctrl-C.
pub async fn gemini_stand_in(addr: std::net::SocketAddr) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let _stand_in = crate::gemini::stand_in(listener).await;
    println!("gemini stand-in on http://{addr} (set GEMINI_BASE_URL to it)");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// The topic `demo` reads responses from.
fn response_topic() -> String {
    std::env::var("KAFKA_QUESTION_RESPONSE_TOPIC").unwrap_or_else(|_| "question.response".to_owned())
}

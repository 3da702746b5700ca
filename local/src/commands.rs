//! What each `qgen-local` command does once `main.rs` has parsed its arguments: read the state
//! file or the environment, run the part of the library behind it, print the outcome. Each
//! returns the message the binary prints before it exits with a failure, the error's causes
//! included.

use std::path::Path;
use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::auth::KafkaAuth;
use qgen_adapters::kafka::{KafkaPublisher, client_config, create_service_topics, service_topics};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::{self, State};
use crate::replay::{self, ReplayFilter, ReplayOptions};
use crate::stack::{self, UpOptions};
use crate::timeline;

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
        "\nqgen local stack is up{}\n  broker:  {}\n  API:     POST {}{}\n  try:     scripts/local demo   (or curl, see README)\n  stop:    Ctrl-C\n",
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

/// `tail`: prints the response events of the stack recorded in `state_file` until Ctrl-C.
pub async fn tail(state_file: &Path, from_beginning: bool) -> Result<(), String> {
    let state = State::load(state_file).map_err(|e| e.to_string())?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    client::tail(&state.bootstrap, &response_topic(), from_beginning, shutdown)
        .await
        .map_err(|e| error_chain(&e))
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
    println!("{}", client::describe(&event));
    Ok(())
}

/// `topics`: creates the service's topics on the broker the `KAFKA_*` variables name.
pub async fn topics(replication: i32) -> Result<(), String> {
    let config = ApiConfig::from_env().map_err(|e| error_chain(&e))?;
    let auth = KafkaAuth::resolve(&config.kafka)
        .await
        .map_err(|e| error_chain(&e))?;
    create_service_topics(&config.kafka, &auth, replication)
        .await
        .map_err(|e| error_chain(&e))?;
    for topic in service_topics(&config.kafka, replication) {
        println!(
            "{} ({} partitions, replication {replication}): ready",
            topic.name, topic.partitions
        );
    }
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

/// `replay`: publishes again the records of `from` (default: the failed topic) that `filter`
/// keeps, to `to` (default: the request topic), on the broker the `KAFKA_*` variables name, and
/// prints what it did.
pub async fn replay(
    from: Option<String>,
    to: Option<String>,
    dry_run: bool,
    filter: ReplayFilter,
) -> Result<(), String> {
    let config = ApiConfig::from_env().map_err(|e| error_chain(&e))?;
    let auth = KafkaAuth::resolve(&config.kafka)
        .await
        .map_err(|e| error_chain(&e))?;
    let mut client = client_config(&config.kafka);
    auth.apply(&mut client);
    let publisher = KafkaPublisher::with_auth(&config.kafka, &auth).map_err(|e| error_chain(&e))?;
    let options = ReplayOptions {
        from: from.unwrap_or_else(|| config.kafka.failed_topic.clone()),
        to: to.unwrap_or_else(|| config.kafka.request_topic.clone()),
        dry_run,
        filter,
    };
    let summary = replay::replay(&client, auth.context(), &publisher, &options)
        .await
        .map_err(|e| error_chain(&e))?;
    println!(
        "{}: read {}, selected {}, {} {} to {}, {} unreadable (left alone)",
        options.from,
        summary.read,
        summary.selected,
        if options.dry_run {
            "would publish"
        } else {
            "published"
        },
        if options.dry_run {
            summary.selected
        } else {
            summary.published
        },
        options.to,
        summary.unreadable
    );
    Ok(())
}

/// `timeline`: prints the steps of `request_id` read from the service's topics: on the broker
/// `KAFKA_BOOTSTRAP_SERVERS` names (with the `KAFKA_*` settings), else the running local stack's.
pub async fn timeline(state_file: &Path, request_id: &str) -> Result<(), String> {
    let local = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(_) => None,
        Err(_) => Some(State::load(state_file).map_err(|e| e.to_string())?.bootstrap),
    };
    let config = ApiConfig::from_lookup(|var| match (var, &local) {
        ("KAFKA_BOOTSTRAP_SERVERS", Some(bootstrap)) => Some(bootstrap.clone()),
        _ => std::env::var(var).ok(),
    })
    .map_err(|e| error_chain(&e))?;
    let auth = KafkaAuth::resolve(&config.kafka)
        .await
        .map_err(|e| error_chain(&e))?;
    let mut client = client_config(&config.kafka);
    auth.apply(&mut client);
    let topics = timeline::Topics::from(&config.kafka);
    let records = timeline::read(&client, auth.context(), &topics.names(), request_id)
        .await
        .map_err(|e| error_chain(&e))?;
    println!(
        "{}",
        timeline::render(request_id, &timeline::timeline(&topics, &records))
    );
    Ok(())
}

/// The topic the client commands read responses from.
fn response_topic() -> String {
    std::env::var("KAFKA_QUESTION_RESPONSE_TOPIC").unwrap_or_else(|_| "question.response".to_owned())
}

/// `error` followed by each of its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

//! What each `qgen` command does once `main.rs` has parsed its arguments: find the brokers
//! ([`crate::connect`]), run the part of the library behind the command, print the outcome. Each
//! returns the message the binary prints before it exits with a failure, the error's causes
//! included.

use std::path::Path;

use qgen_adapters::kafka::{KafkaPublisher, create_service_topics, service_topics};
use tokio_util::sync::CancellationToken;

use crate::connect::{self, Connection};
use crate::replay::{self, ReplayFilter, ReplayOptions};
use crate::{tail, timeline};

/// The `KAFKA_*` settings of the environment, or the local stack's broker.
async fn connect(state_file: &Path) -> Result<Connection, String> {
    connect::connect(|var| std::env::var(var).ok(), state_file)
        .await
        .map_err(|e| error_chain(&e))
}

/// `topics`: creates the service's topics with `replication` replicas; leaves existing ones.
pub async fn topics(state_file: &Path, replication: i32) -> Result<(), String> {
    let Connection { config, auth, .. } = connect(state_file).await?;
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

/// `replay`: publishes again the records of `from` (default: the failed topic) that `filter`
/// keeps, to `to` (default: the request topic), and prints what it did.
pub async fn replay(
    state_file: &Path,
    from: Option<String>,
    to: Option<String>,
    dry_run: bool,
    filter: ReplayFilter,
) -> Result<(), String> {
    let Connection { config, client, auth } = connect(state_file).await?;
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
    let (verb, count) = if options.dry_run {
        ("would publish", summary.selected)
    } else {
        ("published", summary.published)
    };
    println!(
        "{}: read {}, selected {}, {verb} {count} to {}, {} unreadable (left alone)",
        options.from, summary.read, summary.selected, options.to, summary.unreadable
    );
    Ok(())
}

/// `timeline`: prints the steps of `request_id` read from the service's topics.
pub async fn timeline(state_file: &Path, request_id: &str) -> Result<(), String> {
    let Connection { config, client, auth } = connect(state_file).await?;
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

/// `tail`: prints the response events until Ctrl-C.
pub async fn tail(state_file: &Path, from_beginning: bool) -> Result<(), String> {
    let Connection { config, client, auth } = connect(state_file).await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    tail::tail(
        &client,
        auth.context(),
        &config.kafka.response_topic,
        from_beginning,
        shutdown,
    )
    .await
    .map_err(|e| error_chain(&e))
}

/// `recommend`: prints `qgen-planner`'s answer for `options`, from the model compiled in or the
/// model file at `model`.
pub fn recommend(model: Option<&Path>, options: &qgen_planner::Options) -> Result<(), String> {
    let file = match model {
        None => qgen_planner::ModelFile::committed(),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| qgen_planner::ModelFile::parse(&text).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", path.display()))?,
    };
    let answer = qgen_planner::recommend_with(&file, options).map_err(|e| e.to_string())?;
    print!("{answer}");
    Ok(())
}

/// `error` followed by each of its causes, `: `-separated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

//! `qgen-local`: the whole pipeline on one machine, with no AWS account and no Docker.
//!
//! `up` starts a Kafka broker (librdkafka's mock cluster in-process, or the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS`), serves the question-api handler over HTTP, and runs an emulator
//! of Lambda's MSK event-source mapping that feeds real `KafkaEvent` batches to the generator —
//! in-process, or through the Lambda Invoke API of `cargo lambda watch`. Questions come from
//! Gemini when `GOOGLE_API_KEY` is set, otherwise from an offline source that says so.
//!
//! # Layout
//!
//! - [`broker`]: the embedded or external broker, and the service's topics on it.
//! - [`http`]: the API handler served over HTTP/1.1 with hyper.
//! - [`esm`]: the MSK trigger emulator: batches, partial batch responses, retries, on-failure topic.
//! - [`failed`]: the records Lambda writes to the on-failure topic.
//! - [`gemini`]: `gemini-stand-in`, `qgen-standins`' Gemini on a port, for the real binaries.
//! - [`replay`]: `replay`, publishing given-up or dead-lettered records again.
//! - [`source`]: the offline question source and the choice between it and Gemini.
//! - [`client`]: the `send`, `tail` and `demo` commands.
//! - [`stack`]: `up`, putting the pieces together.
//! - [`timeline`]: `timeline`, one request's steps read back from the topics and their headers.
//! - [`commands`]: each command of the binary, from parsed arguments to printed outcome.
//!
//! The benchmarks are the `qgen-bench` crate (`bench/`), which runs this stack in benchmark 5.

pub mod broker;
pub mod client;
pub mod commands;
pub mod esm;
pub mod failed;
pub mod gemini;
pub mod http;
pub mod replay;
pub mod source;
pub mod stack;
pub mod timeline;

/// Logs to stderr at `default_filter` (an `EnvFilter` directive such as `info,rdkafka=warn`)
/// unless `RUST_LOG` says otherwise: the setup of the `qgen-local` and `qgen-bench` binaries.
pub fn init_logs(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
}

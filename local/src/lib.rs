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
//! - [`gemini`]: `gemini-stand-in`, `qgen-standins`' Gemini on a port, for the real binaries.
//! - [`source`]: the offline question source and the choice between it and Gemini.
//! - [`client`]: the `send` and `demo` commands.
//! - [`stack`]: `up`, putting the pieces together.
//! - [`commands`]: each command of the binary, from parsed arguments to printed outcome.
//!
//! The operator's commands (`tail`, `timeline`, `replay`, `topics`) are `qgen` (`ops/`), which
//! reads this stack's broker from the state file `up` writes. The benchmarks are the
//! `qgen-bench` crate (`bench/`), which runs this stack in its `end-to-end` benchmark and its
//! capacity sweep.

pub mod broker;
pub mod client;
pub mod commands;
pub mod esm;
pub mod gemini;
pub mod http;
pub mod source;
pub mod stack;

/// The logging setup of the `qgen-local` and `qgen-bench` binaries: the operator's `qgen`'s.
pub use qgen_ops::init_logs;

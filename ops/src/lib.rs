//! `qgen`, the operator's command line, as a library: what an operator runs against the
//! service's topics on MSK (or on a local stack) after an alarm, and to size a deployment.
//!
//! Every command reads the brokers and security settings from the functions' own `KAFKA_*`
//! variables ([`connect`]), so the settings that work for the functions work here. Nothing in
//! this crate is a Lambda; the local stack (`qgen-local`) is a development tool built on it.
//!
//! # Layout
//!
//! - [`connect`]: the `KAFKA_*` settings (or the running local stack's broker) → a client
//!   configuration and its authentication; the local stack's state file.
//! - [`replay`]: `qgen replay`, publishing given-up or dead-lettered records again.
//! - [`timeline`]: `qgen timeline`, one request's steps read back from the topics and headers.
//! - [`tail`]: `qgen tail`, the response events as the content service reads them.
//! - [`commands`]: each command, from parsed arguments to printed outcome; `qgen recommend` is
//!   `qgen-planner`'s answer printed (it reads no broker).
//!
//! AWS's on-failure record format, which `replay` reads, is the contract's
//! ([`qgen_contract::on_failure`]).

pub mod commands;
pub mod connect;
pub mod replay;
pub mod tail;
pub mod timeline;

/// Logs to stderr at `default_filter` (an `EnvFilter` directive such as `info,rdkafka=warn`)
/// unless `RUST_LOG` says otherwise: the setup of the `qgen`, `qgen-local` and `qgen-bench`
/// binaries.
pub fn init_logs(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
}

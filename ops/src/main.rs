//! `qgen`: the operator's command line. Install it with `cargo install --locked --path ops`;
//! see `qgen --help`. This file is the command line; [`qgen_ops::commands`] does what each
//! command says.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use qgen_ops::commands;
use qgen_ops::connect::State;
use qgen_ops::replay::ReplayFilter;

#[derive(Parser)]
#[command(
    version,
    about = "Operate the question service: its topics on MSK (or a local stack), given-up records, one request's timeline",
    long_about = "Operate the question service. Every command reads the brokers, security settings and topic \
                  names from the functions' own KAFKA_* variables (KAFKA_BOOTSTRAP_SERVERS, \
                  KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_QUESTION_*_TOPIC); when \
                  KAFKA_BOOTSTRAP_SERVERS is unset, the broker of the local stack `scripts/local up` runs."
)]
struct Cli {
    /// The local stack's state file, read when KAFKA_BOOTSTRAP_SERVERS is unset.
    #[arg(long, global = true, env = "QGEN_LOCAL_STATE")]
    state_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the service's topics; topics that exist are left alone.
    Topics {
        /// Replication factor: 3 on a three-AZ MSK cluster.
        #[arg(long, default_value_t = 3)]
        replication: i32,
    },
    /// Publish again, byte for byte, the records the MSK trigger gave up on (or, with `--from
    /// question.request.dlq`, dead-lettered ones after a fix) to question.request. Reads the
    /// topic up to its end when the command starts; safe to run twice (duplicates share their
    /// eventId).
    Replay(ReplayArgs),
    /// Print one request's timeline — accepted, batch invoked, Gemini calls, response published
    /// (or dead-lettered, given up), with times and its trace id — read from the topics.
    Timeline {
        /// The request's `request_id`.
        request_id: String,
    },
    /// Partitions of question.request, BatchSize, GENERATION_CONCURRENCY, the generator's
    /// Timeout, MaximumRetryAttempts and the pollers for a request rate, from the capacity model
    /// the last sweep fitted (compiled in; `qgen-bench capacity` refits it). Reads no broker.
    Recommend(RecommendArgs),
    /// Follow question.response and print each event once (de-duplicated by eventId), as the
    /// content service reads them, until Ctrl-C.
    Tail {
        /// Start from the beginning of the topic rather than its end.
        #[arg(long)]
        from_beginning: bool,
    },
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The topic to read [default: KAFKA_QUESTION_FAILED_TOPIC, question.request.failed].
    #[arg(long)]
    from: Option<String>,
    /// The topic to publish to [default: KAFKA_QUESTION_REQUEST_TOPIC, question.request].
    #[arg(long)]
    to: Option<String>,
    /// List what would be replayed; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this request_id (repeatable).
    #[arg(long = "request-id")]
    request_ids: Vec<String>,
    /// Only this partition of the topic read.
    #[arg(long)]
    partition: Option<i32>,
    /// Only offsets from this one on (of the topic read).
    #[arg(long)]
    from_offset: Option<i64>,
    /// Only offsets up to this one, inclusive.
    #[arg(long)]
    to_offset: Option<i64>,
    /// Only records given up at or after this time (RFC 3339, e.g. 2026-12-01T10:00:00Z).
    #[arg(long, value_parser = parse_time)]
    since: Option<i64>,
    /// Only records given up before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    until: Option<i64>,
}

#[derive(clap::Args)]
struct RecommendArgs {
    /// Target requests per second.
    #[arg(long, value_parser = positive)]
    rate: f64,
    /// Gemini's median latency, seconds.
    #[arg(long, default_value_t = qgen_planner::PRODUCTION_LATENCY.p50, value_parser = positive)]
    gemini_p50: f64,
    /// Gemini's 99th-percentile latency, seconds (at least the median).
    #[arg(long, default_value_t = qgen_planner::PRODUCTION_LATENCY.p99, value_parser = positive)]
    gemini_p99: f64,
    /// Gemini's requests-per-minute quota, if it should be checked.
    #[arg(long, value_parser = positive)]
    quota_rpm: Option<f64>,
    /// `MaximumBatchingWindowInSeconds` of the trigger (the template's default: 1).
    #[arg(long, default_value_t = qgen_planner::TEMPLATE_BATCHING_WINDOW)]
    batching_window: f64,
    /// Largest request-to-response p99 to accept, seconds (the template's alarm: 60).
    #[arg(long, default_value_t = qgen_planner::P99_TARGET, value_parser = positive)]
    p99_target: f64,
    /// A model file written by `qgen-bench capacity --model` (by default the one compiled in).
    #[arg(long)]
    model: Option<PathBuf>,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value > 0.0 && value.is_finite() => Ok(value),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("expected RFC 3339 (2026-12-01T10:00:00Z): {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    qgen_ops::init_logs("warn");
    let state_file = cli.state_file.clone().unwrap_or_else(State::default_path);
    match run(cli.command, state_file).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, state_file: PathBuf) -> Result<(), String> {
    match command {
        Command::Topics { replication } => commands::topics(&state_file, replication).await,
        Command::Replay(args) => {
            let filter = ReplayFilter {
                request_ids: args.request_ids,
                partition: args.partition,
                from_offset: args.from_offset,
                to_offset: args.to_offset,
                since_ms: args.since,
                until_ms: args.until,
            };
            commands::replay(&state_file, args.from, args.to, args.dry_run, filter).await
        }
        Command::Timeline { request_id } => commands::timeline(&state_file, &request_id).await,
        Command::Tail { from_beginning } => commands::tail(&state_file, from_beginning).await,
        Command::Recommend(args) => {
            let options = qgen_planner::Options {
                rate: args.rate,
                gemini_p50: args.gemini_p50,
                gemini_p99: args.gemini_p99,
                quota_rpm: args.quota_rpm,
                batching_window: args.batching_window,
                p99_target: args.p99_target,
            };
            commands::recommend(args.model.as_deref(), &options)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_read_as_epoch_milliseconds() {
        assert_eq!(parse_time("2026-12-01T10:00:00Z"), Ok(1_796_119_200_000));
        assert_eq!(parse_time("2026-12-01T11:00:00.250+01:00"), Ok(1_796_119_200_250));
        let refused = parse_time("yesterday").unwrap_err();
        assert!(refused.starts_with("expected RFC 3339"), "{refused}");
    }
}

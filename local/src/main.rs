//! `qgen-local`: run the question pipeline on one machine. See `qgen-local --help`. This file
//! is the command line; [`qgen_local::commands`] does what each command says.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use qgen_local::client::State;
use qgen_local::commands;
use qgen_local::replay::ReplayFilter;
use qgen_local::stack::UpOptions;
use serde_json::json;

#[derive(Parser)]
#[command(
    version,
    about = "The question pipeline on one machine: no AWS account, no Docker"
)]
struct Cli {
    /// Where `up` records the broker and API addresses for the other commands.
    #[arg(long, global = true, env = "QGEN_LOCAL_STATE")]
    state_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the broker, the API, the MSK trigger emulator and the generator; Ctrl-C stops.
    Up {
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8000", env = "QGEN_API_ADDR")]
        api_addr: SocketAddr,
        /// Partitions of question.request and question.response on the embedded broker.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Most records per generator invocation (the template's BatchSize).
        #[arg(long, default_value_t = qgen_local::esm::defaults::BATCH_SIZE)]
        batch_size: usize,
        /// Batching window in milliseconds (MaximumBatchingWindowInSeconds).
        #[arg(long, default_value_t = qgen_local::esm::defaults::BATCHING_WINDOW.as_millis() as u64)]
        batching_window_ms: u64,
        /// Invoke the real binary through this Lambda Invoke API (e.g. `cargo lambda watch`'s
        /// http://127.0.0.1:9000) instead of in-process.
        #[arg(long)]
        invoke_url: Option<String>,
    },
    /// POST one request to the running stack and print the answer.
    Send(RequestArgs),
    /// Follow question.response and print each event once (de-duplicated by eventId).
    Tail {
        /// Start from the beginning of the topic rather than its end.
        #[arg(long)]
        from_beginning: bool,
    },
    /// Send one request to the running stack and print its questions when they arrive.
    Demo(RequestArgs),
    /// Create the service's topics on the broker named by KAFKA_BOOTSTRAP_SERVERS (with
    /// KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* as the functions use them, e.g. on MSK); topics
    /// that exist are left alone.
    Topics {
        /// Replication factor: 3 on a three-AZ MSK cluster.
        #[arg(long, default_value_t = 3)]
        replication: i32,
    },
    /// Publish again, byte for byte, the records the MSK trigger gave up on (or, with `--from
    /// question.request.dlq`, dead-lettered ones after a fix) to question.request, on the broker
    /// named by KAFKA_BOOTSTRAP_SERVERS with the functions' KAFKA_* settings. Reads the topic up
    /// to its end when the command starts; safe to run twice (duplicates share their eventId).
    Replay(ReplayArgs),
    /// Print one request's timeline — accepted, batch invoked, Gemini calls, response published
    /// (or dead-lettered, given up), with times and its trace id — read from the topics of the
    /// running local stack, or of the broker KAFKA_BOOTSTRAP_SERVERS names (with the functions'
    /// KAFKA_* settings, e.g. on MSK).
    Timeline {
        /// The request's `request_id`.
        request_id: String,
    },
    /// Answer Gemini `generateContent` calls on ADDR with exactly the questions asked for (point
    /// GEMINI_BASE_URL at it), until Ctrl-C: for running the real function binaries offline.
    GeminiStandIn {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: SocketAddr,
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

fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("expected RFC 3339 (2026-12-01T10:00:00Z): {e}"))
}

#[derive(clap::Args)]
struct RequestArgs {
    /// The request's topic.
    #[arg(long, default_value = "Python Basics")]
    topic: String,
    /// How many questions.
    #[arg(long, default_value_t = 3)]
    num_questions: u32,
    /// easy, medium or hard.
    #[arg(long, default_value = "easy")]
    difficulty: String,
    /// The request id (generated by the API when absent).
    #[arg(long)]
    request_id: Option<String>,
}

impl RequestArgs {
    fn body(&self) -> serde_json::Value {
        let mut body =
            json!({"topic": self.topic, "num_questions": self.num_questions, "difficulty": self.difficulty});
        if let Some(id) = &self.request_id {
            body["request_id"] = json!(id);
        }
        body
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    qgen_local::init_logs("info,rdkafka=warn");
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
        Command::Up {
            api_addr,
            partitions,
            batch_size,
            batching_window_ms,
            invoke_url,
        } => {
            commands::up(UpOptions {
                api_addr,
                partitions,
                batch_size,
                batching_window: Duration::from_millis(batching_window_ms),
                invoke_url,
                state_file: Some(state_file),
            })
            .await
        }
        Command::Send(args) => commands::send(&state_file, &args.body()).await,
        Command::Tail { from_beginning } => commands::tail(&state_file, from_beginning).await,
        Command::Demo(args) => commands::demo(&state_file, &args.body()).await,
        Command::Topics { replication } => commands::topics(replication).await,
        Command::GeminiStandIn { addr } => commands::gemini_stand_in(addr).await,
        Command::Timeline { request_id } => commands::timeline(&state_file, &request_id).await,
        Command::Replay(args) => {
            let filter = ReplayFilter {
                request_ids: args.request_ids,
                partition: args.partition,
                from_offset: args.from_offset,
                to_offset: args.to_offset,
                since_ms: args.since,
                until_ms: args.until,
            };
            commands::replay(args.from, args.to, args.dry_run, filter).await
        }
    }
}

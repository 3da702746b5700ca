//! `qgen-local`: run the question pipeline on one machine. See `qgen-local --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::auth::KafkaAuth;
use qgen_adapters::kafka::{KafkaPublisher, client_config, create_service_topics, service_topics};
use qgen_local::bench::{self, BenchOptions, Mode};
use qgen_local::client::{self, State};
use qgen_local::replay::{ReplayFilter, ReplayOptions, replay};
use qgen_local::stack::{UpOptions, up};
use serde_json::json;
use tokio_util::sync::CancellationToken;

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
    /// Measure the service (publish latency, batch throughput, cold start, memory, end to end,
    /// artifact sizes) against local stand-ins and print each figure beside its target. Run it
    /// from a release build: `scripts/bench` builds one and runs it.
    Bench {
        /// Thorough: more samples and repetitions (quick, the default, takes under two minutes).
        #[arg(long, conflicts_with = "quick")]
        full: bool,
        /// Quick (the default).
        #[arg(long)]
        quick: bool,
        /// Cargo's target directory, holding release/question-api and release/question-generator.
        #[arg(long, env = "CARGO_TARGET_DIR", default_value = "target")]
        target_dir: PathBuf,
        /// Python interpreter for the cold-start comparison.
        #[arg(long, default_value = "python3")]
        python: String,
        /// Skip the Python cold-start comparison.
        #[arg(long)]
        no_python: bool,
        /// Run only these benchmarks, e.g. `--only 1,3` (1 publish, 2 batch, 3 cold start,
        /// 4 memory, 5 end to end, 6 artifacts).
        #[arg(long, value_delimiter = ',')]
        only: Vec<u32>,
    },
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
    // A benchmark logs only problems: a line per request would be part of what it measures.
    let default_filter = match cli.command {
        Command::Bench { .. } => "warn,rdkafka=error",
        _ => "info,rdkafka=warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
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
    let response_topic =
        std::env::var("KAFKA_QUESTION_RESPONSE_TOPIC").unwrap_or_else(|_| "question.response".to_owned());
    match command {
        Command::Up {
            api_addr,
            partitions,
            batch_size,
            batching_window_ms,
            invoke_url,
        } => {
            let options = UpOptions {
                api_addr,
                partitions,
                batch_size,
                batching_window: Duration::from_millis(batching_window_ms),
                invoke_url,
                state_file: Some(state_file),
            };
            // EMF metric lines are for CloudWatch; on a terminal they drown the progress log.
            if std::env::var_os("QGEN_LOCAL_METRICS").is_none() {
                qgen_adapters::telemetry::silence();
            }
            let stack = up(&options, |var| std::env::var(var).ok())
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
        Command::Send(args) => {
            let state = State::load(&state_file).map_err(|e| e.to_string())?;
            let (status, body) = client::send(&state.api, &args.body())
                .await
                .map_err(|e| error_chain(&e))?;
            println!("{status} {body}");
            if status == 202 {
                Ok(())
            } else {
                Err(format!("the API answered {status}"))
            }
        }
        Command::Tail { from_beginning } => {
            let state = State::load(&state_file).map_err(|e| e.to_string())?;
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stop.cancel();
            });
            client::tail(&state.bootstrap, &response_topic, from_beginning, shutdown)
                .await
                .map_err(|e| error_chain(&e))
        }
        Command::Bench {
            full,
            quick: _,
            target_dir,
            python,
            no_python,
            only,
        } => {
            let options = BenchOptions {
                mode: if full { Mode::Full } else { Mode::Quick },
                target_dir,
                python: (!no_python).then_some(python),
                only,
            };
            bench::run(&options).await.map_err(|e| e.to_string())
        }
        Command::Topics { replication } => {
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
        Command::Replay(args) => {
            let config = ApiConfig::from_env().map_err(|e| error_chain(&e))?;
            let auth = KafkaAuth::resolve(&config.kafka)
                .await
                .map_err(|e| error_chain(&e))?;
            let mut client = client_config(&config.kafka);
            auth.apply(&mut client);
            let publisher = KafkaPublisher::with_auth(&config.kafka, &auth).map_err(|e| error_chain(&e))?;
            let options = ReplayOptions {
                from: args.from.unwrap_or_else(|| config.kafka.failed_topic.clone()),
                to: args.to.unwrap_or_else(|| config.kafka.request_topic.clone()),
                dry_run: args.dry_run,
                filter: ReplayFilter {
                    request_ids: args.request_ids,
                    partition: args.partition,
                    from_offset: args.from_offset,
                    to_offset: args.to_offset,
                    since_ms: args.since,
                    until_ms: args.until,
                },
            };
            let summary = replay(&client, auth.context(), &publisher, &options)
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
        Command::Demo(args) => {
            let state = State::load(&state_file).map_err(|e| e.to_string())?;
            let event = client::demo(
                &state.api,
                &state.bootstrap,
                &response_topic,
                &args.body(),
                Duration::from_secs(60),
            )
            .await
            .map_err(|e| error_chain(&e))?;
            println!("{}", client::describe(&event));
            Ok(())
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

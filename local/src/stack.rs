//! `up`: broker, API over HTTP, event-source-mapping emulator and generator, wired together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use qgen_adapters::config::{ApiConfig, ConfigError};
use qgen_adapters::kafka::{KafkaPublisher, PublishError, client_config};
use qgen_adapters::secrets::SecretsClient;
use question_api::Api;
use question_generator::config::{ApiKeySource, GeneratorConfig};
use question_generator::gemini::{BuildError, GeminiClient, api_key};
use question_generator::handler::Generator;
use question_generator::idempotency::store_from_env;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerError, local_topics};
use crate::esm::{Emulator, EsmConfig, EsmError, HttpInvoker, Invoker};
use crate::source::{LocalSource, OfflineSource};
use qgen_ops::connect::State;

/// What `up` can be told.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Where the API listens (`127.0.0.1:8000`).
    pub api_addr: SocketAddr,
    /// Partitions of the request and response topics on the embedded broker.
    pub partitions: i32,
    /// Most records per invocation.
    pub batch_size: usize,
    /// How long a batch may wait to fill.
    pub batching_window: Duration,
    /// Invoke the real binary through this Lambda Invoke API (`cargo lambda watch`) instead of
    /// running the generator in-process.
    pub invoke_url: Option<String>,
    /// Where to write the running stack's addresses for `send`, `tail` and `demo`.
    pub state_file: Option<PathBuf>,
}

/// The stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker could not be started or prepared.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A producer could not be built.
    #[error(transparent)]
    Publisher(#[from] PublishError),
    /// The emulator's consumer could not be built.
    #[error(transparent)]
    Esm(#[from] EsmError),
    /// The Gemini client could not be built (or its key read).
    #[error(transparent)]
    Gemini(#[from] BuildError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running stack; [`RunningStack::stop`] shuts it down cleanly.
pub struct RunningStack {
    broker: Broker,
    api_url: String,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    state_file: Option<PathBuf>,
    offline: bool,
}

impl RunningStack {
    /// `host:port` of the broker.
    pub fn bootstrap_servers(&self) -> String {
        self.broker.bootstrap_servers()
    }

    /// `http://host:port` of the API.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// Whether questions come from the offline source.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Stops accepting requests, lets the batch in flight finish and commit, then stops.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("tasks did not stop within 30 s");
        }
        if let Some(path) = &self.state_file {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("stopped");
    }
}

/// Starts the stack with settings read through `env` (the same variables the functions read;
/// `KAFKA_BOOTSTRAP_SERVERS` selects an external broker instead of the embedded one).
pub async fn up(
    options: &UpOptions,
    env: impl Fn(&str) -> Option<String>,
) -> Result<RunningStack, StackError> {
    let external = env("KAFKA_BOOTSTRAP_SERVERS").filter(|s| !s.trim().is_empty());
    let placeholder = external.clone().unwrap_or_else(|| "embedded".to_owned());
    let lookup = |var: &str| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(placeholder.clone()),
        _ => env(var),
    };
    let mut api_config = ApiConfig::from_lookup(lookup)?;
    let mut generator_config = GeneratorConfig::from_lookup(lookup)?;

    let topics = local_topics(&generator_config.kafka, options.partitions);
    let broker = Broker::start(external, &topics).await?;
    let bootstrap = broker.bootstrap_servers();
    api_config.kafka.bootstrap_servers = bootstrap.clone();
    generator_config.kafka.bootstrap_servers = bootstrap.clone();
    tracing::info!(bootstrap = %bootstrap, kind = broker.kind(), "broker ready");

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut esm = EsmConfig::new(
        &generator_config.kafka.request_topic,
        &generator_config.kafka.failed_topic,
    );
    esm.batch_size = options.batch_size;
    esm.batching_window = options.batching_window;
    let consumer = client_config(&generator_config.kafka);

    let offline;
    match &options.invoke_url {
        Some(url) => {
            offline = false;
            let emulator = Emulator::new(&consumer, esm, HttpInvoker::new(url, "question-generator"))?;
            tracing::info!(invoke_url = %url, "generator: invoked through the Lambda Invoke API");
            spawn_emulator(&mut tasks, emulator, shutdown.clone());
        }
        None => {
            let source = question_source(&generator_config).await?;
            offline = matches!(source, LocalSource::Offline(_));
            let generator = Generator::new(
                source,
                KafkaPublisher::new(&generator_config.kafka)?,
                &generator_config,
            )
            // Off unless IDEMPOTENCY_TABLE is set (e.g. with AWS_ENDPOINT_URL at a local DynamoDB).
            .with_idempotency(store_from_env(&generator_config).await);
            let emulator = Emulator::new(&consumer, esm, generator)?;
            spawn_emulator(&mut tasks, emulator, shutdown.clone());
        }
    }

    let listener = TcpListener::bind(options.api_addr)
        .await
        .map_err(|source| StackError::Bind {
            addr: options.api_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StackError::Bind {
        addr: options.api_addr,
        source,
    })?;
    let api = Arc::new(Api::new(KafkaPublisher::new(&api_config.kafka)?, &api_config));
    tasks.spawn(crate::http::serve(listener, api, shutdown.clone()));
    let api_url = format!("http://{addr}");
    tracing::info!(
        url = %format!("{api_url}{}", question_api::ROUTE),
        "API listening"
    );

    if let Some(path) = &options.state_file {
        let state = State {
            bootstrap: bootstrap.clone(),
            api: api_url.clone(),
        };
        if let Err(e) = state.save(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the state file");
        }
    }
    Ok(RunningStack {
        broker,
        api_url,
        shutdown,
        tasks,
        state_file: options.state_file.clone(),
        offline,
    })
}

fn spawn_emulator<I: Invoker + 'static>(
    tasks: &mut JoinSet<()>,
    emulator: Emulator<I>,
    shutdown: CancellationToken,
) {
    tasks.spawn(async move {
        if let Err(e) = emulator.run(shutdown).await {
            tracing::error!(error = %e, "event-source-mapping emulator stopped");
        }
    });
}

async fn question_source(config: &GeneratorConfig) -> Result<LocalSource, StackError> {
    if matches!(config.gemini.api_key, ApiKeySource::None) {
        tracing::warn!(
            "OFFLINE question source: GOOGLE_API_KEY is not set, so questions are placeholders \
             written without a model, marked \"source\": \"offline\" in every response"
        );
        return Ok(LocalSource::Offline(OfflineSource));
    }
    let key = api_key(&config.gemini.api_key, SecretsClient::from_env()).await?;
    tracing::info!(models = %config.gemini.models.join(","), base_url = %config.gemini.base_url, "questions from Gemini");
    Ok(LocalSource::Gemini(Box::new(GeminiClient::new(
        &config.gemini,
        key,
    )?)))
}

//! Where the commands connect: the brokers, security protocol and topic names of the functions'
//! `KAFKA_*` variables (`qgen_adapters::config`, the same reader the functions use), or, when
//! `KAFKA_BOOTSTRAP_SERVERS` is unset, the broker of the local stack that `scripts/local up`
//! recorded in its state file.

use std::path::{Path, PathBuf};

use qgen_adapters::config::{ApiConfig, ConfigError};
use qgen_adapters::kafka::auth::{AuthError, KafkaAuth};
use qgen_adapters::kafka::client_config;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Where a running local stack can be reached: written by `qgen-local up`, read by the
/// commands when no broker is named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The broker.
    pub bootstrap: String,
    /// The API's base URL.
    pub api: String,
}

impl State {
    /// The default location of the state file.
    pub fn default_path() -> PathBuf {
        std::env::temp_dir().join("qgen-local.json")
    }

    /// Writes the state to `path`.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
    }

    /// Reads the state from `path`.
    pub fn load(path: &Path) -> Result<Self, ConnectError> {
        let text = std::fs::read(path).map_err(|_| ConnectError::NotRunning(path.to_owned()))?;
        serde_json::from_slice(&text).map_err(|_| ConnectError::NotRunning(path.to_owned()))
    }
}

/// The commands could not tell where to connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No broker named and no local stack running.
    #[error(
        "no running local stack found ({0} is missing): start one with `scripts/local up`, or \
         name a broker with KAFKA_BOOTSTRAP_SERVERS (and the functions' other KAFKA_* variables)"
    )]
    NotRunning(PathBuf),
    /// A `KAFKA_*` variable is wrong.
    #[error("invalid KAFKA_* settings")]
    Config(#[from] ConfigError),
    /// The authentication could not be set up (a secret, an IAM signer).
    #[error("kafka authentication")]
    Auth(#[from] AuthError),
}

/// The Kafka settings from `lookup` (the environment), with `KAFKA_BOOTSTRAP_SERVERS` taken from
/// the local stack's state file at `state_file` when `lookup` has none.
pub fn settings(
    lookup: impl Fn(&str) -> Option<String>,
    state_file: &Path,
) -> Result<ApiConfig, ConnectError> {
    let local = match lookup("KAFKA_BOOTSTRAP_SERVERS") {
        Some(_) => None,
        None => Some(State::load(state_file)?.bootstrap),
    };
    Ok(ApiConfig::from_lookup(|var| match (var, &local) {
        ("KAFKA_BOOTSTRAP_SERVERS", Some(bootstrap)) => Some(bootstrap.clone()),
        _ => lookup(var),
    })?)
}

/// The service's Kafka as the commands reach it.
pub struct Connection {
    /// The settings: brokers, security, topic names.
    pub config: ApiConfig,
    /// A client configuration for the brokers, authentication applied.
    pub client: ClientConfig,
    /// The authentication, whose context refreshes IAM tokens.
    pub auth: KafkaAuth,
}

/// The [`settings`] of `lookup` and `state_file`, with their authentication resolved (a secret
/// read, an IAM signer set up).
pub async fn connect(
    lookup: impl Fn(&str) -> Option<String>,
    state_file: &Path,
) -> Result<Connection, ConnectError> {
    let config = settings(lookup, state_file)?;
    let auth = KafkaAuth::resolve(&config.kafka).await?;
    let mut client = client_config(&config.kafka);
    auth.apply(&mut client);
    Ok(Connection { config, client, auth })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_file(dir: &Path) -> PathBuf {
        let path = dir.join("state.json");
        State {
            bootstrap: "127.0.0.1:39092".into(),
            api: "http://127.0.0.1:8000".into(),
        }
        .save(&path)
        .unwrap();
        path
    }

    #[test]
    fn the_state_file_is_where_the_local_stack_writes_it_by_default() {
        // qgen-local's `up` writes it there (through this function); DESIGN.md names it.
        let path = State::default_path();
        assert_eq!(path.file_name().unwrap(), "qgen-local.json");
        assert_eq!(path.parent().unwrap(), std::env::temp_dir());
    }

    #[test]
    fn the_named_broker_wins_over_a_running_local_stack() {
        let dir = tempfile::tempdir().unwrap();
        let config = settings(
            |var| (var == "KAFKA_BOOTSTRAP_SERVERS").then(|| "b-1.msk:9098".into()),
            &state_file(dir.path()),
        )
        .unwrap();
        assert_eq!(config.kafka.bootstrap_servers, "b-1.msk:9098");
    }

    #[test]
    fn without_a_named_broker_the_local_stacks_is_used_with_the_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let config = settings(
            |var| (var == "KAFKA_QUESTION_FAILED_TOPIC").then(|| "given.up".into()),
            &state_file(dir.path()),
        )
        .unwrap();
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:39092");
        assert_eq!(config.kafka.failed_topic, "given.up");
    }

    #[test]
    fn without_either_the_error_says_what_to_set() {
        let dir = tempfile::tempdir().unwrap();
        let error = settings(|_| None, &dir.path().join("absent.json")).unwrap_err();
        assert!(matches!(error, ConnectError::NotRunning(_)), "{error:?}");
        assert!(error.to_string().contains("KAFKA_BOOTSTRAP_SERVERS"));
    }
}

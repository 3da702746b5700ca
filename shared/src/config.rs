//! Configuration read from the environment (docs/DESIGN.md, "Configuration").
//!
//! Everything is read through a lookup closure, so tests pass a map instead of mutating the
//! process environment; `from_env` is the one place that reads the real one.

use std::fmt;
use std::time::Duration;

use crate::validation::{DEFAULT_MAX_QUESTIONS, Limits};

/// Google's Gemini endpoint.
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// Default model; models retire often, so this is a setting.
pub const DEFAULT_GEMINI_MODEL: &str = "gemini-3.6-flash";

/// A configuration value is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} must be set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What it was set to.
        value: String,
        /// What would be valid.
        reason: String,
    },
}

/// A value that must never be printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that has to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How the Kafka clients talk to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication (local brokers).
    Plaintext,
    /// TLS (MSK's TLS listener).
    Ssl,
    /// TLS plus SASL authentication (MSK's SCRAM and IAM listeners); needs a [`SaslMechanism`].
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka `security.protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }
}

/// How the clients authenticate over `SASL_SSL` (`KAFKA_SASL_MECHANISM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `SCRAM-SHA-512`: username and password from the Secrets Manager secret named by
    /// `KAFKA_SASL_SECRET_ARN` (MSK requires its name to start with `AmazonMSK_`).
    ScramSha512 {
        /// `KAFKA_SASL_SECRET_ARN`: a secret holding `{"username": "...", "password": "..."}`.
        secret_arn: String,
    },
    /// `AWS_MSK_IAM`: an `OAUTHBEARER` token signed with the function's role, refreshed before
    /// it expires.
    AwsMskIam,
}

/// Kafka settings shared by every client of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `KAFKA_BOOTSTRAP_SERVERS`.
    pub bootstrap_servers: String,
    /// `KAFKA_QUESTION_REQUEST_TOPIC`.
    pub request_topic: String,
    /// `KAFKA_QUESTION_RESPONSE_TOPIC`.
    pub response_topic: String,
    /// `KAFKA_QUESTION_DLQ_TOPIC`.
    pub dlq_topic: String,
    /// `KAFKA_QUESTION_FAILED_TOPIC`: the MSK trigger's on-failure destination, where Lambda
    /// writes the records it gave up on (no function writes it; `topics` creates it and
    /// `replay` reads it).
    pub failed_topic: String,
    /// `KAFKA_SECURITY_PROTOCOL`.
    pub security_protocol: SecurityProtocol,
    /// `KAFKA_SASL_MECHANISM` (with `KAFKA_SASL_SECRET_ARN` for SCRAM); set exactly when the
    /// protocol is `SASL_SSL`.
    pub sasl: Option<SaslMechanism>,
    /// `KAFKA_MESSAGE_TIMEOUT_MS`: how long a produce may take before it is reported as failed.
    /// Well under the function timeout, so the API answers 503 rather than being killed.
    pub message_timeout: Duration,
}

/// Settings of the question-api function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where requests go.
    pub kafka: KafkaConfig,
    /// `MAX_QUESTIONS_PER_REQUEST`.
    pub limits: Limits,
}

/// Where the Gemini API key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// `GOOGLE_API_KEY`: straight from the environment (local runs).
    Env(Secret),
    /// `GEMINI_API_KEY_SECRET_ARN`: fetched from Secrets Manager once per execution environment.
    SecretArn(String),
    /// Neither is set.
    None,
}

/// Settings of the Gemini client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiConfig {
    /// `GEMINI_MODEL`.
    pub model: String,
    /// `GEMINI_BASE_URL`, without a trailing slash.
    pub base_url: String,
    /// The key.
    pub api_key: ApiKeySource,
    /// `GEMINI_TIMEOUT_MS`: the longest one generateContent call may take.
    pub request_timeout: Duration,
    /// How transient failures (429, 500, 503, 504, timeouts) are retried.
    pub retry: RetryConfig,
    /// When to stop calling Gemini for a while.
    pub breaker: BreakerConfig,
}

/// Retries of transient Gemini failures: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// `GEMINI_MAX_ATTEMPTS`: calls per request for transient failures, the first one included.
    pub max_attempts: u32,
    /// `GEMINI_BACKOFF_BASE_MS`: the cap of the first wait; it doubles with every retry.
    pub base_delay: Duration,
    /// `GEMINI_BACKOFF_MAX_MS`: the largest cap a wait can reach.
    pub max_delay: Duration,
}

/// The circuit breaker shared by every invocation of one execution environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// `GEMINI_BREAKER_THRESHOLD`: consecutive failed calls that open the circuit.
    pub failure_threshold: u32,
    /// `GEMINI_BREAKER_COOLDOWN_MS`: how long it stays open before one probe call is let through.
    pub cooldown: Duration,
}

/// Where the generator records which requests it has answered (see the README, "Idempotency").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// `IDEMPOTENCY_TABLE`: the DynamoDB table's name.
    pub table: String,
    /// `IDEMPOTENCY_TTL_SECONDS`: how long an answer is remembered and re-published to
    /// duplicates instead of generating again.
    pub ttl: Duration,
}

/// Settings of the question-generator function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Where responses and dead letters go.
    pub kafka: KafkaConfig,
    /// How to reach Gemini.
    pub gemini: GeminiConfig,
    /// `GENERATION_CONCURRENCY`: Gemini calls in flight per batch.
    pub concurrency: usize,
    /// `MAX_QUESTIONS_PER_REQUEST`, the same limit the API applies.
    pub limits: Limits,
    /// Set when `IDEMPOTENCY_TABLE` is: duplicates of an answered request are not generated again.
    pub idempotency: Option<IdempotencyConfig>,
}

/// Reads variables through `lookup`; empty values count as unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing(var))
    }

    fn or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
        &self,
        var: &'static str,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError> {
        let Some(value) = self.get(var) else {
            return Ok(default);
        };
        match value.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(ConfigError::Invalid {
                var,
                value,
                reason: format!("expected a whole number from {min} to {max}"),
            }),
        }
    }
}

impl KafkaConfig {
    fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let protocol = vars.or("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
        let security_protocol = match protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => {
                return Err(ConfigError::Invalid {
                    var: "KAFKA_SECURITY_PROTOCOL",
                    value: protocol,
                    reason: "expected PLAINTEXT, SSL or SASL_SSL".into(),
                });
            }
        };
        let sasl = Self::sasl(vars, security_protocol)?;
        Ok(KafkaConfig {
            bootstrap_servers: vars.required("KAFKA_BOOTSTRAP_SERVERS")?,
            request_topic: vars.or("KAFKA_QUESTION_REQUEST_TOPIC", "question.request"),
            response_topic: vars.or("KAFKA_QUESTION_RESPONSE_TOPIC", "question.response"),
            dlq_topic: vars.or("KAFKA_QUESTION_DLQ_TOPIC", "question.request.dlq"),
            failed_topic: vars.or("KAFKA_QUESTION_FAILED_TOPIC", "question.request.failed"),
            security_protocol,
            sasl,
            message_timeout: Duration::from_millis(vars.number(
                "KAFKA_MESSAGE_TIMEOUT_MS",
                5_000,
                100,
                300_000,
            )?),
        })
    }

    /// The SASL mechanism, checked against the protocol: a mechanism without `SASL_SSL` (or
    /// the reverse) is a half-made setting that would fail later, at the first connection.
    fn sasl<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        protocol: SecurityProtocol,
    ) -> Result<Option<SaslMechanism>, ConfigError> {
        let mechanism = vars.get("KAFKA_SASL_MECHANISM");
        match (protocol, mechanism) {
            (SecurityProtocol::SaslSsl, None) => Err(ConfigError::Missing("KAFKA_SASL_MECHANISM")),
            (SecurityProtocol::SaslSsl, Some(m)) => match m.to_ascii_uppercase().as_str() {
                "SCRAM-SHA-512" => Ok(Some(SaslMechanism::ScramSha512 {
                    secret_arn: vars.required("KAFKA_SASL_SECRET_ARN")?,
                })),
                "AWS_MSK_IAM" => Ok(Some(SaslMechanism::AwsMskIam)),
                _ => Err(ConfigError::Invalid {
                    var: "KAFKA_SASL_MECHANISM",
                    value: m,
                    reason: "expected SCRAM-SHA-512 or AWS_MSK_IAM".into(),
                }),
            },
            (_, None) => Ok(None),
            (_, Some(m)) => Err(ConfigError::Invalid {
                var: "KAFKA_SASL_MECHANISM",
                value: m,
                reason: "only used with KAFKA_SECURITY_PROTOCOL=SASL_SSL".into(),
            }),
        }
    }
}

fn limits<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Limits, ConfigError> {
    Ok(Limits {
        max_questions: vars.number("MAX_QUESTIONS_PER_REQUEST", DEFAULT_MAX_QUESTIONS, 1, 100)?,
    })
}

impl ApiConfig {
    /// Reads the API's settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the API's settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        Ok(ApiConfig {
            kafka: KafkaConfig::read(&vars)?,
            limits: limits(&vars)?,
        })
    }
}

impl GeneratorConfig {
    /// Reads the generator's settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the generator's settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let api_key = match (vars.get("GEMINI_API_KEY_SECRET_ARN"), vars.get("GOOGLE_API_KEY")) {
            (Some(arn), _) => ApiKeySource::SecretArn(arn),
            (None, Some(key)) => ApiKeySource::Env(Secret::new(key)),
            (None, None) => ApiKeySource::None,
        };
        let base_url = vars.or("GEMINI_BASE_URL", DEFAULT_GEMINI_BASE_URL);
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                var: "GEMINI_BASE_URL",
                value: base_url,
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        Ok(GeneratorConfig {
            kafka: KafkaConfig::read(&vars)?,
            gemini: GeminiConfig {
                model: vars.or("GEMINI_MODEL", DEFAULT_GEMINI_MODEL),
                base_url: base_url.trim_end_matches('/').to_owned(),
                api_key,
                request_timeout: Duration::from_millis(vars.number(
                    "GEMINI_TIMEOUT_MS",
                    30_000,
                    100,
                    900_000,
                )?),
                retry: RetryConfig {
                    max_attempts: vars.number("GEMINI_MAX_ATTEMPTS", 4, 1, 20)?,
                    base_delay: Duration::from_millis(vars.number(
                        "GEMINI_BACKOFF_BASE_MS",
                        500,
                        1,
                        60_000,
                    )?),
                    max_delay: Duration::from_millis(vars.number(
                        "GEMINI_BACKOFF_MAX_MS",
                        8_000,
                        1,
                        300_000,
                    )?),
                },
                breaker: BreakerConfig {
                    failure_threshold: vars.number("GEMINI_BREAKER_THRESHOLD", 5, 1, 10_000)?,
                    cooldown: Duration::from_millis(vars.number(
                        "GEMINI_BREAKER_COOLDOWN_MS",
                        30_000,
                        1,
                        3_600_000,
                    )?),
                },
            },
            concurrency: vars.number("GENERATION_CONCURRENCY", 16, 1, 256)?,
            limits: limits(&vars)?,
            idempotency: match vars.get("IDEMPOTENCY_TABLE") {
                Some(table) => Some(IdempotencyConfig {
                    table,
                    // At most DynamoDB TTL's practical horizon of a year.
                    ttl: Duration::from_secs(vars.number(
                        "IDEMPOTENCY_TTL_SECONDS",
                        3_600,
                        60,
                        31_536_000,
                    )?),
                }),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn applies_the_documented_defaults() {
        let config = GeneratorConfig::from_lookup(lookup(&[("KAFKA_BOOTSTRAP_SERVERS", "b:9092")])).unwrap();
        assert_eq!(config.kafka.bootstrap_servers, "b:9092");
        assert_eq!(config.kafka.request_topic, "question.request");
        assert_eq!(config.kafka.response_topic, "question.response");
        assert_eq!(config.kafka.dlq_topic, "question.request.dlq");
        assert_eq!(config.kafka.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(config.gemini.model, DEFAULT_GEMINI_MODEL);
        assert_eq!(config.gemini.base_url, DEFAULT_GEMINI_BASE_URL);
        assert_eq!(config.gemini.api_key, ApiKeySource::None);
        assert_eq!(config.concurrency, 16);
        assert_eq!(config.limits.max_questions, 20);
        assert_eq!(config.idempotency, None);
        assert_eq!(
            config.gemini.retry,
            RetryConfig {
                max_attempts: 4,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(8),
            }
        );
        assert_eq!(
            config.gemini.breaker,
            BreakerConfig {
                failure_threshold: 5,
                cooldown: Duration::from_secs(30),
            }
        );
    }

    #[test]
    fn requires_bootstrap_servers() {
        let err = ApiConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("KAFKA_BOOTSTRAP_SERVERS")));
    }

    #[test]
    fn rejects_out_of_range_numbers_naming_the_variable() {
        for (var, value) in [
            ("GENERATION_CONCURRENCY", "0"),
            ("GENERATION_CONCURRENCY", "many"),
            ("MAX_QUESTIONS_PER_REQUEST", "1000"),
            ("KAFKA_MESSAGE_TIMEOUT_MS", "-5"),
            ("KAFKA_SECURITY_PROTOCOL", "TLS"),
            ("GEMINI_BASE_URL", "localhost:8080"),
            ("GEMINI_MAX_ATTEMPTS", "0"),
            ("GEMINI_BACKOFF_BASE_MS", "0"),
            ("GEMINI_BREAKER_THRESHOLD", "0"),
            ("GEMINI_BREAKER_COOLDOWN_MS", "soon"),
        ] {
            let err = GeneratorConfig::from_lookup(lookup(&[("KAFKA_BOOTSTRAP_SERVERS", "b"), (var, value)]))
                .unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { var: v, .. } if v == var),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn secret_arn_wins_over_an_env_key_and_keys_never_print() {
        let config = GeneratorConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b"),
            ("GOOGLE_API_KEY", "AIza-very-secret"),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret"));
        let config = GeneratorConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b"),
            ("GOOGLE_API_KEY", "k"),
            (
                "GEMINI_API_KEY_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:g",
            ),
        ]))
        .unwrap();
        assert!(matches!(config.gemini.api_key, ApiKeySource::SecretArn(_)));
    }

    #[test]
    fn sasl_ssl_reads_the_scram_secret_or_iam() {
        let scram = ApiConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b-1:9096"),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            (
                "KAFKA_SASL_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:AmazonMSK_qgen",
            ),
        ]))
        .unwrap();
        assert_eq!(scram.kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(
            scram.kafka.sasl,
            Some(SaslMechanism::ScramSha512 {
                secret_arn: "arn:aws:secretsmanager:eu-west-1:1:secret:AmazonMSK_qgen".into()
            })
        );
        let iam = ApiConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b-1:9098"),
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_MECHANISM", "AWS_MSK_IAM"),
        ]))
        .unwrap();
        assert_eq!(iam.kafka.sasl, Some(SaslMechanism::AwsMskIam));
    }

    #[test]
    fn half_made_sasl_settings_are_refused_at_cold_start() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")], "KAFKA_SASL_MECHANISM"),
            (
                &[
                    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                    ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                ],
                "KAFKA_SASL_SECRET_ARN",
            ),
            (
                &[
                    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                    ("KAFKA_SASL_MECHANISM", "PLAIN"),
                ],
                "KAFKA_SASL_MECHANISM",
            ),
            (&[("KAFKA_SASL_MECHANISM", "AWS_MSK_IAM")], "KAFKA_SASL_MECHANISM"),
        ];
        for (vars, named) in cases {
            let mut pairs = vec![("KAFKA_BOOTSTRAP_SERVERS", "b")];
            pairs.extend_from_slice(vars);
            let err = ApiConfig::from_lookup(lookup(&pairs)).unwrap_err();
            let var = match err {
                ConfigError::Missing(var) | ConfigError::Invalid { var, .. } => var,
            };
            assert_eq!(var, named, "{vars:?}");
        }
    }

    #[test]
    fn an_idempotency_table_turns_the_store_on_with_a_one_hour_ttl_by_default() {
        let config = GeneratorConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b"),
            ("IDEMPOTENCY_TABLE", "qgen-idempotency"),
        ]))
        .unwrap();
        assert_eq!(
            config.idempotency,
            Some(IdempotencyConfig {
                table: "qgen-idempotency".into(),
                ttl: Duration::from_secs(3_600),
            })
        );
        let err = GeneratorConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b"),
            ("IDEMPOTENCY_TABLE", "t"),
            ("IDEMPOTENCY_TTL_SECONDS", "5"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "IDEMPOTENCY_TTL_SECONDS",
                ..
            }
        ));
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let config = GeneratorConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b"),
            ("GEMINI_BASE_URL", "http://127.0.0.1:9/"),
        ]))
        .unwrap();
        assert_eq!(config.gemini.base_url, "http://127.0.0.1:9");
    }
}

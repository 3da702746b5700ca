//! The Kafka and API configuration read from the environment (docs/DESIGN.md,
//! "Configuration"); the generator's own settings are `question_generator::config`.
//!
//! Everything is read through a lookup closure, so tests pass a map instead of mutating the
//! process environment; `from_env` is the one place that reads the real one.

use std::fmt;
use std::time::Duration;

use qgen_contract::validation::{DEFAULT_MAX_QUESTIONS, Limits};

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

/// How the Kafka clients talk to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication (local brokers).
    Plaintext,
    /// TLS (MSK's TLS listener).
    Ssl,
    /// TLS plus SASL authentication (MSK's SCRAM and IAM listeners); needs a [`SaslMechanism`].
    SaslSsl,
    /// SASL authentication without TLS: a self-managed or local broker (MSK always uses TLS).
    /// Needs a [`SaslMechanism`]; the tests' SCRAM broker speaks it.
    SaslPlaintext,
}

impl SecurityProtocol {
    /// The librdkafka `security.protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslSsl => "sasl_ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
        }
    }

    /// Whether the clients authenticate with SASL, and so need `KAFKA_SASL_MECHANISM`.
    pub fn is_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslSsl | SecurityProtocol::SaslPlaintext)
    }
}

/// How the clients authenticate over `SASL_SSL` or `SASL_PLAINTEXT` (`KAFKA_SASL_MECHANISM`).
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
    /// protocol is `SASL_SSL` or `SASL_PLAINTEXT`.
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

/// Reads variables through `lookup`; empty values count as unset. The generator's own settings
/// (`question_generator::config`) are read with it too, so every variable follows one set of
/// rules.
pub struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// Reads through `lookup` (`|var| std::env::var(var).ok()` for the process environment).
    pub fn new(lookup: F) -> Self {
        Vars(lookup)
    }

    /// The value of `var`, trimmed; `None` when unset or empty.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `var`, or [`ConfigError::Missing`].
    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing(var))
    }

    /// The value of `var`, or `default`.
    pub fn or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    /// `var` as a number from `min` to `max`, `default` when unset; anything else is
    /// [`ConfigError::Invalid`] naming the variable and the range.
    pub fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
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
    /// Reads the `KAFKA_*` variables.
    pub fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let protocol = vars.or("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
        let security_protocol = match protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            _ => {
                return Err(ConfigError::Invalid {
                    var: "KAFKA_SECURITY_PROTOCOL",
                    value: protocol,
                    reason: "expected PLAINTEXT, SSL, SASL_SSL or SASL_PLAINTEXT".into(),
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

    /// The SASL mechanism, checked against the protocol: a mechanism without a `SASL_` protocol
    /// (or the reverse) is a half-made setting that would fail later, at the first connection.
    fn sasl<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        protocol: SecurityProtocol,
    ) -> Result<Option<SaslMechanism>, ConfigError> {
        let mechanism = vars.get("KAFKA_SASL_MECHANISM");
        match (protocol.is_sasl(), mechanism) {
            (true, None) => Err(ConfigError::Missing("KAFKA_SASL_MECHANISM")),
            (true, Some(m)) => match m.to_ascii_uppercase().as_str() {
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
            (false, None) => Ok(None),
            (false, Some(m)) => Err(ConfigError::Invalid {
                var: "KAFKA_SASL_MECHANISM",
                value: m,
                reason: "only used with KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT".into(),
            }),
        }
    }
}

/// Reads `MAX_QUESTIONS_PER_REQUEST`, the limit the API and the generator both apply.
pub fn limits<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Limits, ConfigError> {
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
        let vars = Vars::new(lookup);
        Ok(ApiConfig {
            kafka: KafkaConfig::read(&vars)?,
            limits: limits(&vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_testkit::env_lookup as lookup;

    #[test]
    fn requires_bootstrap_servers() {
        let err = ApiConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("KAFKA_BOOTSTRAP_SERVERS")));
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
        let plaintext = ApiConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_SASL_SECRET_ARN", "AmazonMSK_local"),
        ]))
        .unwrap();
        assert_eq!(plaintext.kafka.security_protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(plaintext.kafka.security_protocol.as_str(), "sasl_plaintext");
        assert!(matches!(
            plaintext.kafka.sasl,
            Some(SaslMechanism::ScramSha512 { .. })
        ));
    }

    #[test]
    fn half_made_sasl_settings_are_refused_at_cold_start() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")], "KAFKA_SASL_MECHANISM"),
            (
                &[("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")],
                "KAFKA_SASL_MECHANISM",
            ),
            (
                &[
                    ("KAFKA_SECURITY_PROTOCOL", "SSL"),
                    ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                ],
                "KAFKA_SASL_MECHANISM",
            ),
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
    fn a_number_is_read_within_its_bounds_and_refused_outside_them_naming_the_variable() {
        let vars = Vars::new(lookup(&[
            ("LOW", "1"),
            ("HIGH", "10"),
            ("UNDER", "0"),
            ("OVER", "11"),
            ("WORD", "ten"),
        ]));

        assert_eq!(vars.number("LOW", 5, 1, 10).unwrap(), 1);
        assert_eq!(vars.number("HIGH", 5, 1, 10).unwrap(), 10);
        assert_eq!(vars.number("UNSET", 5, 1, 10).unwrap(), 5);
        for var in ["UNDER", "OVER", "WORD"] {
            let err = vars.number(var, 5_u32, 1, 10).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, reason, .. } if *v == var && reason.contains("from 1 to 10")),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn the_question_limit_is_read_from_its_variable_with_the_contracts_default() {
        let limit = |vars: &[(&str, &str)]| limits(&Vars::new(lookup(vars))).map(|l| l.max_questions);

        assert_eq!(limit(&[]).unwrap(), DEFAULT_MAX_QUESTIONS);
        assert_eq!(limit(&[("MAX_QUESTIONS_PER_REQUEST", "7")]).unwrap(), 7);
        assert!(limit(&[("MAX_QUESTIONS_PER_REQUEST", "101")]).is_err());
    }
}

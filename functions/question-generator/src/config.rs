//! The generator's settings, read from the environment through a lookup closure like the rest
//! (docs/DESIGN.md, "Configuration"): the Kafka side is `qgen_adapters::config`, the rest —
//! Gemini, retries, the breaker, idempotency, concurrency — is this function's own.

use std::time::Duration;

use qgen_adapters::config::{ConfigError, KafkaConfig, Vars, limits};
use qgen_contract::validation::Limits;
use secrecy::SecretString;

/// Google's Gemini endpoint.
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// Default model; models retire often, so this is a setting (a list: the next is used when
/// Gemini answers 404 for one).
pub const DEFAULT_GEMINI_MODEL: &str = "gemini-3.6-flash";
/// Default `GEMINI_MAX_WAIT_SECONDS`: half an hour.
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 1_800;
/// Default thinking level: see [`ThinkingLevel`] and the README ("Gemini's thinking").
pub const DEFAULT_THINKING_LEVEL: ThinkingLevel = ThinkingLevel::Low;

/// How much a Gemini 3 model thinks before it answers (`generationConfig.thinkingConfig.
/// thinkingLevel`): the levels Google documents for Gemini 3.5 and 3.6 Flash, whose default is
/// `MEDIUM` (<https://ai.google.dev/gemini-api/docs/whats-new-gemini-3.6>,
/// <https://ai.google.dev/gemini-api/docs/thinking>; the enum:
/// <https://googleapis.github.io/js-genai/release_docs/enums/types.ThinkingLevel.html>). Thinking
/// tokens are billed as output tokens and add latency; quiz questions at a stated difficulty,
/// checked by our own rules afterwards, need little of it. Gemini 3.7 and 3.8 Flash have no
/// `MINIMAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingLevel {
    /// As little thinking as the model allows.
    Minimal,
    /// Low latency and cost; for simple instruction following.
    Low,
    /// Balanced (Gemini 3 Flash's own default).
    Medium,
    /// The most reasoning, the slowest.
    High,
}

impl ThinkingLevel {
    /// Every level, in order.
    pub const ALL: [ThinkingLevel; 4] = [
        ThinkingLevel::Minimal,
        ThinkingLevel::Low,
        ThinkingLevel::Medium,
        ThinkingLevel::High,
    ];

    /// The value of `thinkingLevel` on the wire: the API's enum name, in capitals, which
    /// every surface accepts (AI Studio refused lower case where the API took both).
    pub fn wire_name(self) -> &'static str {
        match self {
            ThinkingLevel::Minimal => "MINIMAL",
            ThinkingLevel::Low => "LOW",
            ThinkingLevel::Medium => "MEDIUM",
            ThinkingLevel::High => "HIGH",
        }
    }

    /// The value of `GEMINI_THINKING_LEVEL` (read in any case).
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkingLevel::Minimal => "minimal",
            ThinkingLevel::Low => "low",
            ThinkingLevel::Medium => "medium",
            ThinkingLevel::High => "high",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

/// Where the Gemini API key comes from.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// `GOOGLE_API_KEY`: straight from the environment (local runs).
    Env(SecretString),
    /// `GEMINI_API_KEY_SECRET_ARN`: fetched from Secrets Manager once per execution environment.
    SecretArn(String),
    /// Neither is set.
    None,
}

/// Settings of the Gemini client.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// `GEMINI_MODEL`: the model, then its fallbacks (`a,b`), never empty.
    pub models: Vec<String>,
    /// `GEMINI_THINKING_LEVEL`.
    pub thinking_level: ThinkingLevel,
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
    /// The project's per-minute quota and how many invocations share it.
    pub quota: QuotaConfig,
}

/// The project's Gemini quota, which every execution environment calling at once shares
/// ([`crate::pace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    /// `GEMINI_QUOTA_RPM`: requests a minute the project may send the model; 0 paces nothing
    /// (per-minute 429s are still waited out).
    pub rpm: u32,
    /// `GEMINI_QUOTA_INVOCATIONS`: invocations calling at once, each taking an equal share: the
    /// request topic's partitions as deployed (one invocation per partition), 1 for the local
    /// stack (one generator serves every partition).
    pub invocations: u32,
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
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Where responses and dead letters go.
    pub kafka: KafkaConfig,
    /// How to reach Gemini.
    pub gemini: GeminiConfig,
    /// `GENERATION_CONCURRENCY`: Gemini calls in flight per batch.
    pub concurrency: usize,
    /// `GEMINI_MAX_WAIT_SECONDS`: how long a request may wait for Gemini as a whole to answer
    /// again, from its request event's `timestamp`, before it is answered `gemini_unavailable`.
    /// Zero never holds a request.
    pub max_wait: Duration,
    /// `MAX_QUESTIONS_PER_REQUEST`, the same limit the API applies.
    pub limits: Limits,
    /// Set when `IDEMPOTENCY_TABLE` is: duplicates of an answered request are not generated again.
    pub idempotency: Option<IdempotencyConfig>,
}

impl GeneratorConfig {
    /// Reads the generator's settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the generator's settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars::new(lookup);
        let api_key = match (vars.get("GEMINI_API_KEY_SECRET_ARN"), vars.get("GOOGLE_API_KEY")) {
            (Some(arn), _) => ApiKeySource::SecretArn(arn),
            (None, Some(key)) => ApiKeySource::Env(SecretString::from(key)),
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
                models: models(&vars.or("GEMINI_MODEL", DEFAULT_GEMINI_MODEL))?,
                thinking_level: match vars.get("GEMINI_THINKING_LEVEL") {
                    None => DEFAULT_THINKING_LEVEL,
                    Some(value) => ThinkingLevel::parse(&value).ok_or_else(|| ConfigError::Invalid {
                        var: "GEMINI_THINKING_LEVEL",
                        value,
                        reason: "expected minimal, low, medium or high".into(),
                    })?,
                },
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
                quota: QuotaConfig {
                    rpm: vars.number("GEMINI_QUOTA_RPM", 0, 0, 1_000_000)?,
                    invocations: vars.number("GEMINI_QUOTA_INVOCATIONS", 1, 1, 10_000)?,
                },
            },
            concurrency: vars.number("GENERATION_CONCURRENCY", 16, 1, 256)?,
            // Half an hour: longer than the outages and quota minutes Gemini has had, short
            // enough that the content service hears within a bound it can show a person
            // (docs/DESIGN.md, "Queued while Gemini cannot answer").
            max_wait: Duration::from_secs(vars.number(
                "GEMINI_MAX_WAIT_SECONDS",
                DEFAULT_MAX_WAIT_SECONDS,
                0,
                86_400,
            )?),
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

/// `GEMINI_MODEL` as a list: comma-separated model names, each a path segment of the endpoint.
fn models(value: &str) -> Result<Vec<String>, ConfigError> {
    let models: Vec<String> = value.split(',').map(|m| m.trim().to_owned()).collect();
    let valid = |m: &String| {
        !m.is_empty()
            && m.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    if models.iter().all(valid) {
        Ok(models)
    } else {
        Err(ConfigError::Invalid {
            var: "GEMINI_MODEL",
            value: value.to_owned(),
            reason: "expected model names separated by commas, e.g. gemini-3.6-flash,gemini-3-flash".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_adapters::config::SecurityProtocol;
    use qgen_testkit::env_lookup as lookup;

    #[test]
    fn applies_the_documented_defaults() {
        let config = GeneratorConfig::from_lookup(lookup(&[("KAFKA_BOOTSTRAP_SERVERS", "b:9092")])).unwrap();
        assert_eq!(config.kafka.bootstrap_servers, "b:9092");
        assert_eq!(config.kafka.request_topic, "question.request");
        assert_eq!(config.kafka.response_topic, "question.response");
        assert_eq!(config.kafka.dlq_topic, "question.request.dlq");
        assert_eq!(config.kafka.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(config.gemini.models, [DEFAULT_GEMINI_MODEL]);
        assert_eq!(config.gemini.thinking_level, ThinkingLevel::Low);
        assert_eq!(config.gemini.base_url, DEFAULT_GEMINI_BASE_URL);
        assert!(matches!(config.gemini.api_key, ApiKeySource::None));
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
            ("GEMINI_THINKING_LEVEL", "none"),
            ("GEMINI_THINKING_LEVEL", "1024"),
            ("GEMINI_MODEL", "gemini-a,,gemini-b"),
            ("GEMINI_MODEL", "gemini-3.6-flash,"),
            ("GEMINI_MODEL", "models/../x"),
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
    fn a_model_list_and_every_documented_thinking_level_are_read() {
        let config = GeneratorConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b"),
            ("GEMINI_MODEL", "gemini-3.6-flash, gemini-3-flash"),
        ]))
        .unwrap();
        assert_eq!(config.gemini.models, ["gemini-3.6-flash", "gemini-3-flash"]);
        for (value, level) in [
            ("minimal", ThinkingLevel::Minimal),
            ("low", ThinkingLevel::Low),
            ("MEDIUM", ThinkingLevel::Medium),
            ("high", ThinkingLevel::High),
        ] {
            let config = GeneratorConfig::from_lookup(lookup(&[
                ("KAFKA_BOOTSTRAP_SERVERS", "b"),
                ("GEMINI_THINKING_LEVEL", value),
            ]))
            .unwrap();
            assert_eq!(config.gemini.thinking_level, level, "{value}");
        }
    }

    #[test]
    fn an_unknown_thinking_level_is_refused_with_the_levels_it_takes() {
        let err = GeneratorConfig::from_lookup(lookup(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b"),
            ("GEMINI_THINKING_LEVEL", "dynamic"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "GEMINI_THINKING_LEVEL=\"dynamic\" is invalid: expected minimal, low, medium or high"
        );
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

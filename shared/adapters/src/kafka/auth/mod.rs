//! Authentication to the brokers: nothing (PLAINTEXT, SSL), SCRAM-SHA-512 with credentials
//! from Secrets Manager, or MSK IAM with `OAUTHBEARER` tokens signed with the function's role.
//!
//! Credentials are resolved once per execution environment ([`KafkaAuth::resolve`]) and handed
//! to every client built from the same [`KafkaConfig`]. IAM tokens expire (15 minutes), so they
//! are not resolved up front: librdkafka asks [`KafkaContext`] for a fresh one whenever the
//! current one is about to expire.
//!
//! The mechanisms' credentials sit beside this module: `scram.rs` ([`ScramCredentials`]) and
//! `iam.rs` ([`MskIamSigner`]).

mod iam;
mod scram;

use std::error::Error;

use aws_config::SdkConfig;
use rdkafka::ClientConfig;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::consumer::ConsumerContext;
use secrecy::ExposeSecret;

use crate::config::{KafkaConfig, SaslMechanism};
use crate::secrets::{SecretsClient, SecretsError};

pub use self::iam::MskIamSigner;
pub use self::scram::ScramCredentials;

/// Credentials for the brokers could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The SCRAM secret could not be read.
    #[error("could not read the Kafka SCRAM secret")]
    Secret(#[source] SecretsError),
    /// The SCRAM secret is not `{"username": "...", "password": "..."}`.
    #[error("secret {arn} is not a JSON object with non-empty \"username\" and \"password\"")]
    SecretFormat {
        /// The secret's ARN (never its value).
        arn: String,
    },
    /// IAM needs a region and credentials, as Lambda provides through its environment.
    #[error("MSK IAM authentication needs AWS {0} (AWS_REGION and the function's role in Lambda)")]
    AwsEnvironment(&'static str),
    /// IAM needs a tokio runtime to resolve credentials on.
    #[error("MSK IAM authentication must be set up inside a tokio runtime")]
    NoRuntime,
    /// An IAM token could not be signed.
    #[error("could not sign an MSK IAM token: {0}")]
    Token(String),
}

/// How a client proves who it is, resolved once per execution environment.
#[derive(Debug, Clone)]
pub enum KafkaAuth {
    /// No SASL (PLAINTEXT or SSL).
    None,
    /// SCRAM-SHA-512 username and password.
    Scram(ScramCredentials),
    /// MSK IAM: tokens signed on demand.
    Iam(MskIamSigner),
}

impl KafkaAuth {
    /// Resolves what `config` asks for from the process environment: the SCRAM secret through
    /// Secrets Manager, or the IAM signer from the default credentials chain. PLAINTEXT and SSL
    /// touch no AWS API at all.
    pub async fn resolve(config: &KafkaConfig) -> Result<Self, AuthError> {
        if config.sasl.is_none() {
            return Ok(KafkaAuth::None);
        }
        let sdk = aws_config::load_from_env().await;
        let secrets = SecretsClient::new(aws_sdk_secretsmanager::Client::new(&sdk));
        Self::resolve_with(config, &secrets, &sdk).await
    }

    /// Resolves what `config` asks for with the clients given (tests point them at moto).
    pub async fn resolve_with(
        config: &KafkaConfig,
        secrets: &SecretsClient,
        sdk: &SdkConfig,
    ) -> Result<Self, AuthError> {
        match &config.sasl {
            None => Ok(KafkaAuth::None),
            Some(SaslMechanism::ScramSha512 { secret_arn }) => {
                let secret = secrets.get(secret_arn).await.map_err(AuthError::Secret)?;
                Ok(KafkaAuth::Scram(ScramCredentials::from_secret(
                    secret_arn, &secret,
                )?))
            }
            Some(SaslMechanism::AwsMskIam) => Ok(KafkaAuth::Iam(MskIamSigner::from_sdk_config(sdk)?)),
        }
    }

    /// Whether these credentials are the kind `config` asks for.
    pub fn fits(&self, config: &KafkaConfig) -> bool {
        matches!(
            (&config.sasl, self),
            (None, KafkaAuth::None)
                | (Some(SaslMechanism::ScramSha512 { .. }), KafkaAuth::Scram(_))
                | (Some(SaslMechanism::AwsMskIam), KafkaAuth::Iam(_))
        )
    }

    /// Adds the static credentials to `client` (SCRAM's username and password; IAM tokens come
    /// through [`KafkaContext`] instead).
    pub fn apply(&self, client: &mut ClientConfig) {
        if let KafkaAuth::Scram(credentials) = self {
            client
                .set("sasl.username", &credentials.username)
                .set("sasl.password", credentials.password.expose_secret());
        }
    }

    /// The client context that hands librdkafka IAM tokens when it asks for them.
    pub fn context(&self) -> KafkaContext {
        KafkaContext {
            iam: match self {
                KafkaAuth::Iam(signer) => Some(signer.clone()),
                _ => None,
            },
        }
    }
}

/// The rdkafka client context of every client of the service: librdkafka's logs go to
/// `tracing` (rdkafka's default), and with IAM it signs a token whenever librdkafka asks.
#[derive(Debug, Clone, Default)]
pub struct KafkaContext {
    iam: Option<MskIamSigner>,
}

impl ClientContext for KafkaContext {
    // Harmless without OAUTHBEARER: librdkafka only raises the refresh event for that mechanism.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _oauthbearer_config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        let signer = self
            .iam
            .as_ref()
            .ok_or("OAUTHBEARER needs KAFKA_SASL_MECHANISM=AWS_MSK_IAM credentials")?;
        match signer.token() {
            Ok(token) => {
                tracing::info!(lifetime_ms = token.lifetime_ms, "signed an MSK IAM token");
                Ok(token)
            }
            Err(e) => {
                tracing::error!(error = %e, "could not sign an MSK IAM token");
                Err(Box::new(e))
            }
        }
    }
}

/// Consumers (the `replay` command) authenticate the same way; offsets are theirs to manage.
impl ConsumerContext for KafkaContext {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SecurityProtocol;
    use crate::kafka::producer_config;
    use aws_sdk_secretsmanager::config::{Credentials, Region, SharedCredentialsProvider};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use secrecy::SecretString;

    fn config(protocol: SecurityProtocol, sasl: Option<SaslMechanism>) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "b-1.msk:9096".into(),
            request_topic: "question.request".into(),
            response_topic: "question.response".into(),
            dlq_topic: "question.request.dlq".into(),
            failed_topic: "question.request.failed".into(),
            security_protocol: protocol,
            sasl,
            message_timeout: Duration::from_millis(4_000),
        }
    }

    fn signer() -> MskIamSigner {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI",
            Some("session".into()),
            None,
            "test",
        );
        MskIamSigner::new(
            Region::new("eu-west-1"),
            SharedCredentialsProvider::new(credentials),
        )
        .unwrap()
    }

    #[test]
    fn plaintext_and_ssl_set_no_sasl() {
        for (protocol, expected) in [
            (SecurityProtocol::Plaintext, "plaintext"),
            (SecurityProtocol::Ssl, "ssl"),
        ] {
            let mut client = producer_config(&config(protocol, None));
            KafkaAuth::None.apply(&mut client);
            assert_eq!(client.get("security.protocol"), Some(expected));
            assert_eq!(client.get("sasl.mechanism"), None);
            assert_eq!(client.get("sasl.username"), None);
        }
    }

    #[test]
    fn scram_sets_the_mechanism_and_the_secrets_credentials() {
        let kafka = config(
            SecurityProtocol::SaslSsl,
            Some(SaslMechanism::ScramSha512 {
                secret_arn: "arn:s:AmazonMSK_qgen".into(),
            }),
        );
        let secret = SecretString::from(r#"{"username": "qgen", "password": "p4ss"}"#);
        let auth = KafkaAuth::Scram(ScramCredentials::from_secret("arn:s:AmazonMSK_qgen", &secret).unwrap());

        let mut client = producer_config(&kafka);
        auth.apply(&mut client);

        assert!(auth.fits(&kafka));
        assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("sasl.username"), Some("qgen"));
        assert_eq!(client.get("sasl.password"), Some("p4ss"));
        assert!(!format!("{auth:?}").contains("p4ss"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn iam_sets_oauthbearer_and_signs_tokens_for_kafka_cluster_connect() {
        let kafka = config(SecurityProtocol::SaslSsl, Some(SaslMechanism::AwsMskIam));
        let auth = KafkaAuth::Iam(signer());

        let mut client = producer_config(&kafka);
        auth.apply(&mut client);
        // librdkafka calls this from its own thread; so does the test.
        let context = auth.context();
        let token = std::thread::spawn(move || context.generate_oauth_token(None).map_err(|e| e.to_string()))
            .join()
            .unwrap()
            .unwrap();

        assert!(auth.fits(&kafka));
        assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(client.get("sasl.mechanism"), Some("OAUTHBEARER"));
        assert_eq!(client.get("sasl.username"), None);
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(&token.token).unwrap()).unwrap();
        assert!(
            url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Credential=AKIDEXAMPLE%2F"), "{url}");
        assert!(url.contains("X-Amz-Security-Token=session"), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let now_ms = chrono::Utc::now().timestamp_millis();
        assert!(token.lifetime_ms > now_ms && token.lifetime_ms <= now_ms + 900_000 + 1_000);
        // Logged at cold start: the region shows, the credentials do not.
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("eu-west-1") && !shown.contains("wJalrXUtnFEMI"),
            "{shown}"
        );
    }

    #[test]
    fn without_iam_the_context_refuses_to_invent_a_token() {
        assert!(KafkaAuth::None.context().generate_oauth_token(None).is_err());
    }

    #[test]
    fn credentials_of_the_wrong_kind_do_not_fit() {
        let iam = config(SecurityProtocol::SaslSsl, Some(SaslMechanism::AwsMskIam));
        assert!(!KafkaAuth::None.fits(&iam));
        assert!(KafkaAuth::None.fits(&config(SecurityProtocol::Ssl, None)));
    }
}

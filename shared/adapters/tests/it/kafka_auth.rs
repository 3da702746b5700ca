//! SCRAM credentials resolved from a real Secrets Manager endpoint (moto), as the functions do
//! at cold start with `KAFKA_SASL_SECRET_ARN`.

use aws_config::SdkConfig;
use qgen_adapters::config::{ApiConfig, SaslMechanism};
use qgen_adapters::kafka::auth::{AuthError, KafkaAuth};
use qgen_adapters::kafka::{KafkaPublisher, producer_config};
use qgen_adapters::secrets::SecretsClient;
use qgen_testkit::MotoServer;

fn scram_config(secret_arn: &str) -> qgen_adapters::config::KafkaConfig {
    ApiConfig::from_lookup(|var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some("b-1.msk.example:9096".into()),
        "KAFKA_SECURITY_PROTOCOL" => Some("SASL_SSL".into()),
        "KAFKA_SASL_MECHANISM" => Some("SCRAM-SHA-512".into()),
        "KAFKA_SASL_SECRET_ARN" => Some(secret_arn.into()),
        _ => None,
    })
    .unwrap()
    .kafka
}

#[tokio::test]
async fn scram_credentials_come_from_the_amazonmsk_secret() {
    let moto = MotoServer::start().await;
    let arn = moto
        .create_secret(
            "AmazonMSK_qgen",
            r#"{"username": "qgen-functions", "password": "s3cret-pw"}"#,
        )
        .await;
    let sdk = moto.secrets_manager();
    let config = scram_config(&arn);

    let auth = KafkaAuth::resolve_with(&config, &SecretsClient::new(sdk), &SdkConfig::builder().build())
        .await
        .unwrap();
    let mut client = producer_config(&config);
    auth.apply(&mut client);

    assert!(matches!(config.sasl, Some(SaslMechanism::ScramSha512 { .. })));
    assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(client.get("sasl.username"), Some("qgen-functions"));
    assert_eq!(client.get("sasl.password"), Some("s3cret-pw"));
    // librdkafka accepts the configuration (it connects lazily).
    assert!(KafkaPublisher::with_auth(&config, &auth).is_ok());
}

#[tokio::test]
async fn a_missing_scram_secret_fails_at_cold_start_naming_it() {
    let moto = MotoServer::start().await;
    let config = scram_config("AmazonMSK_absent");

    let err = KafkaAuth::resolve_with(
        &config,
        &SecretsClient::new(moto.secrets_manager()),
        &SdkConfig::builder().build(),
    )
    .await
    .unwrap_err();

    assert!(matches!(err, AuthError::Secret(_)));
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("AmazonMSK_absent")
    );
}

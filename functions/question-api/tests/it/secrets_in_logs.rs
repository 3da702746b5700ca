//! The API function's one secret — the SCRAM password of an MSK cluster, read from a real local
//! Secrets Manager (moto) — never appears in anything it logs, even when the broker refuses it.

use aws_config::SdkConfig;
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_adapters::kafka::auth::KafkaAuth;
use qgen_adapters::secrets::SecretsClient;
use qgen_testkit::{MotoServer, capture_logs, free_port};
use question_api::Api;

const PASSWORD: &str = "Sup3r-s3cret-scram-pa55word";

#[tokio::test]
async fn the_scram_password_is_never_logged() {
    let moto = MotoServer::start().await;
    let secret = format!(r#"{{"username": "qgen-api", "password": "{PASSWORD}"}}"#);
    let arn = moto.create_secret("AmazonMSK_qgen_api", &secret).await;
    // A SASL_SSL listener nobody serves: every publish fails and gets logged.
    let bootstrap = format!("127.0.0.1:{}", free_port());
    let config = ApiConfig::from_lookup(|var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap.clone()),
        "KAFKA_SECURITY_PROTOCOL" => Some("SASL_SSL".into()),
        "KAFKA_SASL_MECHANISM" => Some("SCRAM-SHA-512".into()),
        "KAFKA_SASL_SECRET_ARN" => Some(arn.clone()),
        "KAFKA_MESSAGE_TIMEOUT_MS" => Some("1000".into()),
        _ => None,
    })
    .unwrap();
    let (logs, _guard) = capture_logs();

    let auth = KafkaAuth::resolve_with(
        &config.kafka,
        &SecretsClient::new(moto.secrets_manager()),
        &SdkConfig::builder().build(),
    )
    .await
    .unwrap();
    let api = Api::new(KafkaPublisher::with_auth(&config.kafka, &auth).unwrap(), &config);
    let mut statuses = Vec::new();
    for event in [
        include_str!("../../../../events/api-http-v2.json"),
        include_str!("../../../../events/api-invalid-num-questions.json"),
    ] {
        let response = api.handle(lambda_http::request::from_str(event).unwrap()).await;
        statuses.push(response.status().as_u16());
    }

    let text = logs.text();
    assert_eq!(statuses, [503, 400]);
    assert!(
        text.contains("request not persisted"),
        "the failure was not logged:\n{text}"
    );
    assert!(
        text.contains("secret fetched"),
        "the secret read was not logged:\n{text}"
    );
    assert!(!text.contains(PASSWORD), "the password leaked into the logs");
    assert!(
        !format!("{auth:?}").contains(PASSWORD),
        "Debug of the credentials shows the password"
    );
}

//! The API function's one secret — the SCRAM password of its Kafka user, read from a real local
//! Secrets Manager (moto) — travels to a broker that checks it (tansu with SASL/SCRAM-SHA-512)
//! and never appears in anything logged on any thread, librdkafka's own included, whether the
//! broker takes the password or refuses it.

use aws_config::SdkConfig;
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_adapters::kafka::auth::KafkaAuth;
use qgen_adapters::secrets::SecretsClient;
use qgen_testkit::{MotoServer, TansuBroker, capture_every_thread};
use question_api::Api;

const USER: &str = "qgen-api";
const PASSWORD: &str = "Sup3r-s3cret-scram-pa55word";
const WRONG_PASSWORD: &str = "Wr0ng-scram-pa55word-guess";

/// The API as its cold start builds it, with the SCRAM secret `password` stored in moto.
async fn api_with_password(
    moto: &MotoServer,
    broker: &TansuBroker,
    password: &str,
) -> (Api<KafkaPublisher>, KafkaAuth) {
    let secret = format!(r#"{{"username": "{USER}", "password": "{password}"}}"#);
    let arn = moto
        .create_secret(&format!("AmazonMSK_{}", &password[..5]), &secret)
        .await;
    let config = ApiConfig::from_lookup(|var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some(broker.bootstrap_servers()),
        "KAFKA_SECURITY_PROTOCOL" => Some("SASL_PLAINTEXT".into()),
        "KAFKA_SASL_MECHANISM" => Some("SCRAM-SHA-512".into()),
        "KAFKA_SASL_SECRET_ARN" => Some(arn.clone()),
        "KAFKA_MESSAGE_TIMEOUT_MS" => Some("2000".into()),
        _ => None,
    })
    .unwrap();
    let auth = KafkaAuth::resolve_with(
        &config.kafka,
        &SecretsClient::new(moto.secrets_manager()),
        &SdkConfig::builder().build(),
    )
    .await
    .unwrap();
    let api = Api::new(KafkaPublisher::with_auth(&config.kafka, &auth).unwrap(), &config);
    (api, auth)
}

async fn post(api: &Api<KafkaPublisher>, event: &str) -> u16 {
    api.handle(lambda_http::request::from_str(event).unwrap())
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scram_password_authenticates_and_is_never_logged() {
    let logs = capture_every_thread();
    let moto = MotoServer::start().await;
    let broker = TansuBroker::with_scram_user(USER, PASSWORD).await;
    let valid = include_str!("../../../../events/api-http-v2.json");
    let invalid = include_str!("../../../../events/api-invalid-num-questions.json");

    let (api, auth) = api_with_password(&moto, &broker, PASSWORD).await;
    let accepted = [post(&api, valid).await, post(&api, invalid).await];
    let (refused_api, refused_auth) = api_with_password(&moto, &broker, WRONG_PASSWORD).await;
    let refused = post(&refused_api, valid).await;

    // The broker checked the password: the right one stores the request, a wrong one cannot.
    assert_eq!(accepted, [202, 400]);
    assert_eq!(refused, 503);
    let text = logs.text();
    for expected in [
        "secret fetched",
        "request not persisted",
        "SASL authentication error",
    ] {
        assert!(text.contains(expected), "{expected:?} was not logged:\n{text}");
    }
    assert!(!text.contains(PASSWORD), "the password leaked into the logs");
    assert!(
        !text.contains(WRONG_PASSWORD),
        "the refused password leaked into the logs"
    );
    for auth in [&auth, &refused_auth] {
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains(PASSWORD) && !debug.contains(WRONG_PASSWORD),
            "Debug shows a password"
        );
    }
}

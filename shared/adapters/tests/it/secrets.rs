//! Secrets Manager reads against a real local AWS endpoint (moto), not a mocked SDK.

use qgen_adapters::secrets::{SecretsClient, SecretsError};
use qgen_testkit::MotoServer;
use secrecy::ExposeSecret;

#[tokio::test]
async fn fetches_a_secret_once_and_serves_it_from_the_cache() {
    let moto = MotoServer::start().await;
    let arn = moto.create_secret("qgen/gemini", "AIza-secret-value").await;
    let sdk = moto.secrets_manager();
    let secrets = SecretsClient::new(sdk.clone());

    let first = secrets.get(&arn).await.unwrap();
    // Change it behind the cache's back: the cached value is what a warm function keeps using.
    sdk.put_secret_value()
        .secret_id(&arn)
        .secret_string("rotated")
        .send()
        .await
        .unwrap();
    let second = secrets.get(&arn).await.unwrap();

    assert_eq!(first.expose_secret(), "AIza-secret-value");
    assert_eq!(second.expose_secret(), "AIza-secret-value");
    assert!(!format!("{first:?}").contains("secret-value"));
}

#[tokio::test]
async fn a_missing_secret_is_an_error_naming_the_arn() {
    let moto = MotoServer::start().await;
    let secrets = SecretsClient::new(moto.secrets_manager());

    let error = secrets.get("qgen/absent").await.unwrap_err();

    assert!(matches!(error, SecretsError::Fetch { ref arn, .. } if arn == "qgen/absent"));
    assert!(error.to_string().contains("qgen/absent"));
}

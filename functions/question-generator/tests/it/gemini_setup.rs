//! What the Gemini client is set up with: its models (a retired one falls back to the next) and
//! its API key (from Secrets Manager on a real local AWS endpoint, moto, or the environment).

use qgen_adapters::secrets::SecretsClient;
use qgen_adapters::telemetry;
use qgen_testkit::{AnswersAsAsked, GeminiStandIn, MotoServer, gemini_error};
use question_generator::config::ApiKeySource;
use question_generator::gemini::{BuildError, GeminiClient, api_key};
use question_generator::source::{GenerationError, QuestionSource};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::gemini::{config, request, run, status};
use crate::support::later;

/// 404 for the models named, the questions asked for from any other.
struct Retired(&'static [&'static str]);

impl Respond for Retired {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        match self
            .0
            .iter()
            .find(|model| path.contains(&format!("/models/{model}:")))
        {
            Some(model) => gemini_error::response(404, gemini_error::model_not_found(model)),
            None => AnswersAsAsked.respond(request),
        }
    }
}

fn models_called(calls: &[Request]) -> Vec<String> {
    calls
        .iter()
        .map(|call| {
            let path = call.url.path();
            path["/v1beta/models/".len()..path.len() - ":generateContent".len()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_retired_model_falls_back_to_the_next_for_good_logged_once_and_metered_by_model() {
    let (logs, _logging) = qgen_testkit::capture_logs();
    let metrics = telemetry::capture();
    let stand_in = GeminiStandIn::start(Retired(&["gemini-retired"])).await;
    let config = config(
        &stand_in.base_url(),
        &[("GEMINI_MODEL", "gemini-retired,gemini-3.6-flash")],
    );
    let client = GeminiClient::new(&config, SecretString::from("test-key")).unwrap();

    let first = client.generate(&request(), later()).await;
    let second = client.generate(&request(), later()).await;

    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    assert_eq!(
        models_called(&stand_in.calls().await),
        ["gemini-retired", "gemini-3.6-flash", "gemini-3.6-flash"]
    );
    assert_eq!(client.model(), "gemini-3.6-flash");
    let text = logs.text();
    assert_eq!(
        text.matches("configuration error").count(),
        1,
        "logged once: {text}"
    );
    assert!(text.contains("gemini-retired"), "{text}");
    let records = metrics.records();
    let models: Vec<&Value> = records.iter().map(|r| &r["Model"]).collect();
    assert_eq!(models, [&json!("gemini-3.6-flash"), &json!("gemini-3.6-flash")]);
    assert_eq!(records[0]["GeminiCalls"], 2.0, "the 404 was a call too");
    assert_eq!(records[1]["GeminiCalls"], 1.0);
}

#[tokio::test]
async fn when_every_model_is_retired_the_request_is_rejected_after_one_call_each() {
    let stand_in = GeminiStandIn::start(Retired(&["gemini-a", "gemini-b"])).await;
    let config = config(&stand_in.base_url(), &[("GEMINI_MODEL", "gemini-a,gemini-b")]);
    let client = GeminiClient::new(&config, SecretString::from("test-key")).unwrap();

    let error = client.generate(&request(), later()).await.unwrap_err();

    assert!(
        matches!(&error, GenerationError::Rejected { status: 404, message } if message.contains("models/gemini-b is not found")),
        "{error:?}"
    );
    assert_eq!(models_called(&stand_in.calls().await), ["gemini-a", "gemini-b"]);
}

#[tokio::test]
async fn a_404_for_an_unknown_model_is_not_retried_and_logged_as_a_configuration_error() {
    let (logs, _logging) = qgen_testkit::capture_logs();

    let (outcome, calls) = run([status(404)]).await;

    let error = outcome.unwrap_err();
    assert!(
        matches!(&error, GenerationError::Rejected { status: 404, message } if message == "stand-in says 404"),
        "{error:?}"
    );
    assert_eq!(calls, 1);
    let text = logs.text();
    assert!(
        text.contains("ERROR") && text.contains("configuration error") && text.contains("GEMINI_MODEL"),
        "{text}"
    );
}

#[tokio::test]
async fn reads_the_api_key_from_secrets_manager_and_sends_it_to_gemini() {
    let moto = MotoServer::start().await;
    let source = ApiKeySource::SecretArn(
        moto.create_secret("qgen/gemini-api-key", "AIza-from-secrets-manager")
            .await,
    );
    let sdk = moto.secrets_manager();
    let stand_in = GeminiStandIn::answering().await;

    let key = api_key(&source, async { SecretsClient::new(sdk.clone()) })
        .await
        .unwrap();
    let client = GeminiClient::new(&config(&stand_in.base_url(), &[]), key).unwrap();
    let outcome = client.generate(&request(), later()).await;

    assert!(outcome.is_ok(), "{outcome:?}");
    let calls = stand_in.calls().await;
    assert_eq!(
        calls[0].headers.get("x-goog-api-key").unwrap(),
        "AIza-from-secrets-manager"
    );
}

async fn secrets_manager_must_not_be_built() -> SecretsClient {
    panic!("a key from the environment must not build a Secrets Manager client")
}

#[tokio::test]
async fn a_key_from_the_environment_never_touches_secrets_manager() {
    let source = ApiKeySource::Env(SecretString::from("AIza-env"));

    let key = api_key(&source, secrets_manager_must_not_be_built())
        .await
        .unwrap();

    assert_eq!(key.expose_secret(), "AIza-env");
}

#[tokio::test]
async fn a_missing_key_or_an_absent_secret_is_a_startup_error() {
    let moto = MotoServer::start().await;
    let secrets = || async { SecretsClient::new(moto.secrets_manager()) };

    let none = api_key(&ApiKeySource::None, secrets()).await.unwrap_err();
    let absent = api_key(&ApiKeySource::SecretArn("qgen/absent".into()), secrets())
        .await
        .unwrap_err();

    assert!(matches!(none, BuildError::NoKey));
    assert!(matches!(absent, BuildError::Secret(_)));
}

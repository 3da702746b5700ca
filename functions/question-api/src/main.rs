//! The question-api Lambda: wiring only. The logic is in the library.

use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use question_api::Api;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL.
    lambda_http::tracing::init_default_subscriber();
    // Fail at cold start, not on the first request, when the configuration is wrong.
    let config = ApiConfig::from_env()?;
    // One producer per execution environment, shared by every invocation; `connect` resolves
    // the SCRAM secret or the IAM signer that KAFKA_SASL_MECHANISM asks for.
    let api = Api::new(KafkaPublisher::connect(&config.kafka).await?, &config);
    run(service_fn(|request| async {
        Ok::<_, Infallible>(api.handle(request).await)
    }))
    .await
}

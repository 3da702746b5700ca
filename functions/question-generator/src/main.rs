//! The question-generator Lambda: wiring only. The logic is in the library (reading the
//! invocation deadline included: [`Generator::invoke`]).

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use qgen_adapters::kafka::KafkaPublisher;
use qgen_adapters::secrets::SecretsClient;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::{GeminiClient, api_key};
use question_generator::handler::Generator;
use question_generator::idempotency::store_from_env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    // Fail at cold start, not on the first batch, when the configuration or the key is wrong.
    let config = GeneratorConfig::from_env()?;
    // Secrets Manager is only called when GEMINI_API_KEY_SECRET_ARN is set; once per environment.
    let api_key = api_key(&config.gemini.api_key, SecretsClient::from_env()).await?;
    // Clients built once per execution environment, shared by every invocation.
    let generator = Generator::new(
        GeminiClient::new(&config.gemini, api_key)?,
        KafkaPublisher::connect(&config.kafka).await?,
        &config,
    )
    // DynamoDB only when IDEMPOTENCY_TABLE is set; its failures never stop a generation.
    .with_idempotency(store_from_env(&config).await);
    run(service_fn(|event: LambdaEvent<KafkaEvent>| {
        let generator = &generator;
        // By the invocation's deadline; the partial batch response: the partitions the trigger
        // must redeliver, and from where.
        async move { Ok::<_, Error>(generator.invoke(&event).await.response) }
    }))
    .await
}

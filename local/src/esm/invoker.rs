//! How the emulator runs the function: in-process, or through the Lambda Invoke API of
//! `cargo lambda watch` (the real binary).

use std::future::Future;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_adapters::kafka::EventPublisher;
use qgen_contract::msk::KafkaBatchResponse;
use question_generator::handler::Generator;
use question_generator::idempotency::IdempotencyStore;
use question_generator::source::QuestionSource;
use tokio::time::Instant;

/// The invocation failed as a whole (the function returned an error, crashed or timed out);
/// the trigger retries the whole batch.
#[derive(Debug, thiserror::Error)]
#[error("invocation failed: {0}")]
pub struct InvokeError(pub String);

/// Invokes the function with one batch.
pub trait Invoker: Send + Sync {
    /// Runs the function on `event`, which must finish by `deadline`; its partial batch
    /// response names the partitions to redeliver.
    fn invoke(
        &self,
        event: &KafkaEvent,
        deadline: Instant,
    ) -> impl Future<Output = Result<KafkaBatchResponse, InvokeError>> + Send;
}

impl<S: QuestionSource, P: EventPublisher, I: IdempotencyStore> Invoker for Generator<S, P, I> {
    async fn invoke(&self, event: &KafkaEvent, deadline: Instant) -> Result<KafkaBatchResponse, InvokeError> {
        Ok(self.handle(event, deadline).await.response)
    }
}

impl<T: Invoker> Invoker for &T {
    fn invoke(
        &self,
        event: &KafkaEvent,
        deadline: Instant,
    ) -> impl Future<Output = Result<KafkaBatchResponse, InvokeError>> + Send {
        (**self).invoke(event, deadline)
    }
}

/// Invokes a function through the Lambda Invoke API, as served by `cargo lambda watch`
/// (`http://127.0.0.1:9000` by default): the real binary runs.
pub struct HttpInvoker {
    http: reqwest::Client,
    url: String,
}

impl HttpInvoker {
    /// An invoker of `function` behind the Invoke API at `base_url`.
    pub fn new(base_url: &str, function: &str) -> Self {
        HttpInvoker {
            http: reqwest::Client::new(),
            url: format!(
                "{}/2015-03-31/functions/{function}/invocations",
                base_url.trim_end_matches('/')
            ),
        }
    }
}

impl Invoker for HttpInvoker {
    async fn invoke(&self, event: &KafkaEvent, deadline: Instant) -> Result<KafkaBatchResponse, InvokeError> {
        let response = self
            .http
            .post(&self.url)
            .timeout(deadline.saturating_duration_since(Instant::now()))
            .json(event)
            .send()
            .await
            .map_err(|e| InvokeError(format!("invoke API unreachable: {e}")))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() || function_error {
            return Err(InvokeError(format!("status {status}: {body}")));
        }
        tracing::debug!(%body, "function returned");
        parse_response(&body)
    }
}

/// The function's answer as the trigger reads it: empty or `null` is a complete success
/// ("If you return an empty valid JSON or null, the event source mapping will consider a batch
/// as successfully processed", kafka-retry-configurations.html); anything else that is not a
/// partial batch response fails the batch.
pub fn parse_response(body: &str) -> Result<KafkaBatchResponse, InvokeError> {
    let body = body.trim();
    if body.is_empty() || body == "null" {
        return Ok(KafkaBatchResponse::default());
    }
    serde_json::from_str(body).map_err(|e| InvokeError(format!("unreadable batch response {body}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_null_is_success_and_a_response_names_its_records() {
        assert!(parse_response("").unwrap().is_success());
        assert!(parse_response("null").unwrap().is_success());
        assert!(parse_response("{}").unwrap().is_success());
        let response = parse_response(
            r#"{"batchItemFailures":[{"itemIdentifier":{"topic-partition":"question.request-2","offset":7}}]}"#,
        )
        .unwrap();
        assert_eq!(response.batch_item_failures[0].item_identifier.offset, 7);
        assert!(parse_response(r#"{"batchItemFailures":[{"itemIdentifier":"7"}]}"#).is_err());
    }

    /// The Invoke API answers 200 even when the function failed, saying so in
    /// `X-Amz-Function-Error` with the error as the body (API_Invoke.html): that is a failed
    /// batch, not a response with no failures.
    #[tokio::test]
    async fn a_function_error_or_a_failed_call_fails_the_batch() {
        use wiremock::matchers::method;
        use wiremock::{Mock, MockServer, ResponseTemplate};

        let invoke = |response: ResponseTemplate| async move {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let event = qgen_contract::msk::kafka_event([], "arn", "b");
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            HttpInvoker::new(&server.uri(), "question-generator")
                .invoke(&event, deadline)
                .await
        };
        let crashed = r#"{"errorType":"Runtime.ExitError","errorMessage":"exit status 101"}"#;

        assert!(
            invoke(ResponseTemplate::new(200).set_body_string(""))
                .await
                .unwrap()
                .is_success()
        );
        let error = invoke(
            ResponseTemplate::new(200)
                .insert_header("X-Amz-Function-Error", "Unhandled")
                .set_body_string(crashed),
        )
        .await
        .unwrap_err();
        assert!(error.0.contains("Runtime.ExitError"), "{error:?}");
        assert!(
            invoke(ResponseTemplate::new(500).set_body_string(""))
                .await
                .is_err()
        );
    }
}

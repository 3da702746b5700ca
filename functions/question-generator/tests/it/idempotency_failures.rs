//! Idempotency when things fail (moto): a failed answer is not remembered, and a store that
//! cannot be reached never stops a generation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use qgen_testkit::{AnswersAsAsked, GeminiStandIn, RecordingPublisher};
use serde_json::Value;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::store::{
    Fixture, batch, delivery, generator, request, responses, store, unreachable_dynamodb,
};
use crate::support::{Shared, later};

/// Fails the first call with 503s, then answers as asked.
struct FailsFirst {
    calls: AtomicUsize,
    failures: usize,
}

impl Respond for FailsFirst {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            ResponseTemplate::new(503)
        } else {
            AnswersAsAsked.respond(request)
        }
    }
}

#[tokio::test]
async fn a_failed_answer_is_not_remembered_so_a_later_delivery_can_succeed() {
    // GEMINI_MAX_ATTEMPTS is 2: the first request's both calls fail.
    let fx = Fixture::with(
        GeminiStandIn::start(Shared(Arc::new(FailsFirst {
            calls: AtomicUsize::new(0),
            failures: 2,
        })))
        .await,
    )
    .await;
    let generator = fx.generator();
    let loops = request("req-flaky", "Python Loops");
    generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    generator.handle(&batch(vec![delivery(2, &loops)]), later()).await;

    let statuses: Vec<Value> = responses(&fx.publisher)
        .iter()
        .map(|r| r["eventData"]["status"].clone())
        .collect();
    assert_eq!(statuses, [Value::from("failed"), Value::from("completed")]);
    assert_eq!(fx.stand_in.calls().await.len(), 3);
}

#[tokio::test]
async fn an_unreachable_store_still_generates_and_publishes() {
    let closed = unreachable_dynamodb();
    let stand_in = GeminiStandIn::answering().await;
    let publisher = RecordingPublisher::new();
    let generator = generator(&stand_in, &publisher, store(&closed));
    let loops = request("req-nostore", "Python Loops");
    let (logs, _logging) = qgen_testkit::capture_logs();

    let report = generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    assert_eq!(report.completed, 1);
    assert_eq!(stand_in.calls().await.len(), 1);
    assert_eq!(responses(&publisher)[0]["eventData"]["status"], "completed");
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("idempotency store unavailable; generating without it"),
        "{text}"
    );
    // The warning names the call that failed: the claim's conditional write, not a read the
    // store would make only after the table said the request was taken.
    assert!(
        text.contains("error=dynamodb PutItem failed for request req-nostore"),
        "{text}"
    );
}

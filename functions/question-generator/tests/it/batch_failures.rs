//! The generator handler when Gemini fails: stable codes in `failed` responses, a used-up quota,
//! the deadline, and a bad day of 429s, 503s and malformed replies.

use std::sync::Arc;
use std::time::Duration;

use qgen_contract::events::{Difficulty, GenerationRequest, Question};
use qgen_contract::validation::validate_questions;
use qgen_testkit::{GeminiStandIn, RecordingPublisher, gemini_error};
use question_generator::handler::{BatchReport, Generator};
use serde_json::json;
use tokio::time::Instant;
use wiremock::ResponseTemplate;

use crate::support::batches::{
    BadDay, Reply, TWO_PARTITIONS, batch, config, config_with, gemini, numbered_batch, responses,
};
use crate::support::{Shared, later};

#[tokio::test]
async fn maps_gemini_failures_to_failed_responses_with_stable_codes() {
    // Three requests of the batch reach Gemini: transient failures are tried three times each,
    // unusable answers twice (one repair), rejections once.
    for (reply, code, retryable, calls) in [
        (ResponseTemplate::new(500), "gemini_unavailable", true, 9),
        (ResponseTemplate::new(429), "gemini_unavailable", true, 9),
        (
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": 404, "message": "models/x is not found"}})),
            "gemini_rejected",
            false,
            3,
        ),
        (
            ResponseTemplate::new(200).set_body_string("{\"candidates\": []}"),
            "invalid_model_output",
            true,
            6,
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_secs(1)),
            "gemini_unavailable",
            true,
            9,
        ),
    ] {
        let stand_in = GeminiStandIn::start(reply).await;
        let config = config_with(
            "unused:9092",
            &stand_in.base_url(),
            16,
            &[("GEMINI_TIMEOUT_MS", "200")],
        );
        let publisher = RecordingPublisher::new();
        let generator = Generator::new(gemini(&config), &publisher, &config);

        let report = generator.handle(&batch(TWO_PARTITIONS), later()).await;

        assert_eq!((report.completed, report.failed), (0, 4), "{code}");
        assert_eq!(stand_in.calls().await.len(), calls, "{code}");
        let event = responses(&publisher)["req-101"].json();
        let error = &event["eventData"]["error"];
        assert_eq!(error["code"], code);
        assert_eq!(error["retryable"], retryable, "{code}");
        assert!(!error.to_string().contains("test-key"));
    }
}

#[tokio::test]
async fn a_used_up_daily_quota_answers_the_whole_batch_after_one_call() {
    let stand_in =
        GeminiStandIn::start(gemini_error::response(429, gemini_error::per_day_quota("30s"))).await;
    // One at a time, so every request after the first meets the open breaker.
    let config = config("unused:9092", &stand_in.base_url(), 1);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);

    let report = generator.handle(&batch(TWO_PARTITIONS), later()).await;

    assert_eq!((report.completed, report.failed), (0, 4));
    assert_eq!(
        stand_in.calls().await.len(),
        1,
        "three requests reach Gemini; one call"
    );
    let responses = responses(&publisher);
    assert_eq!(
        responses["req-104"].json()["eventData"]["error"]["code"],
        "invalid_request"
    );
    for request_id in ["req-101", "req-102", "req-103"] {
        let error = &responses[request_id].json()["eventData"]["error"];
        assert_eq!(
            (&error["code"], &error["retryable"]),
            (&json!("gemini_quota_exhausted"), &json!(true)),
            "{request_id}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("GenerateRequestsPerDayPerProjectPerModel"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn gives_up_at_the_deadline_and_still_publishes_a_failed_response() {
    let stand_in = GeminiStandIn::start(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);
    // The generator keeps message timeout + 0.5 s for publishing: 7 s leaves it 1.5 s.
    let started = Instant::now();

    let report = generator
        .handle(&batch(TWO_PARTITIONS), Instant::now() + Duration::from_secs(7))
        .await;

    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.failed, 4);
    let event = responses(&publisher)["req-101"].json();
    assert!(
        ["deadline_exceeded", "gemini_unavailable"]
            .contains(&event["eventData"]["error"]["code"].as_str().unwrap())
    );
}

#[tokio::test]
async fn a_batch_on_a_bad_gemini_day_ends_with_one_valid_response_per_request_before_the_deadline() {
    let bad_day = Arc::new(BadDay::default());
    let stand_in = GeminiStandIn::start(Shared(bad_day.clone())).await;
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(gemini(&config), &publisher, &config);
    // 5.5 s are kept for publishing (message timeout + 0.5 s): generation gets 3 s.
    let deadline = Instant::now() + Duration::from_millis(8_500);

    let report = generator.handle(&numbered_batch(20), deadline).await;

    assert!(Instant::now() < deadline, "the batch overran its deadline");
    assert_eq!(
        report,
        BatchReport {
            records: 20,
            completed: 18,
            failed: 2,
            dead_lettered: 0,
            ..BatchReport::default()
        }
    );
    let replies = bad_day.replies.lock().unwrap().clone();
    let count = |r: Reply| replies.iter().filter(|&&x| x == r).count();
    assert_eq!(replies.len(), 30);
    assert_eq!(count(Reply::TooManyRequests) + count(Reply::Unavailable), 9);
    assert_eq!(count(Reply::Malformed), 3);
    let published = publisher.on_topic("question.response");
    assert_eq!(published.len(), 20, "exactly one response per request");
    let responses = responses(&publisher);
    assert_eq!(responses.len(), 20);
    for k in 0..20 {
        let data = responses[&format!("req-{k}")].json()["eventData"].clone();
        match k {
            11 => assert_eq!(data["error"]["code"], "gemini_unavailable", "{data}"),
            18 => assert_eq!(data["error"]["code"], "invalid_model_output", "{data}"),
            _ => {
                assert_eq!(data["status"], "completed", "req-{k}: {data}");
                let questions: Vec<Question> = serde_json::from_value(data["questions"].clone()).unwrap();
                let request = GenerationRequest {
                    request_id: format!("req-{k}"),
                    topic: format!("Topic {k}"),
                    num_questions: 1,
                    difficulty: Difficulty::Easy,
                    context: None,
                };
                assert_eq!(validate_questions(&questions, &request), Ok(()), "req-{k}");
                continue;
            }
        }
        assert_eq!(data["status"], "failed");
        assert_eq!(data["questions"], json!([]));
        assert_eq!(data["error"]["retryable"], true);
    }
}

//! Idempotency against a real DynamoDB API (moto, driven through the SDK over HTTP): duplicates
//! in a batch and across batches, and the same `request_id` with other content.

use qgen_testkit::{GeminiStandIn, RecordingPublisher};
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use question_generator::idempotency::{DATA, STATUS, STATUS_COMPLETED};
use secrecy::SecretString;
use serde_json::Value;

use crate::support::later;
use crate::support::store::{Fixture, batch, config, delivery, record, request, responses, text};

#[tokio::test]
async fn the_same_request_sent_five_times_calls_gemini_once_and_gets_five_identical_responses() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-5x", "Python Loops");
    let first = batch(vec![delivery(10, &loops), delivery(11, &loops)]);
    let second = batch(vec![delivery(12, &loops)]);

    // Two deliveries in a batch, the same batch retried by the trigger, one more in a later batch.
    generator.handle(&first, later()).await;
    generator.handle(&first, later()).await;
    generator.handle(&second, later()).await;

    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let responses = responses(&fx.publisher);
    assert_eq!(responses.len(), 5);
    let answer = &responses[0];
    assert_eq!(answer["eventData"]["status"], "completed");
    assert_eq!(answer["eventData"]["questions"].as_array().unwrap().len(), 2);
    for response in &responses {
        assert_eq!(response["eventId"], answer["eventId"]);
        assert_eq!(response["eventData"], answer["eventData"]);
    }
    let stored = record(&fx.client, "req-5x").await;
    assert_eq!(text(&stored, STATUS), STATUS_COMPLETED);
    let stored_event: Value = serde_json::from_str(text(&stored, DATA)).unwrap();
    assert_eq!(stored_event["eventId"], answer["eventId"]);
}

#[tokio::test]
async fn duplicates_in_one_batch_are_generated_once_and_each_gets_the_same_response() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-dup", "Python Loops");
    let other = request("req-other", "SQL Joins");
    let event = batch(vec![
        delivery(1, &loops),
        delivery(2, &other),
        delivery(3, &loops),
        delivery(4, &loops),
    ]);

    let report = generator.handle(&event, later()).await;

    assert_eq!(fx.stand_in.calls().await.len(), 2);
    assert_eq!(report.completed, 4);
    let responses = responses(&fx.publisher);
    let dups: Vec<&Value> = responses
        .iter()
        .filter(|r| r["eventData"]["request_id"] == "req-dup")
        .collect();
    assert_eq!(dups.len(), 3);
    assert!(dups.iter().all(|r| *r == dups[0]));
}

#[tokio::test]
async fn duplicates_in_one_batch_are_generated_once_without_a_store_too() {
    let stand_in = GeminiStandIn::answering().await;
    let config = config(&stand_in.base_url());
    let publisher = RecordingPublisher::new();
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    let generator = Generator::new(gemini, &publisher, &config);
    let loops = request("req-dup", "Python Loops");

    let report = generator
        .handle(&batch(vec![delivery(1, &loops), delivery(2, &loops)]), later())
        .await;

    assert_eq!(report.completed, 2);
    assert_eq!(stand_in.calls().await.len(), 1);
    let responses = responses(&publisher);
    assert_eq!(responses[0], responses[1]);
}

#[tokio::test]
async fn the_same_request_id_with_other_content_gets_idempotency_conflict() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    generator
        .handle(
            &batch(vec![delivery(1, &request("req-7", "Python Loops"))]),
            later(),
        )
        .await;

    let report = generator
        .handle(&batch(vec![delivery(2, &request("req-7", "SQL Joins"))]), later())
        .await;

    assert_eq!((report.completed, report.failed), (0, 1));
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let conflict = &responses(&fx.publisher)[1];
    assert_eq!(conflict["eventData"]["status"], "failed");
    assert_eq!(conflict["eventData"]["error"]["code"], "idempotency_conflict");
    assert_eq!(conflict["eventData"]["error"]["retryable"], false);
    assert_ne!(conflict["eventId"], responses(&fx.publisher)[0]["eventId"]);
}

#[tokio::test]
async fn other_content_under_the_same_request_id_in_one_batch_gets_idempotency_conflict() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let event = batch(vec![
        delivery(1, &request("req-7", "Python Loops")),
        delivery(2, &request("req-7", "SQL Joins")),
    ]);

    let report = generator.handle(&event, later()).await;

    assert_eq!((report.completed, report.failed), (1, 1));
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let codes: Vec<Value> = responses(&fx.publisher)
        .iter()
        .map(|r| r["eventData"]["error"]["code"].clone())
        .collect();
    assert_eq!(codes, [Value::Null, Value::from("idempotency_conflict")]);
}

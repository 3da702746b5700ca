//! Idempotency claims against a real DynamoDB API (moto): a retried batch, a claim left by a
//! crash, a live claim, two invocations racing for one request, and a held request's claim.

use std::pin::pin;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::future::{Either, select};
use qgen_testkit::{GeminiStandIn, Outage, RecordingPublisher};
use question_generator::gemini::GeminiClient;
use question_generator::handler::{BatchReport, Generator};
use question_generator::idempotency::{
    IN_PROGRESS_EXPIRATION, STATUS, STATUS_COMPLETED, STATUS_IN_PROGRESS, epoch_millis,
};
use secrecy::SecretString;
use serde_json::json;
use tokio::time::Instant;

use crate::support::batches::TWO_PARTITIONS;
use crate::support::later;
use crate::support::store::{
    Fixture, batch, claimed_elsewhere, config_with, configured, delivery, delivery_on, gated_stand_in,
    record, request, responses, store, text, until_the_claim_expires,
};

#[tokio::test]
async fn a_retried_batch_is_answered_from_the_store_without_calling_gemini_again() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let event: KafkaEvent = serde_json::from_str(TWO_PARTITIONS).unwrap();

    let first = generator.handle(&event, later()).await;
    let retried = generator.handle(&event, later()).await;

    assert_eq!(first, retried);
    assert_eq!(
        first,
        BatchReport {
            records: 4,
            completed: 3,
            failed: 1,
            dead_lettered: 0,
            ..BatchReport::default()
        }
    );
    assert_eq!(fx.stand_in.calls().await.len(), 3);
    let responses = responses(&fx.publisher);
    let (once, again) = responses.split_at(4);
    for response in once.iter().filter(|r| r["eventData"]["status"] == "completed") {
        let repeat = again
            .iter()
            .find(|r| r["eventData"]["request_id"] == response["eventData"]["request_id"])
            .unwrap();
        assert_eq!(repeat, response);
    }
}

#[tokio::test]
async fn an_expired_claim_left_by_a_crashed_attempt_is_taken_over() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-crashed", "Python Loops");
    claimed_elsewhere(&fx.client, &loops, SystemTime::now() - Duration::from_secs(1)).await;

    let report = generator.handle(&batch(vec![delivery(7, &loops)]), later()).await;

    assert_eq!(report.completed, 1);
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!(responses(&fx.publisher)[0]["eventData"]["status"], "completed");
    assert_eq!(
        text(&record(&fx.client, "req-crashed").await, STATUS),
        STATUS_COMPLETED
    );
}

#[tokio::test]
async fn a_live_claim_is_left_to_its_invocation_and_only_its_partition_is_redelivered() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-busy", "Python Loops");
    let other = request("req-free", "SQL Joins");
    let after = request("req-after", "Rust Traits");
    let until = SystemTime::now() + Duration::from_secs(120);
    claimed_elsewhere(&fx.client, &loops, until).await;
    let (logs, _logging) = qgen_testkit::capture_logs();

    let report = generator
        .handle(
            &batch(vec![
                delivery_on(0, 8, &other),
                delivery_on(1, 7, &loops),
                delivery_on(1, 9, &after),
            ]),
            later(),
        )
        .await;

    assert_eq!(
        (report.in_progress, report.unpublished, report.completed),
        (1, 0, 2)
    );
    // Partition 0 is done; partition 1 is redelivered from the held request on.
    assert_eq!(
        serde_json::to_value(report.response()).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-1", "offset": 7}}
        ]})
    );
    assert_eq!(
        fx.stand_in.calls().await.len(),
        2,
        "only the free requests are generated"
    );
    // The log says how long the other invocation still holds it: read from the stored claim
    // (120 s from the start of the test, so a little under).
    let logged = logs.text();
    let seconds_left: u64 = logged
        .split("seconds_left=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds_left logged:\n{logged}"));
    assert!((60..=120).contains(&seconds_left), "seconds_left={seconds_left}");
    let mut answered: Vec<String> = responses(&fx.publisher)
        .iter()
        .map(|r| r["eventData"]["request_id"].as_str().unwrap().to_owned())
        .collect();
    answered.sort();
    assert_eq!(answered, ["req-after", "req-free"]);
    let held = record(&fx.client, "req-busy").await;
    assert_eq!(text(&held, STATUS), STATUS_IN_PROGRESS);
    assert_eq!(
        held[IN_PROGRESS_EXPIRATION].as_n().unwrap(),
        &epoch_millis(until).to_string()
    );
}

#[tokio::test]
async fn a_retry_takes_over_once_a_live_claim_expires_so_the_request_is_never_lost() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-busy", "Python Loops");
    claimed_elsewhere(
        &fx.client,
        &loops,
        SystemTime::now() + Duration::from_millis(1_500),
    )
    .await;
    let event = batch(vec![delivery(7, &loops)]);
    let held = generator.handle(&event, later()).await;

    // Not a fixed sleep: however slow the machine, the retry comes once the claim the table
    // holds has expired on the clock the store compares it with, and not long after.
    until_the_claim_expires(&fx.client, "req-busy").await;
    let retried = generator.handle(&event, later()).await;

    assert_eq!(held.in_progress, 1, "the claim was taken over while it was live");
    assert!(!held.response.is_success());
    assert_eq!(retried.completed, 1);
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!(responses(&fx.publisher).len(), 1);
}

#[tokio::test]
async fn two_invocations_racing_for_one_request_call_gemini_once_and_the_loser_redelivers_then_replays_the_answer()
 {
    let (stand_in, mut gate) = gated_stand_in().await;
    let fx = Fixture::with(stand_in).await;
    // Two execution environments: each with its own DynamoDB client, Gemini client, publisher.
    let publishers = [RecordingPublisher::new(), RecordingPublisher::new()];
    let generators = [
        configured(&fx.stand_in, &publishers[0], &fx.moto.dynamodb(), "3600"),
        configured(&fx.stand_in, &publishers[1], &fx.moto.dynamodb(), "3600"),
    ];
    let loops = request("req-race", "Python Loops");
    // The content service sent it twice, and each delivery went to another invocation.
    let batches = [batch(vec![delivery(3, &loops)]), batch(vec![delivery(4, &loops)])];

    // Both claim at once; Gemini holds the winner's call until the other invocation is done,
    // so that one has certainly tried to claim before any answer exists.
    let (loser, held, answered) = {
        let first = pin!(generators[0].handle(&batches[0], later()));
        let second = pin!(generators[1].handle(&batches[1], later()));
        match select(first, second).await {
            Either::Left((held, other)) => {
                gate.open();
                (0, held, other.await)
            }
            Either::Right((held, other)) => {
                gate.open();
                (1, held, other.await)
            }
        }
    };
    let winner = 1 - loser;
    gate.call_arrived().await;

    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!((answered.completed, answered.in_progress), (1, 0));
    assert!(answered.response.is_success());
    let answer = responses(&publishers[winner]);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0]["eventData"]["status"], "completed");
    assert!(responses(&publishers[loser]).is_empty());
    assert_eq!((held.completed, held.in_progress), (0, 1));
    assert_eq!(
        serde_json::to_value(held.response()).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-0", "offset": 3 + loser}}
        ]})
    );

    // The trigger redelivers the loser's partition from that record.
    let redelivered = generators[loser].handle(&batches[loser], later()).await;

    assert_eq!(redelivered.completed, 1);
    assert!(redelivered.response.is_success());
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    assert_eq!(responses(&publishers[loser]), answer);
}

#[tokio::test]
async fn a_held_request_gives_up_its_claim_so_its_redelivery_is_answered_at_once() {
    // Gemini down, behind a breaker that opens at its first failure; the shipped maximum wait.
    let outage = Outage::new();
    outage.set_down(true);
    let fx = Fixture::with(GeminiStandIn::start(outage.clone()).await).await;
    let config = config_with(
        &fx.stand_in.base_url(),
        &[
            ("GEMINI_MAX_WAIT_SECONDS", "1800"),
            ("GEMINI_BREAKER_THRESHOLD", "1"),
            ("GEMINI_BREAKER_COOLDOWN_MS", "500"),
        ],
    );
    let gemini = GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap();
    let generator = Generator::new(gemini, &fx.publisher, &config).with_idempotency(Some(store(&fx.client)));
    let event = batch(vec![delivery(1, &request("req-held", "Python Loops"))]);

    // 7 s left, 5.5 s of it kept to publish: held after 1.5 s, its claim good for 5.5 s more.
    let held = generator
        .handle(&event, Instant::now() + Duration::from_secs(7))
        .await;
    outage.set_down(false);
    let redelivered = generator.handle(&event, later()).await;

    assert_eq!((held.held, held.completed), (1, 0), "{held:?}");
    // Not left to a claim nobody holds any more: answered on the redelivery.
    assert_eq!(
        (redelivered.completed, redelivered.in_progress, redelivered.held),
        (1, 0, 0),
        "{redelivered:?}"
    );
    assert_eq!(responses(&fx.publisher).len(), 1);
}

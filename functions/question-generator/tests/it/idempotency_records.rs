//! The idempotency records against a real DynamoDB API (moto): when the store is on, the
//! records' TTL and claim expiry, and answers past their TTL but not yet deleted.

use std::time::{Duration, SystemTime};

use qgen_contract::events::{Difficulty, ResponseEvent};
use qgen_testkit::{GeminiStandIn, sample_questions};
use question_generator::idempotency::{
    DATA, EXPIRATION, IN_PROGRESS_EXPIRATION, PAYLOAD_HASH, STATUS, STATUS_COMPLETED, STATUS_IN_PROGRESS,
    epoch_secs, payload_hash, store_from_env,
};
use serde_json::Value;

use crate::support::later;
use crate::support::store::{
    Fixture, answered_before, batch, config, config_with, configured, delivery, gated_stand_in, number,
    record, request, responses, template_ttl_attribute, text,
};

#[tokio::test]
async fn the_store_is_on_exactly_when_a_table_is_configured() {
    let stand_in = GeminiStandIn::answering().await;
    let without = config(&stand_in.base_url());
    let with = config_with(&stand_in.base_url(), &[("IDEMPOTENCY_TABLE", "qgen-idempotency")]);

    assert!(store_from_env(&without).await.is_none());
    assert!(store_from_env(&with).await.is_some());
}

#[tokio::test]
async fn an_answered_request_expires_the_configured_retention_from_now_in_epoch_seconds() {
    let fx = Fixture::start().await;
    let generator = configured(&fx.stand_in, &fx.publisher, &fx.client, "900");
    let loops = request("req-ttl", "Python Loops");

    let before = epoch_secs(SystemTime::now());
    generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;
    let after = epoch_secs(SystemTime::now());

    // The attribute DynamoDB's TTL reads, as a Number of seconds (ms would be ~1000 times later).
    assert_eq!(EXPIRATION, template_ttl_attribute());
    let stored = record(&fx.client, "req-ttl").await;
    assert_eq!(text(&stored, STATUS), STATUS_COMPLETED);
    let expiration = number(&stored, template_ttl_attribute());
    assert!(
        (before + 900..=after + 900).contains(&expiration),
        "{expiration} is not 900 s after {before}..={after}"
    );
    assert!(!stored.contains_key(IN_PROGRESS_EXPIRATION));
}

#[tokio::test]
async fn a_claim_is_held_until_the_lambda_deadline_and_expires_the_retention_from_now() {
    let (stand_in, mut gate) = gated_stand_in().await;
    let fx = Fixture::with(stand_in).await;
    let generator = configured(&fx.stand_in, &fx.publisher, &fx.client, "900");
    let loops = request("req-claim", "Python Loops");
    let deadline_ms = super::deadline::epoch_ms_from_now(30_000);
    let invocation = super::deadline::invocation(batch(vec![delivery(1, &loops)]), deadline_ms);

    let before = epoch_secs(SystemTime::now());
    let (report, claim) = tokio::join!(generator.invoke(&invocation), async {
        // Read while Gemini holds the call: the record is the claim.
        gate.call_arrived().await;
        let claim = record(&fx.client, "req-claim").await;
        gate.open();
        claim
    });
    let after = epoch_secs(SystemTime::now());

    assert_eq!(report.completed, 1);
    assert_eq!(text(&claim, STATUS), STATUS_IN_PROGRESS);
    // Another invocation may take over once this one's deadline (not its generation's) passes.
    let held_until = number(&claim, IN_PROGRESS_EXPIRATION);
    assert!(
        held_until.abs_diff(deadline_ms) <= 1_000,
        "held until {held_until}, the deadline is {deadline_ms}"
    );
    // The TTL is the retention, as for an answer; a crashed claim is deleted in time, and the
    // TTL never deletes a claim that is still held.
    let expiration = number(&claim, template_ttl_attribute());
    assert!(
        (before + 900..=after + 900).contains(&expiration),
        "{expiration} is not 900 s after {before}..={after}"
    );
    assert!(expiration * 1_000 > held_until);
}

// DynamoDB deletes an item whose TTL has passed only eventually, typically within a few days,
// and until then reads still return it
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html). moto
// does not delete it at all, as DynamoDB before its sweep: the store itself must treat it as
// absent.

#[tokio::test]
async fn an_answer_past_its_ttl_but_not_yet_deleted_counts_as_absent_so_the_request_is_generated_again() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-stale", "Python Loops");
    let stale = ResponseEvent::completed(
        "stale-request-event",
        "req-stale",
        sample_questions("Python Loops", 2, Difficulty::Medium),
    );
    let expired = SystemTime::now() - Duration::from_secs(3_600);
    answered_before(&fx.client, &loops, &payload_hash(&loops), &stale, expired).await;

    let report = generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    assert_eq!(report.completed, 1);
    assert_eq!(
        fx.stand_in.calls().await.len(),
        1,
        "the expired answer was replayed"
    );
    let answer = &responses(&fx.publisher)[0];
    assert_eq!(answer["eventData"]["status"], "completed");
    assert_ne!(answer["eventId"], stale.event_id.as_str());
    // The new answer replaced the expired one, with a TTL in the future.
    let stored = record(&fx.client, "req-stale").await;
    let stored_event: Value = serde_json::from_str(text(&stored, DATA)).unwrap();
    assert_eq!(stored_event["eventId"], answer["eventId"]);
    assert!(number(&stored, EXPIRATION) > epoch_secs(SystemTime::now()));
}

#[tokio::test]
async fn an_expired_answer_to_other_content_under_the_same_request_id_is_no_conflict() {
    let fx = Fixture::start().await;
    let generator = fx.generator();
    let loops = request("req-reused", "Python Loops");
    let joins = request("req-reused", "SQL Joins");
    let old = ResponseEvent::completed(
        "old-request-event",
        "req-reused",
        sample_questions("SQL Joins", 2, Difficulty::Medium),
    );
    let expired = SystemTime::now() - Duration::from_secs(3_600);
    answered_before(&fx.client, &joins, &payload_hash(&joins), &old, expired).await;

    let report = generator.handle(&batch(vec![delivery(1, &loops)]), later()).await;

    assert_eq!((report.completed, report.failed), (1, 0));
    assert_eq!(fx.stand_in.calls().await.len(), 1);
    let stored = record(&fx.client, "req-reused").await;
    assert_eq!(text(&stored, PAYLOAD_HASH), payload_hash(&loops));
}

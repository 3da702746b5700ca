//! The Gemini client against a local HTTP stand-in: which statuses and failures are retried,
//! after how long, and within the deadline; which are final.

use std::time::Duration;

use qgen_testkit::{GeminiStandIn, gemini_error};
use question_generator::gemini::GeminiClient;
use question_generator::source::QuestionSource;
use secrecy::SecretString;
use tokio::time::Instant;
use wiremock::ResponseTemplate;

use crate::support::gemini::{Scripted, Step, client, code, config, request, run, status};
use crate::support::later;

#[tokio::test]
async fn a_429_is_retried_after_the_wait_gemini_or_a_proxy_asks_for() {
    // Gemini says it in the body (RetryInfo); a proxy in between says it as Retry-After.
    for too_many in [
        gemini_error::response(429, gemini_error::per_minute_quota("1s")),
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
    ] {
        let started = Instant::now();

        let (outcome, calls) = run([Step::Reply(too_many), Step::Answer]).await;

        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(calls, 2);
        // The backoff alone would have waited at most 5 ms.
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn never_waits_for_a_retry_after_that_ends_past_the_deadline() {
    let stand_in = GeminiStandIn::start(Scripted::new([Step::Reply(
        ResponseTemplate::new(429).insert_header("retry-after", "120"),
    )]))
    .await;
    let started = Instant::now();

    let outcome = client(&stand_in)
        .generate(&request(), Instant::now() + Duration::from_secs(30))
        .await;

    assert_eq!(code(&outcome), "gemini_unavailable");
    assert!(outcome.unwrap_err().to_string().contains("no time left"));
    assert_eq!(stand_in.calls().await.len(), 1);
    // Waiting (for the 120 s, or until the deadline) would take 30 s at least; one local call
    // takes milliseconds, so 10 s holds on a loaded machine and still tells the two apart.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_500_is_retried_and_the_second_call_succeeds() {
    let (outcome, calls) = run([status(500), Step::Answer]).await;

    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(calls, 2);
}

#[tokio::test]
async fn a_503_that_never_ends_fails_as_unavailable_after_the_maximum_attempts() {
    let (outcome, calls) = run([status(503)]).await;

    assert_eq!(code(&outcome), "gemini_unavailable");
    let error = outcome.unwrap_err();
    assert!(error.retryable());
    assert!(error.to_string().contains("after 3 attempts"), "{error}");
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_is_retried_then_fails_as_unavailable() {
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(30));
    let stand_in = GeminiStandIn::start(Scripted::new([Step::Reply(slow)])).await;
    let config = config(&stand_in.base_url(), &[("GEMINI_TIMEOUT_MS", "200")]);
    let client = GeminiClient::new(&config, SecretString::from("test-key")).unwrap();
    let started = Instant::now();

    let outcome = client.generate(&request(), later()).await;

    assert_eq!(code(&outcome), "gemini_unavailable");
    assert!(outcome.unwrap_err().to_string().contains("timed out"));
    assert_eq!(stand_in.calls().await.len(), 3);
    // Three calls cut at 200 ms and two short backoffs take under a second; a call left to
    // its 30 s reply would take 30 s. 10 s holds on a loaded machine and tells the two apart.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_408_and_a_504_are_retried_like_timeouts() {
    for code in [408, 504] {
        let (outcome, calls) = run([status(code), Step::Answer]).await;

        assert!(outcome.is_ok(), "{code}: {outcome:?}");
        assert_eq!(calls, 2, "{code}");
    }
}

#[tokio::test]
async fn a_403_is_final_and_rejected() {
    let (outcome, calls) = run([status(403)]).await;

    let error = outcome.unwrap_err();
    assert_eq!(
        (error.code().as_str(), error.retryable()),
        ("gemini_rejected", false)
    );
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn a_per_minute_429_whose_retry_delay_passes_the_deadline_is_given_up_at_once() {
    let too_many = gemini_error::response(429, gemini_error::per_minute_quota("120s"));
    let stand_in = GeminiStandIn::start(Scripted::new([Step::Reply(too_many)])).await;

    let outcome = client(&stand_in)
        .generate(&request(), Instant::now() + Duration::from_secs(30))
        .await;

    let error = outcome.unwrap_err();
    assert_eq!(
        (error.code().as_str(), error.retryable()),
        ("gemini_unavailable", true)
    );
    assert!(error.to_string().contains("no time left"), "{error}");
    assert!(
        error.to_string().contains("You exceeded your current quota"),
        "{error}"
    );
    assert_eq!(stand_in.calls().await.len(), 1);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let (outcome, calls) = run([status(400)]).await;

    assert_eq!(code(&outcome), "gemini_rejected");
    assert!(!outcome.unwrap_err().retryable());
    assert_eq!(calls, 1);
}

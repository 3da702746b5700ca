//! The Gemini client's circuit breaker against a local HTTP stand-in: a used-up per-day quota,
//! repeated failures, and which statuses count against it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qgen_testkit::{AnswersAsAsked, GeminiStandIn, gemini_error};
use question_generator::breaker::{ManualClock, State};
use question_generator::gemini::GeminiClient;
use question_generator::source::QuestionSource;
use secrecy::SecretString;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::gemini::{Scripted, Step, code, config, request, status};
use crate::support::later;

#[tokio::test]
async fn a_per_day_quota_costs_one_call_per_breaker_window_and_says_when_it_resets() {
    let stand_in = GeminiStandIn::start(Scripted::new([Step::Reply(gemini_error::response(
        429,
        gemini_error::per_day_quota("20s"),
    ))]))
    .await;
    let config = config(&stand_in.base_url(), &[("GEMINI_BREAKER_COOLDOWN_MS", "60000")]);
    let clock = Arc::new(ManualClock::new());
    let client = GeminiClient::with_clock(&config, SecretString::from("test-key"), clock.clone()).unwrap();

    let mut errors = Vec::new();
    for _ in 0..5 {
        errors.push(client.generate(&request(), later()).await.unwrap_err());
    }

    assert_eq!(stand_in.calls().await.len(), 1, "one call for five requests");
    for error in &errors {
        let response = error.to_response_error();
        assert_eq!(
            (response.code.as_str(), response.retryable),
            ("gemini_quota_exhausted", true)
        );
        assert!(
            response
                .message
                .contains("GenerateRequestsPerDayPerProjectPerModel")
                && response.message.contains("midnight Pacific time"),
            "{}",
            response.message
        );
    }
    assert!(
        errors[0].message().ends_with("calls Gemini again in 60s"),
        "{}",
        errors[0]
    );
    assert_eq!(client.breaker_state(), State::Open);

    // The next window: one probe, which finds the quota still used up.
    clock.advance(Duration::from_secs(60));
    let probe = client.generate(&request(), later()).await.unwrap_err();
    let after = client.generate(&request(), later()).await.unwrap_err();
    assert_eq!(probe.code().as_str(), "gemini_quota_exhausted");
    assert_eq!(after.code().as_str(), "gemini_quota_exhausted");
    assert_eq!(stand_in.calls().await.len(), 2);
}

/// 503 until switched to healthy, then the questions asked for.
struct Recovering {
    healthy: Arc<AtomicBool>,
}

impl Respond for Recovering {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.healthy.load(Ordering::SeqCst) {
            AnswersAsAsked.respond(request)
        } else {
            ResponseTemplate::new(503)
        }
    }
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_fails_fast_and_closes_after_a_good_probe() {
    let healthy = Arc::new(AtomicBool::new(false));
    let stand_in = GeminiStandIn::start(Recovering {
        healthy: healthy.clone(),
    })
    .await;
    let config = config(
        &stand_in.base_url(),
        &[
            ("GEMINI_MAX_ATTEMPTS", "1"),
            ("GEMINI_BREAKER_THRESHOLD", "2"),
            ("GEMINI_BREAKER_COOLDOWN_MS", "10000"),
        ],
    );
    let clock = Arc::new(ManualClock::new());
    let client = GeminiClient::with_clock(&config, SecretString::from("test-key"), clock.clone()).unwrap();

    // Two failures open it.
    for _ in 0..2 {
        let outcome = client.generate(&request(), later()).await;
        assert_eq!(code(&outcome), "gemini_unavailable");
    }
    assert_eq!(client.breaker_state(), State::Open);

    // While open, requests fail fast without a call.
    let refused = client.generate(&request(), later()).await.unwrap_err();
    assert_eq!(refused.code().as_str(), "gemini_unavailable");
    assert!(refused.retryable());
    assert!(refused.to_string().contains("circuit breaker open"), "{refused}");
    assert_eq!(stand_in.calls().await.len(), 2);

    // After the cool-down one probe goes out; it succeeds and closes the circuit.
    healthy.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(10));
    let probe = client.generate(&request(), later()).await;
    assert!(probe.is_ok(), "{probe:?}");
    assert_eq!(client.breaker_state(), State::Closed);
    assert!(client.generate(&request(), later()).await.is_ok());
    assert_eq!(stand_in.calls().await.len(), 4);
}

#[tokio::test]
async fn any_5xx_counts_against_the_breaker_and_a_4xx_does_not() {
    // A 502 is not among the retried statuses, but it still says Gemini is unwell; a 400 says
    // Gemini is up and disliked the call. Threshold 2: two 502s open the circuit, two 400s
    // between them reset the count.
    for (statuses, open) in [([502, 502], true), ([400, 400], false), ([502, 400], false)] {
        let stand_in = GeminiStandIn::start(Scripted::new(statuses.map(status))).await;
        let config = config(
            &stand_in.base_url(),
            &[
                ("GEMINI_MAX_ATTEMPTS", "1"),
                ("GEMINI_BREAKER_THRESHOLD", "2"),
                ("GEMINI_BREAKER_COOLDOWN_MS", "60000"),
            ],
        );
        let client = GeminiClient::new(&config, SecretString::from("test-key")).unwrap();

        for _ in statuses {
            assert!(client.generate(&request(), later()).await.is_err());
        }

        let state = client.breaker_state();
        assert_eq!(state == State::Open, open, "{statuses:?}: {state:?}");
    }
}

//! The Gemini stand-in: its route, its answer, and each scripted fault.

use std::time::{Duration, Instant};

use qgen_standins::{AnswersAsAsked, GeminiStandIn, Latency, Outage, RateQuota, WindowQuota};
use serde_json::Value;

/// One `generateContent` call to `stand_in` for model `m`: the status and the JSON body.
async fn call(stand_in: &GeminiStandIn) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1beta/models/m:generateContent", stand_in.base_url()))
        .header("x-goog-api-key", "key")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The `RetryInfo.retryDelay` of a 429 body, in seconds.
fn retry_delay(body: &Value) -> f64 {
    let details = body["error"]["details"].as_array().unwrap();
    let info = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
        .unwrap();
    info["retryDelay"]
        .as_str()
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap()
}

fn assert_per_minute_429(status: u16, body: &Value) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let quota_id = body["error"]["details"][0]["violations"][0]["quotaId"]
        .as_str()
        .unwrap();
    assert_eq!(quota_id, "GenerateRequestsPerMinutePerProjectPerModel");
}

#[tokio::test]
async fn a_keyed_call_gets_the_questions_and_the_model_it_named_and_is_recorded() {
    let stand_in = GeminiStandIn::answering().await;

    let (status, body) = call(&stand_in).await;

    assert_eq!(status, 200);
    assert_eq!(body["modelVersion"], "m");
    let text = body["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    let questions: Value = serde_json::from_str(text).unwrap();
    // A body without prompt data asks for 3.
    assert_eq!(questions["questions"].as_array().unwrap().len(), 3);
    assert_eq!(stand_in.calls().await.len(), 1);
}

#[tokio::test]
async fn a_call_without_a_key_or_to_another_method_is_not_found() {
    let stand_in = GeminiStandIn::answering().await;
    let http = reqwest::Client::new();

    let unkeyed = http
        .post(format!("{}/v1beta/models/m:generateContent", stand_in.base_url()))
        .send()
        .await
        .unwrap();
    let other = http
        .post(format!("{}/v1beta/models/m:countTokens", stand_in.base_url()))
        .header("x-goog-api-key", "key")
        .send()
        .await
        .unwrap();

    assert_eq!((unkeyed.status().as_u16(), other.status().as_u16()), (404, 404));
}

#[tokio::test]
async fn a_stand_in_that_forgets_its_calls_still_answers() {
    let stand_in = GeminiStandIn::builder()
        .forget_calls()
        .start(AnswersAsAsked)
        .await;

    let (status, _) = call(&stand_in).await;

    assert_eq!(status, 200);
    assert!(stand_in.calls().await.is_empty());
}

#[tokio::test]
async fn an_outage_answers_googles_503_until_it_ends() {
    let outage = Outage::new();
    let stand_in = GeminiStandIn::start(outage.clone()).await;

    outage.set_down(true);
    let (down, body) = call(&stand_in).await;
    outage.set_down(false);
    let (up, _) = call(&stand_in).await;

    assert_eq!((down, up), (503, 200));
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    assert_eq!(
        body["error"]["message"],
        "The model is overloaded. Please try again later."
    );
    assert_eq!((outage.refused(), outage.answered()), (1, 1));
}

#[tokio::test]
async fn a_window_quota_refuses_the_call_past_its_limit_with_googles_429_until_the_window_ends() {
    let quota = WindowQuota::new(2, Duration::from_secs(60));
    let stand_in = GeminiStandIn::start(quota.clone()).await;

    let first = call(&stand_in).await.0;
    let second = call(&stand_in).await.0;
    let (third, body) = call(&stand_in).await;

    assert_eq!((first, second), (200, 200));
    assert_per_minute_429(third, &body);
    let delay = retry_delay(&body);
    assert!(delay > 50.0 && delay <= 60.0, "retryDelay {delay}");
    assert_eq!((quota.throttled(), quota.answered_at().len()), (1, 2));
}

#[tokio::test]
async fn a_rate_quota_lets_one_seconds_worth_through_then_refuses_with_the_wait_for_a_token() {
    // 120 a minute: 2 a second, a bucket of 2.
    let quota = RateQuota::per_minute(120.0);
    let stand_in = GeminiStandIn::start(quota.clone()).await;

    let first = call(&stand_in).await.0;
    let second = call(&stand_in).await.0;
    let (third, body) = call(&stand_in).await;

    assert_eq!((first, second), (200, 200));
    assert_per_minute_429(third, &body);
    let delay = retry_delay(&body);
    assert!(delay > 0.0 && delay <= 0.5, "retryDelay {delay}");
    assert_eq!((quota.calls(), quota.throttled()), (3, 1));
}

#[test]
fn the_rate_quotas_bucket_refills_at_its_rate() {
    let quota = RateQuota::per_minute(120.0);
    let start = Instant::now();
    assert_eq!(quota.admit(start), None);
    assert_eq!(quota.admit(start), None);
    assert_eq!(quota.admit(start), Some(Duration::from_millis(500)));
    // Half a second later one token is back, and only one.
    let later = start + Duration::from_millis(500);
    assert_eq!(quota.admit(later), None);
    assert!(quota.admit(later).is_some());
}

#[tokio::test]
async fn an_unlimited_rate_quota_only_counts() {
    let quota = RateQuota::unlimited();
    let stand_in = GeminiStandIn::start(quota.clone()).await;

    for _ in 0..5 {
        assert_eq!(call(&stand_in).await.0, 200);
    }

    assert_eq!((quota.calls(), quota.throttled()), (5, 0));
}

#[tokio::test]
async fn a_fixed_latency_holds_every_answer_that_long() {
    let stand_in = GeminiStandIn::start(Latency::fixed(Duration::from_millis(300))).await;

    let started = Instant::now();
    let (status, _) = call(&stand_in).await;

    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_drawn_latency_is_drawn_per_call_and_a_quota_around_it_refuses_at_once() {
    let mut draws = [Duration::from_millis(200), Duration::from_millis(400)].into_iter();
    let latency = Latency::drawn(move || draws.next().unwrap_or_default());
    let quota = RateQuota::per_minute(60.0).around(latency);
    let stand_in = GeminiStandIn::start(quota.clone()).await;

    let started = Instant::now();
    let first = call(&stand_in).await.0;
    let first_took = started.elapsed();
    let refused_at = Instant::now();
    let (second, _) = call(&stand_in).await;
    let refused_took = refused_at.elapsed();

    assert_eq!((first, second), (200, 429));
    assert!(first_took >= Duration::from_millis(200), "{first_took:?}");
    // The refusal drew no latency: the 400 ms draw is still unused.
    assert!(refused_took < Duration::from_millis(400), "{refused_took:?}");
}

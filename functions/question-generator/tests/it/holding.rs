//! Queued, not failed: while Gemini as a whole cannot answer (an open breaker, a per-minute
//! quota, every call failing), a request that may still wait is held, and one that has waited
//! `GEMINI_MAX_WAIT_SECONDS` is answered `gemini_unavailable`; a request that keeps failing
//! while Gemini answers others still fails after its attempts; calls are paced to the quota;
//! a 402 stops the environment; the model that answered is the one reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::kafka_event;
use qgen_testkit::{AnswersAsAsked, GeminiStandIn, Outage, RecordingPublisher, WindowQuota, capture_logs};
use question_generator::breaker::State;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use question_generator::source::{Deadlines, GenerationError, QuestionSource};
use rdkafka::message::OwnedMessage;
use secrecy::SecretString;
use serde_json::json;
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

const SECOND: Duration = Duration::from_secs(1);

fn config(base_url: &str, overrides: &[(&str, &str)]) -> GeneratorConfig {
    let mut vars: HashMap<String, String> = [
        ("KAFKA_BOOTSTRAP_SERVERS", "unused:9092"),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "1000"),
        ("GEMINI_BASE_URL", base_url),
        ("GEMINI_TIMEOUT_MS", "2000"),
        ("GEMINI_MAX_ATTEMPTS", "3"),
        ("GEMINI_BACKOFF_BASE_MS", "1"),
        ("GEMINI_BACKOFF_MAX_MS", "5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    GeneratorConfig::from_lookup(|var| vars.get(var).cloned()).unwrap()
}

fn client(config: &GeneratorConfig) -> GeminiClient {
    GeminiClient::new(&config.gemini, SecretString::from("test-key")).unwrap()
}

fn request(topic: &str) -> GenerationRequest {
    GenerationRequest {
        request_id: format!("req-{}", topic.to_lowercase().replace(' ', "-")),
        topic: topic.into(),
        num_questions: 2,
        difficulty: Difficulty::Easy,
        context: None,
    }
}

/// Answer within `answer_in`, waiting for Gemini for up to `wait_for`.
fn deadlines(answer_in: Duration, wait_for: Duration) -> Deadlines {
    let now = Instant::now();
    Deadlines {
        answer_by: now + answer_in,
        wait_until: now + wait_for,
    }
}

fn code(outcome: &Result<Vec<qgen_contract::events::Question>, GenerationError>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(GenerationError::Held { .. }) => "held",
        Err(e) => e.code().as_str(),
    }
}

/// Gemini down, and a breaker whose first failure opens it for a minute: no probe comes within
/// a test.
async fn down_with_a_breaker_that_opens_for_a_minute() -> (Outage, GeminiStandIn, GeneratorConfig) {
    let outage = Outage::new();
    outage.set_down(true);
    let stand_in = GeminiStandIn::start(outage.clone()).await;
    let config = config(
        &stand_in.base_url(),
        &[
            ("GEMINI_BREAKER_THRESHOLD", "1"),
            ("GEMINI_BREAKER_COOLDOWN_MS", "60000"),
        ],
    );
    (outage, stand_in, config)
}

#[tokio::test]
async fn while_the_breaker_is_open_a_young_request_is_held_and_an_old_one_fails_at_its_wait() {
    let (outage, _stand_in, config) = down_with_a_breaker_that_opens_for_a_minute().await;
    let gemini = client(&config);

    let started = Instant::now();
    let (young, _) = gemini
        .generate_reported(&request("Young"), deadlines(SECOND, 3_600 * SECOND))
        .await;
    let young_took = started.elapsed();
    let started = Instant::now();
    let (old, _) = gemini
        .generate_reported(&request("Old"), deadlines(10 * SECOND, SECOND))
        .await;
    let old_took = started.elapsed();

    assert_eq!(code(&young), "held", "{young:?}");
    assert!(
        young_took >= SECOND,
        "held before the invocation's time was up: {young_took:?}"
    );
    assert_eq!(code(&old), "gemini_unavailable", "{old:?}");
    assert!(
        old_took >= SECOND && old_took < 8 * SECOND,
        "answered at its maximum wait, not before nor at the deadline: {old_took:?}"
    );
    // One call opened the breaker; waiting made none.
    assert_eq!((outage.refused(), gemini.breaker_state()), (1, State::Open));
}

#[tokio::test]
async fn a_probe_that_succeeds_wakes_every_waiting_request_and_the_outage_costs_only_probes() {
    let outage = Outage::new();
    outage.set_down(true);
    let stand_in = GeminiStandIn::start(outage.clone()).await;
    // The shipped threshold (5); a 2 s cool-down keeps the test short.
    let cooldown = 2 * SECOND;
    let config = config(&stand_in.base_url(), &[("GEMINI_BREAKER_COOLDOWN_MS", "2000")]);
    let gemini = Arc::new(client(&config));

    let waiting: Vec<_> = (0..8)
        .map(|i| {
            let (gemini, r) = (gemini.clone(), request(&format!("Topic {i}")));
            tokio::spawn(async move {
                let (outcome, _) = gemini
                    .generate_reported(&r, deadlines(60 * SECOND, 3_600 * SECOND))
                    .await;
                (outcome, Instant::now())
            })
        })
        .collect();
    // Down until the breaker has opened, and on for one and a half cool-downs after: its first
    // probe is refused, the second one is answered.
    while gemini.breaker_state() == State::Closed {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = Instant::now();
    tokio::time::sleep(cooldown * 3 / 2).await;
    outage.set_down(false);
    let back = Instant::now();
    let done: Vec<Instant> = futures::future::join_all(waiting)
        .await
        .into_iter()
        .map(|joined| {
            let (outcome, at) = joined.unwrap();
            assert!(outcome.is_ok(), "{outcome:?}");
            at
        })
        .collect();

    // Every request was answered by exactly one call once Gemini was back.
    assert_eq!(outage.answered(), 8);
    // The probe came within a cool-down, and its success woke every waiting request at once,
    // not each at the end of a cool-down of its own (2 s later).
    let first = *done.iter().min().unwrap();
    let last = *done.iter().max().unwrap();
    assert!(first - back <= cooldown + SECOND, "{:?}", first - back);
    assert!(last - first < SECOND, "woken {:?} apart", last - first);
    // While down: until the breaker opened, the shipped threshold's five failures in a row and
    // at most the seven other requests' calls in flight; after it, one probe per cool-down,
    // not a call per waiting request.
    let open_for = back - opened;
    let probes = (open_for.as_millis() / cooldown.as_millis()) as u64 + 1;
    assert!(
        outage.refused() <= 5 + 7 + probes,
        "{} calls refused",
        outage.refused()
    );
}

#[tokio::test]
async fn a_request_whose_calls_all_fail_waits_for_gemini_while_nobody_else_is_answered() {
    // Four 503s, then answers: more failures than GEMINI_MAX_ATTEMPTS (3).
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let stand_in = GeminiStandIn::start(move |request: &Request| {
        if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 4 {
            qgen_testkit::overloaded()
        } else {
            AnswersAsAsked.respond(request)
        }
    })
    .await;
    let config = config(&stand_in.base_url(), &[("GEMINI_BREAKER_THRESHOLD", "1000")]);
    let gemini = client(&config);

    let (waited, _) = gemini
        .generate_reported(&request("Patient"), deadlines(30 * SECOND, 3_600 * SECOND))
        .await;

    assert_eq!(code(&waited), "ok", "{waited:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 5);

    // Without a wait allowed, the same failures end it after its attempts, as they always did.
    calls.store(0, std::sync::atomic::Ordering::SeqCst);
    let answered = gemini
        .generate(&request("Impatient"), Instant::now() + 30 * SECOND)
        .await;
    assert_eq!(code(&answered), "gemini_unavailable");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_request_that_keeps_failing_while_gemini_answers_others_fails_after_its_attempts() {
    // Gemini chokes on one prompt only.
    let stand_in = GeminiStandIn::start(|request: &Request| {
        if String::from_utf8_lossy(&request.body).contains("Doomed") {
            qgen_testkit::overloaded()
        } else {
            AnswersAsAsked.respond(request)
        }
    })
    .await;
    let config = config(&stand_in.base_url(), &[("GEMINI_BREAKER_THRESHOLD", "1000")]);
    let gemini = Arc::new(client(&config));
    let others = {
        let gemini = gemini.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let r = request(&format!("Fine {i}"));
                assert!(gemini.generate(&r, Instant::now() + 30 * SECOND).await.is_ok());
            }
        })
    };

    let (doomed, _) = gemini
        .generate_reported(&request("Doomed"), deadlines(30 * SECOND, 3_600 * SECOND))
        .await;
    others.abort();

    assert_eq!(code(&doomed), "gemini_unavailable", "{doomed:?}");
    let doomed_calls = stand_in
        .calls()
        .await
        .iter()
        .filter(|c| String::from_utf8_lossy(&c.body).contains("Doomed"))
        .count();
    assert!(doomed_calls >= 3, "{doomed_calls}");
}

#[tokio::test]
async fn a_per_minute_429_is_waited_out_without_using_attempts_or_opening_the_breaker() {
    // One attempt and a breaker that opens on the first failure: a 429 counted as either would
    // fail the request.
    let quota = WindowQuota::new(1, 2 * SECOND);
    let stand_in = GeminiStandIn::start(quota.clone()).await;
    let config = config(
        &stand_in.base_url(),
        &[("GEMINI_MAX_ATTEMPTS", "1"), ("GEMINI_BREAKER_THRESHOLD", "1")],
    );
    let gemini = Arc::new(client(&config));
    let started = Instant::now();

    let outcomes = futures::future::join_all((0..3).map(|i| {
        let gemini = gemini.clone();
        async move {
            gemini
                .generate_reported(
                    &request(&format!("Q {i}")),
                    deadlines(30 * SECOND, 3_600 * SECOND),
                )
                .await
                .0
        }
    }))
    .await;

    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(gemini.breaker_state(), State::Closed);
    // One a window: the third waited two windows.
    assert!(started.elapsed() >= 4 * SECOND, "{:?}", started.elapsed());
    // The 429 paused every call of the environment: each waiting request met at most one.
    assert!(quota.throttled() <= 3, "{} 429s", quota.throttled());
}

#[tokio::test]
async fn calls_are_paced_to_this_environments_share_of_the_quota() {
    let quota = WindowQuota::new(1_000, 60 * SECOND);
    let stand_in = GeminiStandIn::start(quota.clone()).await;
    // 600 a minute over 3 partitions: 200 here, one every 300 ms.
    let config = config(
        &stand_in.base_url(),
        &[("GEMINI_QUOTA_RPM", "600"), ("GEMINI_QUOTA_INVOCATIONS", "3")],
    );
    let gemini = Arc::new(client(&config));
    let started = std::time::Instant::now();

    futures::future::join_all((0..4).map(|i| {
        let gemini = gemini.clone();
        async move {
            let r = request(&format!("Paced {i}"));
            assert!(gemini.generate(&r, Instant::now() + 30 * SECOND).await.is_ok());
        }
    }))
    .await;

    let answered = quota.answered_at();
    assert_eq!(answered.len(), 4);
    // The fourth slot is three intervals after the first, which is no earlier than the start.
    let last = answered.iter().max().unwrap().duration_since(started);
    assert!(last >= Duration::from_millis(900), "{last:?}");
}

#[tokio::test]
async fn a_402_stops_every_call_of_the_environment_with_its_own_code() {
    let stand_in = GeminiStandIn::start(ResponseTemplate::new(402).set_body_json(json!({"error": {
        "code": 402,
        "message": "Your prepaid credits are depleted. Please purchase more credits in AI Studio.",
        "status": "FAILED_PRECONDITION"
    }})))
    .await;
    let config = config(&stand_in.base_url(), &[]);
    let gemini = client(&config);

    let first = gemini
        .generate_reported(&request("First"), deadlines(30 * SECOND, 3_600 * SECOND))
        .await
        .0;
    let second = gemini
        .generate_reported(&request("Second"), deadlines(30 * SECOND, 3_600 * SECOND))
        .await
        .0;

    for outcome in [&first, &second] {
        let error = outcome.as_ref().unwrap_err();
        assert_eq!(
            (error.code().as_str(), error.retryable()),
            ("gemini_credit_exhausted", true)
        );
    }
    // Not held: waiting cannot help before someone tops the credit up.
    assert_eq!(stand_in.calls().await.len(), 1);
    assert_eq!(gemini.breaker_state(), State::Open);
}

#[tokio::test]
async fn the_model_that_answered_is_reported_and_a_forwarded_model_is_logged_once() {
    let stand_in = GeminiStandIn::start(|request: &Request| {
        let mut reply = qgen_contract::offline::answer_generate_content(&request.body);
        reply["modelVersion"] = json!("gemini-3.8-flash");
        ResponseTemplate::new(200).set_body_json(reply)
    })
    .await;
    let config = config(&stand_in.base_url(), &[("GEMINI_MODEL", "gemini-3.6-flash")]);
    let gemini = client(&config);
    let (logs, _guard) = capture_logs();

    let mut models = Vec::new();
    for topic in ["One", "Two"] {
        let (outcome, calls) = gemini
            .generate_reported(&request(topic), Deadlines::no_wait(Instant::now() + 30 * SECOND))
            .await;
        assert!(outcome.is_ok());
        models.push(calls.unwrap().model);
    }

    assert_eq!(models, ["gemini-3.8-flash", "gemini-3.8-flash"]);
    let text = logs.text();
    assert_eq!(
        text.matches("another model than GEMINI_MODEL names").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("configured=\"gemini-3.6-flash\"") || text.contains("configured=gemini-3.6-flash"),
        "{text}"
    );
}

#[tokio::test]
async fn a_held_request_is_named_in_the_partial_batch_response_and_its_answered_neighbours_are_not() {
    // Gemini down, and a breaker that opens at once: every request is held.
    let (_outage, _stand_in, config) = down_with_a_breaker_that_opens_for_a_minute().await;
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(client(&config), &publisher, &config);
    // Two fresh requests on partition 0, one sent an hour ago on partition 1, one invalid.
    let fresh = |topic: &str| RequestEvent::new_request(request(topic));
    let mut old = RequestEvent::new_request(request("Stale"));
    old.timestamp = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let record = |partition: i32, offset: i64, event: &RequestEvent| {
        record_json(&OwnedMessage::new(
            Some(serde_json::to_vec(event).unwrap()),
            Some(event.event_data.request_id.as_bytes().to_vec()),
            "question.request".into(),
            rdkafka::Timestamp::CreateTime(1_795_773_600_000),
            partition,
            offset,
            None,
        ))
    };
    let event = kafka_event(
        [
            record(0, 40, &fresh("First")),
            record(0, 41, &fresh("Second")),
            record(1, 7, &old),
        ],
        "arn:aws:kafka:local",
        "127.0.0.1:9092",
    );

    // 1 s of publish reserve (message timeout) and 0.5 s of margin: 2 s of generation.
    let report = generator
        .handle(&event, Instant::now() + Duration::from_millis(3_500))
        .await;

    assert_eq!(
        (report.held, report.failed, report.completed),
        (2, 1, 0),
        "{report:?}"
    );
    assert_eq!(
        serde_json::to_value(report.response()).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": "question.request-0", "offset": 40}}
        ]})
    );
    // The stale request was answered, with the retryable code; the held ones were not.
    let published = publisher.on_topic("question.response");
    assert_eq!(published.len(), 1);
    let error = &published[0].json()["eventData"]["error"];
    assert_eq!(
        (&error["code"], &error["retryable"]),
        (&json!("gemini_unavailable"), &json!(true))
    );
}

//! Queued and processed later: requests over real HTTP through the local stack (`up`: the API,
//! the embedded broker, the trigger emulator with the template's settings, the generator) while
//! the Gemini stand-in is down, over its quota or flaky, with the generator's shipped defaults
//! (breaker 5 failures / 30 s, 4 attempts, a 30-minute maximum wait) unless a test says why not.
//!
//! Prints its figures (`scripts/test queued:: --no-capture`); BENCHMARKS.md and the Guarantees
//! of docs/testing.md quote them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qgen_contract::prompt::PromptData;
use qgen_local::client;
use qgen_local::stack::{RunningStack, UpOptions, up};
use qgen_testkit::{AnswersAsAsked, GeminiStandIn, Outage, WindowQuota, message_json, read_topic};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

const SECOND: Duration = Duration::from_secs(1);

/// The stack with the template's trigger defaults (3 partitions, batches of 10, a 1 s window)
/// and Gemini at `gemini_url`, plus `settings`.
async fn stack(gemini_url: &str, settings: &[(&str, &str)]) -> RunningStack {
    let options = UpOptions {
        api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        partitions: 3,
        batch_size: 10,
        batching_window: SECOND,
        invoke_url: None,
        state_file: None,
    };
    let mut vars: HashMap<String, String> = HashMap::from([
        ("GOOGLE_API_KEY".to_owned(), "test-key".to_owned()),
        ("GEMINI_BASE_URL".to_owned(), gemini_url.to_owned()),
    ]);
    vars.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    up(&options, |var| vars.get(var).cloned()).await.unwrap()
}

async fn send(stack: &RunningStack, id: &str) {
    let body =
        json!({"request_id": id, "topic": format!("Topic {id}"), "num_questions": 2, "difficulty": "easy"});
    let (status, answer) = client::send(stack.api_url(), &body).await.unwrap();
    assert_eq!(status, 202, "{answer}");
}

/// The first response of each request: its event and when the broker stored it.
fn first_responses(messages: &[OwnedMessage]) -> HashMap<String, (Value, SystemTime)> {
    let mut first = HashMap::new();
    for message in messages {
        let event = message_json(message);
        let id = event["eventData"]["request_id"].as_str().unwrap().to_owned();
        let ms = message.timestamp().to_millis().unwrap() as u64;
        first
            .entry(id)
            .or_insert((event, UNIX_EPOCH + Duration::from_millis(ms)));
    }
    first
}

/// Reads the first response of each of `n` requests (waiting up to `limit`), then stops the
/// stack.
async fn answers_then_stop(
    stack: RunningStack,
    n: usize,
    limit: Duration,
) -> HashMap<String, (Value, SystemTime)> {
    let messages = read_topic(&stack.bootstrap_servers(), "question.response", n, limit).await;
    stack.stop().await;
    first_responses(&messages)
}

fn status_counts(responses: &HashMap<String, (Value, SystemTime)>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (event, _) in responses.values() {
        let data = &event["eventData"];
        let label = data["error"]["code"]
            .as_str()
            .unwrap_or(data["status"].as_str().unwrap())
            .to_owned();
        *counts.entry(label).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_45_second_outage_in_a_steady_stream_fails_nothing_and_costs_only_probes() {
    let outage = Outage::new();
    let gemini = GeminiStandIn::start(outage.clone()).await;
    let stack = stack(&gemini.base_url(), &[]).await;
    let ids: Vec<String> = (0..30).map(|i| format!("steady-{i}")).collect();

    // One request every 2 s for a minute; Gemini down from the 3rd to the 25th (45 s).
    let mut back_at = None;
    for (i, id) in ids.iter().enumerate() {
        if i == 2 {
            outage.set_down(true);
        }
        if i == 25 {
            outage.set_down(false);
            back_at = Some(SystemTime::now());
        }
        send(&stack, id).await;
        tokio::time::sleep(2 * SECOND).await;
    }
    let back_at = back_at.unwrap();
    let responses = answers_then_stop(stack, ids.len(), 120 * SECOND).await;
    let counts = status_counts(&responses);
    let last = responses.values().map(|(_, at)| *at).max().unwrap();
    let after_back = last.duration_since(back_at).unwrap_or_default();
    println!(
        "outage 45 s: {} requests, {counts:?}, {} calls refused during the outage, {} answered, \
         last answer {:.1} s after Gemini was back",
        ids.len(),
        outage.refused(),
        outage.answered(),
        after_back.as_secs_f64()
    );
    assert_eq!(responses.len(), ids.len(), "{counts:?}");
    assert_eq!(counts.get("completed"), Some(&ids.len()), "{counts:?}");
    // The breaker's cool-down (30 s) bounds the wait after Gemini is back.
    assert!(after_back <= 30 * SECOND + 5 * SECOND, "{after_back:?}");
    // While down: the failures that opened the breaker (5, and at most one call in flight then
    // for each of the 3 partitions), then one probe per cool-down (45 s / 30 s: 2), not a call
    // per waiting request (22 of them were waiting).
    assert!(
        outage.refused() <= 5 + 3 + 2,
        "{} calls refused",
        outage.refused()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_three_times_the_quota_completes_at_the_quotas_rate() {
    // Gemini's quota is per minute; here the window is 5 s, so the test takes 15 s, not 3 min:
    // 10 calls a window is 120 a minute, which GEMINI_QUOTA_RPM says.
    let quota = WindowQuota::new(10, 5 * SECOND);
    let gemini = GeminiStandIn::start(quota.clone()).await;
    // The local stack runs one generator for every partition: one invocation's share.
    let stack = stack(
        &gemini.base_url(),
        &[("GEMINI_QUOTA_RPM", "120"), ("GEMINI_QUOTA_INVOCATIONS", "1")],
    )
    .await;
    let ids: Vec<String> = (0..30).map(|i| format!("burst-{i}")).collect();

    let started = Instant::now();
    futures::future::join_all(ids.iter().map(|id| send(&stack, id))).await;
    let responses = answers_then_stop(stack, ids.len(), 90 * SECOND).await;
    let counts = status_counts(&responses);
    let answered = quota.answered_at();
    let first = *answered.iter().min().unwrap();
    let last = *answered.iter().max().unwrap();
    let rate = (answered.len() - 1) as f64 / last.duration_since(first).as_secs_f64();
    println!(
        "quota burst: {} requests at 3x a 10-per-5-s quota in {:.1} s: {counts:?}, {:.2} calls/s \
         answered (quota 2.00/s), {} 429s",
        ids.len(),
        started.elapsed().as_secs_f64(),
        rate,
        quota.throttled()
    );
    assert_eq!(counts.get("completed"), Some(&ids.len()), "{counts:?}");
    assert_eq!(answered.len(), ids.len());
    // Within 10 % of the quota's rate, and at most one 429 per request on average.
    assert!((1.8..=2.2).contains(&rate), "{rate:.2} calls/s");
    assert!(
        quota.throttled() as usize <= ids.len(),
        "{} 429s",
        quota.throttled()
    );
}

/// 503 for a fifth of the calls, decided by a hash of the request's topic and its call number,
/// so a rerun fails the same calls; counts each request's failures.
#[derive(Clone, Default)]
struct Flaky {
    calls: Arc<Mutex<HashMap<String, (u64, u64)>>>,
}

impl Respond for Flaky {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let topic = PromptData::from_generate_content(&body).unwrap().topic;
        let mut calls = self.calls.lock().unwrap();
        let (n, failed) = calls.entry(topic.clone()).or_default();
        *n += 1;
        let hash = topic
            .bytes()
            .chain(n.to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        if hash % 100 < 20 {
            *failed += 1;
            return qgen_testkit::overloaded();
        }
        AnswersAsAsked.respond(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifth_of_calls_failing_only_requests_that_exhausted_their_own_retries_fail() {
    let flaky = Flaky::default();
    let gemini = GeminiStandIn::start(flaky.clone()).await;
    let stack = stack(&gemini.base_url(), &[]).await;
    let ids: Vec<String> = (0..200).map(|i| format!("flaky-{i}")).collect();

    futures::future::join_all(ids.iter().map(|id| send(&stack, id))).await;
    let responses = answers_then_stop(stack, ids.len(), 150 * SECOND).await;
    let counts = status_counts(&responses);
    let calls = flaky.calls.lock().unwrap().clone();
    let failed_calls: u64 = calls.values().map(|(_, f)| f).sum();
    println!(
        "20 % flaky: {} requests, {counts:?}, {} calls, {failed_calls} failed",
        ids.len(),
        calls.values().map(|(n, _)| n).sum::<u64>()
    );
    assert_eq!(responses.len(), ids.len());
    for (id, (event, _)) in &responses {
        let Some(code) = event["eventData"]["error"]["code"].as_str() else {
            continue;
        };
        // A failure is this request's own: it got its 4 attempts (GEMINI_MAX_ATTEMPTS), all failed.
        let (n, failed) = calls[&format!("Topic {id}")];
        assert_eq!(code, "gemini_unavailable", "{id}");
        assert!(failed >= 4, "{id} failed after {failed} failed calls of {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_maximum_wait_is_answered_failed_within_the_wait() {
    let outage = Outage::new();
    outage.set_down(true);
    let gemini = GeminiStandIn::start(outage.clone()).await;
    // The bound is the setting's, so a short one keeps the test short.
    let stack = stack(&gemini.base_url(), &[("GEMINI_MAX_WAIT_SECONDS", "8")]).await;
    let ids: Vec<String> = (0..6).map(|i| format!("too-long-{i}")).collect();

    let mut sent = HashMap::new();
    for id in &ids {
        sent.insert(id.clone(), SystemTime::now());
        send(&stack, id).await;
    }
    let responses = answers_then_stop(stack, ids.len(), 60 * SECOND).await;
    assert_eq!(responses.len(), ids.len());
    for (id, (event, at)) in &responses {
        let error = &event["eventData"]["error"];
        assert_eq!(
            (&error["code"], &error["retryable"]),
            (&json!("gemini_unavailable"), &json!(true)),
            "{id}"
        );
        let waited = at.duration_since(sent[id]).unwrap_or_default();
        println!("{id}: answered failed after {:.1} s", waited.as_secs_f64());
        // Not before the wait (the request was held), and within it plus the publish.
        assert!(waited >= 7 * SECOND, "{id}: {waited:?}");
        assert!(waited <= 8 * SECOND + 5 * SECOND, "{id}: {waited:?}");
    }
}

//! One fault run (the API over HTTP, the trigger emulator, a generator that crashes once, a
//! chaotic Gemini and a broker that goes away) and the checks of what it saw ([`Figures`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use qgen_adapters::kafka::{KafkaPublisher, client_config};
use qgen_local::esm::{Emulator, EsmConfig};
use qgen_testkit::GeminiStandIn;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::chaos::{self, Chaos, Rates};
use super::harness::{
    Broker, CrashOnce, LOAD_MARGIN, Posted, RECONNECT_BACKOFF_MAX, check_refusal_times, configs, env_number,
    init_logs, max, median, post_all, read_responses, serve_api,
};

/// `completed` or `failed:<code>`.
pub(super) fn outcome_of(event: &Value) -> String {
    match event["eventData"]["error"]["code"].as_str() {
        Some(code) => format!("failed:{code}"),
        None => "completed".to_owned(),
    }
}

/// The `i` of `fault-{i}`.
pub(super) fn index_of(id: &str) -> usize {
    id.strip_prefix("fault-")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a fault-run request id: {id}"))
}

/// What a fault run saw.
pub(super) struct Figures {
    pub(super) total: usize,
    pub(super) load_time: Duration,
    /// From the broker's stop until it was back (tansu: restarted and listening).
    pub(super) outage: Duration,
    pub(super) message_timeout: Duration,
    /// Per phase: before, during and after the outage.
    pub(super) phases: [Posted; 3],
    pub(super) events: Vec<Value>,
    /// The Gemini stand-in: the faults of each request, and the calls it got.
    pub(super) chaos: Arc<Chaos>,
    pub(super) rates: Rates,
    /// `GEMINI_MAX_ATTEMPTS` of the generator.
    pub(super) max_attempts: u32,
}

impl Figures {
    pub(super) fn accepted_ids(&self) -> HashSet<String> {
        self.phases
            .iter()
            .flat_map(|p| p.accepted.iter().map(|(id, _)| id.clone()))
            .collect()
    }

    pub(super) fn refused(&self) -> usize {
        self.phases.iter().map(|p| p.refused).sum()
    }

    pub(super) fn refused_latency_ms(&self) -> Vec<u64> {
        self.phases
            .iter()
            .flat_map(|p| p.refused_latency_ms.clone())
            .collect()
    }

    /// Asserts promise 1, that nothing refused was published, and that every request ended as
    /// its injected faults say it must; then prints the figures.
    pub(super) fn check_and_print(&self, title: &str) {
        let accepted = self.accepted_ids();
        let mut by_request: HashMap<String, Vec<&Value>> = HashMap::new();
        for event in &self.events {
            let id = event["eventData"]["request_id"].as_str().unwrap().to_owned();
            by_request.entry(id).or_default().push(event);
        }
        let lost: Vec<&String> = accepted
            .iter()
            .filter(|id| !by_request.contains_key(*id))
            .collect();
        let mut duplicates = 0;
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut unexpected = Vec::new();
        for (id, copies) in &by_request {
            let ids: HashSet<&str> = copies.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), 1, "{id}: copies with different eventIds {ids:?}");
            duplicates += copies.len() - 1;
            // Every copy (a re-generated request makes the same calls again) ends as the
            // request's script does.
            let expected = self.rates.script(index_of(id), self.max_attempts).outcome;
            for copy in copies {
                let outcome = outcome_of(copy);
                if outcome != expected {
                    unexpected.push(format!("{id}: {outcome}, expected {expected}"));
                }
            }
            *outcomes.entry(outcome_of(copies.last().unwrap())).or_default() += 1;
        }
        let mut expected_outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for id in &accepted {
            let script = self.rates.script(index_of(id), self.max_attempts);
            *expected_outcomes.entry(script.outcome).or_default() += 1;
        }
        let failure_probability = self.rates.failure_probability(self.max_attempts);
        let calls = self.chaos.calls();
        let refused = self.refused_latency_ms();
        let during = &self.phases[1].accepted_latency_ms;
        eprintln!(
            "\n{title}: {} requests in {:.1} s, outage {} ms\n  accepted (202): {} (during the outage: {}, median {} ms, max {} ms)\n  \
             refused (503): {} (min {} ms, median {} ms, max {} ms)\n  responses read: {} for {} requests\n  outcomes: {outcomes:?}\n  \
             expected by the injected faults: {expected_outcomes:?} (P(failed) per request at these rates: {:.2} %)\n  \
             gemini calls: {}\n  duplicates (same eventId): {duplicates}\n  lost: {}\n",
            self.total,
            self.load_time.as_secs_f64(),
            self.outage.as_millis(),
            accepted.len(),
            during.len(),
            median(during),
            max(during),
            self.refused(),
            refused.iter().min().copied().unwrap_or(0),
            median(&refused),
            max(&refused),
            self.events.len(),
            by_request.len(),
            failure_probability * 100.0,
            calls.values().sum::<usize>(),
            lost.len(),
        );
        assert!(lost.is_empty(), "accepted but never answered: {lost:?}");
        for phase in &self.phases {
            assert!(phase.other.is_empty(), "unexpected statuses {:?}", phase.other);
        }
        // Accepted = posted - refused, each accepted once.
        let accepted_answers: usize = self.phases.iter().map(|p| p.accepted.len()).sum();
        assert_eq!(accepted_answers, accepted.len(), "a request accepted twice");
        assert_eq!(accepted.len() + self.refused(), self.total);
        // A 503'd request never reached the topic, so it was never answered.
        assert!(
            by_request.keys().all(|id| accepted.contains(id)),
            "a refused request was published"
        );
        assert!(
            duplicates > 0,
            "the crashed batch should have re-published its responses"
        );

        // The outcome mix. Only two failures can follow from the injected faults: 4 transient
        // failures (429/503/timeout; GEMINI_MAX_ATTEMPTS) make `gemini_unavailable`, an
        // unusable answer after the repair call makes `invalid_model_output`. Not
        // `deadline_exceeded`: a generation takes seconds of the invocation's 180.
        let codes: HashSet<&str> = outcomes.keys().map(String::as_str).collect();
        let possible = HashSet::from([
            "completed",
            "failed:gemini_unavailable",
            "failed:invalid_model_output",
        ]);
        assert!(
            codes.is_subset(&possible),
            "outcomes the injected faults cannot cause: {outcomes:?}"
        );
        assert!(
            unexpected.is_empty(),
            "{} responses other than the injected faults make: {unexpected:?}",
            unexpected.len()
        );
        assert_eq!(outcomes, expected_outcomes);
        // The same from the rates alone, which also checks that the scripts stand for them: a
        // generation fails with probability p = P(4 transient failures before an answer, or
        // 2 unusable answers): with 35 % transient and 10 % unusable calls p = 4.3 %
        // (`Rates::failure_probability`), 21.7 of 500. Three times the expected failures and 5
        // more is far beyond the spread of the count (sd ~ sqrt(500 p) ~ 4.6).
        let failed = accepted.len() - outcomes.get("completed").copied().unwrap_or(0);
        let failed_bound = (3.0 * failure_probability * accepted.len() as f64).ceil() as usize + 5;
        assert!(
            failed <= failed_bound,
            "{failed} of {} accepted requests failed; the injected faults explain at most {failed_bound}",
            accepted.len()
        );

        // Gemini was called exactly as the policy says: each accepted request a whole number
        // of its scripts (one per generation), each refused one never.
        assert_eq!(self.chaos.strays(), 0, "calls for no request of the run");
        for index in 0..self.total {
            let made = calls.get(&index).copied().unwrap_or(0);
            let id = format!("fault-{index}");
            if accepted.contains(&id) {
                let script = self.rates.script(index, self.max_attempts);
                let per_generation = script.faults.len();
                assert!(
                    made >= per_generation && made.is_multiple_of(per_generation),
                    "{id}: {made} gemini calls, not a multiple of its {per_generation} ({:?} → {})",
                    script.faults,
                    script.outcome
                );
            } else {
                assert_eq!(made, 0, "{id} was refused but generated");
            }
        }
    }

    /// Promise 1's and 2's bounds on waiting: a caller held while the broker was away waited
    /// at most the outage and one reconnect backoff (plus slack for a loaded machine); a 503
    /// came between the message timeout and the API's publish timeout.
    pub(super) fn check_waits(&self) {
        let during = &self.phases[1].accepted_latency_ms;
        let at_most = self.outage + RECONNECT_BACKOFF_MAX + LOAD_MARGIN;
        assert!(
            max(during) <= at_most.as_millis() as u64,
            "a request sent during the {} ms outage waited {} ms for its 202, over the outage + \
             {RECONNECT_BACKOFF_MAX:?} reconnect backoff + {LOAD_MARGIN:?}: {during:?}",
            self.outage.as_millis(),
            max(during)
        );
        check_refusal_times(&self.refused_latency_ms(), self.message_timeout);
    }
}

/// The fault run: the API over HTTP and the trigger emulator feeding the generator (which
/// crashes once after publishing), under a chaotic Gemini; `total` requests, 16 at a time, with
/// the broker stopped for `outage` while the middle part is sent.
pub(super) async fn fault_run(mut broker: Broker, message_timeout_ms: u64, outage: Duration) -> Figures {
    init_logs();
    let total = env_number("FAULT_REQUESTS", 500);
    let bootstrap = broker.bootstrap_servers();
    let rates = Rates::from_env();
    // The stand-in needs the attempts before the configuration can name its URL; both are the
    // generator's, read from the same variables.
    let max_attempts = configs(&bootstrap, message_timeout_ms, "http://127.0.0.1:9")
        .1
        .gemini
        .retry
        .max_attempts;
    let chaos = Chaos::new(rates, max_attempts);
    let gemini = GeminiStandIn::start(chaos::Responder(chaos.clone())).await;
    let (api_config, generator_config) = configs(&bootstrap, message_timeout_ms, &gemini.base_url());
    assert_eq!(generator_config.gemini.retry.max_attempts, max_attempts);
    let shutdown = CancellationToken::new();
    let (url, server) = serve_api(&api_config, &shutdown).await;

    let generator = Generator::new(
        GeminiClient::new(&generator_config.gemini, SecretString::from("chaos-key")).unwrap(),
        KafkaPublisher::new(&generator_config.kafka).unwrap(),
        &generator_config,
    );
    let invoker = CrashOnce {
        inner: generator,
        invocations: AtomicUsize::new(0),
        crash_on: 3,
    };
    // The template's retry cap and on-failure topic: "0 lost" means the outage was ridden out
    // within the retries, with nothing given up to question.request.failed.
    let mut esm = EsmConfig::new("question.request", "question.request.failed");
    esm.batch_size = 50;
    esm.batching_window = Duration::from_millis(200);
    esm.retry_base = Duration::from_millis(200);
    esm.retry_max = Duration::from_secs(2);
    let emulator = Emulator::new(&client_config(&generator_config.kafka), esm, invoker).unwrap();
    let esm_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { emulator.run(shutdown).await }
    });

    let http = reqwest::Client::new();
    let before = total * 2 / 5;
    let during = 48.min(total / 5);
    let ids = |range: std::ops::Range<usize>| range.map(|i| format!("fault-{i}"));
    let started = Instant::now();
    let first = post_all(&http, &url, ids(0..before)).await;
    broker.stop();
    let stopped = Instant::now();
    let (second, back) = tokio::join!(post_all(&http, &url, ids(before..before + during)), async {
        // The outage itself.
        tokio::time::sleep(outage).await;
        broker.start().await;
        Instant::now()
    });
    let third = post_all(&http, &url, ids(before + during..total)).await;
    let load_time = started.elapsed();

    let phases = [first, second, third];
    let accepted: HashSet<String> = phases
        .iter()
        .flat_map(|p| p.accepted.iter().map(|(id, _)| id.clone()))
        .collect();
    let events = read_responses(&bootstrap, &accepted, Duration::from_secs(180)).await;
    shutdown.cancel();
    let _ = server.await;
    let _ = esm_task.await;
    Figures {
        total,
        load_time,
        outage: back - stopped,
        message_timeout: Duration::from_millis(message_timeout_ms),
        phases,
        events,
        chaos,
        rates,
        max_attempts,
    }
}

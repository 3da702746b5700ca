//! The emulator's retries against a real broker: the backoff between retries of a failing batch,
//! and a retried batch's partition held back while the other partitions flow.
//!
//! AWS: "Lambda reads messages sequentially for each Kafka topic partition"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-msk-process.html>), so nothing after a
//! failing batch of a partition is delivered while it is retried; with `MaximumRetryAttempts`
//! -1 (infinite, the AWS default) "failed records are retried until the record expires"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/API_CreateEventSourceMapping.html>), which
//! these tests use to keep a batch failing for as long as they need. "Configuring error handling
//! controls for Kafka event sources"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>) documents no
//! delay between the retries: the emulator's backoff (500 ms doubling to 30 s) is its own choice,
//! checked here.

use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_contract::msk::KafkaBatchResponse;
use qgen_local::esm::{Emulator, EsmConfig, InvokeError, Invoker};
use qgen_testkit::MockBroker;
use rdkafka::Offset;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::trigger::{
    FAILED_TOPIC, REQUEST_TOPIC, Seen, client_of, committed_at, esm_config, produce_at, seen_in,
};

/// An invocation as the function saw it: when it started, and its records.
type Invocation = (Instant, Vec<Seen>);

/// An invoker that reports each invocation on a channel, then fails it (a function error: the
/// whole batch is retried) when `fails` says so, else succeeds.
struct Probe {
    invoked: mpsc::UnboundedSender<Invocation>,
    fails: fn(&[Seen]) -> bool,
}

impl Probe {
    fn new(fails: fn(&[Seen]) -> bool) -> (Self, mpsc::UnboundedReceiver<Invocation>) {
        let (invoked, invocations) = mpsc::unbounded_channel();
        (Probe { invoked, fails }, invocations)
    }
}

impl Invoker for Probe {
    async fn invoke(
        &self,
        event: &KafkaEvent,
        _deadline: Instant,
    ) -> Result<KafkaBatchResponse, InvokeError> {
        let at = Instant::now();
        // A real function always yields while it works; without this, an emulator that retried
        // with no delay would spin in the test's task and hang the test instead of failing it.
        tokio::task::yield_now().await;
        let seen = seen_in(event);
        let fails = (self.fails)(&seen);
        let _ = self.invoked.send((at, seen));
        if fails {
            Err(InvokeError("failing on purpose".into()))
        } else {
            Ok(KafkaBatchResponse::default())
        }
    }
}

/// The next invocation, waiting for it until `deadline` (a stuck emulator fails with `what`).
async fn next(
    invocations: &mut mpsc::UnboundedReceiver<Invocation>,
    what: &str,
    deadline: Instant,
) -> Invocation {
    tokio::time::timeout_at(deadline, invocations.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("the emulator dropped its invoker")
}

/// 30 s from now: how long any step of these tests may take, however loaded the machine.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn ids(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|(_, _, id)| id.as_str()).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn by_default_the_delay_between_retries_is_500_ms_doubling_to_30_s() {
    let config = EsmConfig::new(REQUEST_TOPIC, FAILED_TOPIC);
    assert_eq!(config.retry_base, Duration::from_millis(500));
    assert_eq!(config.retry_max, Duration::from_secs(30));
    // After the first invocation, the second, ... the eighth, and long after.
    let delays: Vec<u64> = [1, 2, 3, 4, 5, 6, 7, 8, 1_000]
        .map(|invocations| config.retry_delay(invocations).as_millis() as u64)
        .into();
    assert_eq!(
        delays,
        [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_a_failing_batch_wait_the_backoff_which_doubles_up_to_its_cap() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1), (FAILED_TOPIC, 1)]);
    produce_at(&broker, 0, "x", now_ms()).await;
    let (probe, mut invocations) = Probe::new(|_| true);
    let mut config = esm_config(10, 0);
    config.retry_base = Duration::from_millis(100);
    config.retry_max = Duration::from_millis(400);
    config.maximum_retry_attempts = -1;
    config.on_failure_topic = None;
    let emulator = Emulator::new(&client_of(&broker), config, &probe).unwrap();
    let shutdown = CancellationToken::new();

    let watch = async {
        let mut at = Vec::new();
        let deadline = soon();
        for n in 0..8 {
            let (started, seen) = next(&mut invocations, &format!("invocation {n}"), deadline).await;
            assert_eq!(ids(&seen), ["x"], "each retry carries the failed batch");
            at.push(started);
        }
        shutdown.cancel();
        at
    };
    let (result, at) = tokio::join!(emulator.run(shutdown.clone()), watch);
    result.unwrap();

    let gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    eprintln!("gaps between invocations (ms): {gaps:?}");
    // Lower bounds hold however loaded the machine: a retry never comes early.
    for (gap, least) in gaps.iter().zip([100, 200, 400, 400, 400, 400, 400]) {
        assert!(
            *gap >= least,
            "a retry came {gap} ms after the last try, before its backoff of {least} ms: {gaps:?}"
        );
    }
    // The cap: without it the seventh gap would be 6.4 s; 2 s is 5 times the 400 ms expected.
    assert!(
        gaps[6] <= 2_000,
        "the backoff stops doubling at retry_max (400 ms): {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_batch_is_retried_its_partition_waits_and_the_other_partitions_flow() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 2), (FAILED_TOPIC, 1)]);
    let bootstrap = broker.bootstrap_servers();
    for (partition, id) in [(0, "a0"), (0, "a1"), (1, "b0")] {
        produce_at(&broker, partition, id, now_ms()).await;
    }
    // a0 fails every time; everything else succeeds.
    let (probe, mut invocations) = Probe::new(|seen| seen.iter().any(|(_, _, id)| id == "a0"));
    // One record per batch, so that a batch is one partition's; retried for as long as the
    // test lasts.
    let mut config = esm_config(1, 0);
    config.maximum_retry_attempts = -1;
    config.on_failure_topic = None;
    let emulator = Emulator::new(&client_of(&broker), config, &probe).unwrap();
    let shutdown = CancellationToken::new();
    let committed = |partitions| {
        let bootstrap = bootstrap.clone();
        async move {
            tokio::task::spawn_blocking(move || committed_at(&bootstrap, partitions))
                .await
                .unwrap()
        }
    };

    let check = async {
        let mut invoked: Vec<Vec<Seen>> = Vec::new();
        // The next invocation (by `deadline`), which must not be a1's.
        let mut receive = async |what: &str, deadline: Instant, invoked: &mut Vec<Vec<Seen>>| {
            let (_, seen) = next(&mut invocations, what, deadline).await;
            assert!(
                !ids(&seen).contains(&"a1"),
                "a1, behind the failing a0 in partition 0, was invoked while a0 is retried: {invoked:?}"
            );
            invoked.push(seen.clone());
            seen
        };
        let count = |invoked: &[Vec<Seen>], id: &str| invoked.iter().filter(|s| ids(s) == [id]).count();
        // a0 failed and is being retried; partition 1 went on meanwhile.
        let deadline = soon();
        while count(&invoked, "a0") < 3 || count(&invoked, "b0") < 1 {
            receive("a0 to be retried twice and b0 invoked", deadline, &mut invoked).await;
        }
        // A record arriving in partition 1 now is invoked and committed while a0 is retried.
        produce_at(&broker, 1, "b1", now_ms()).await;
        let deadline = soon();
        while count(&invoked, "b1") < 1 {
            receive("b1 to be invoked while a0 is retried", deadline, &mut invoked).await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let offsets = committed(2).await;
            if offsets[1] == Offset::Offset(2) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition 1 not committed past b1 within 20 s: {offsets:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ... and a0 is still retried after that.
        let retries = count(&invoked, "a0");
        let deadline = soon();
        while count(&invoked, "a0") == retries {
            receive("a0 to be retried again", deadline, &mut invoked).await;
        }
        let offsets = committed(2).await;
        shutdown.cancel();
        (invoked, offsets)
    };
    let (result, (invoked, offsets)) = tokio::join!(emulator.run(shutdown.clone()), check);
    result.unwrap();

    eprintln!("invocations: {invoked:?}");
    assert!(
        !matches!(offsets[0], Offset::Offset(_)),
        "nothing of partition 0 is committed while a0 fails: {offsets:?}"
    );
    assert_eq!(offsets[1], Offset::Offset(2));
    while let Ok((_, seen)) = invocations.try_recv() {
        assert!(!ids(&seen).contains(&"a1"), "a1 invoked on the way out: {seen:?}");
    }
}

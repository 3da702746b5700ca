//! Partitions invoked at once, each one batch at a time; a shutdown letting the batch in flight
//! finish and commit.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_contract::msk::KafkaBatchResponse;
use qgen_local::esm::{Emulator, InvokeError, Invoker};
use qgen_testkit::MockBroker;
use rdkafka::Offset;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    FAILED_TOPIC, REQUEST_TOPIC, client_of, committed, esm_config, now_ms, produce, produce_at, run_until,
};

/// Invocations wait here until `parties` of them are in flight at once.
struct Rendezvous {
    barrier: tokio::sync::Barrier,
    arrived: AtomicUsize,
    parties: usize,
    in_flight: Mutex<Vec<i32>>,
    overlapped_in_a_partition: AtomicBool,
    all_met: AtomicBool,
    invoked: Mutex<Vec<String>>,
}

impl Invoker for Rendezvous {
    async fn invoke(
        &self,
        event: &KafkaEvent,
        _deadline: Instant,
    ) -> Result<KafkaBatchResponse, InvokeError> {
        let partitions: HashSet<i32> = event
            .records
            .values()
            .flatten()
            .map(|r| r.partition as i32)
            .collect();
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            if partitions.iter().any(|p| in_flight.contains(p)) {
                self.overlapped_in_a_partition.store(true, Ordering::SeqCst);
            }
            in_flight.extend(&partitions);
        }
        if self.arrived.fetch_add(1, Ordering::SeqCst) < self.parties {
            // Bounded only so that a broken emulator fails the test instead of hanging it.
            let met = tokio::time::timeout(Duration::from_secs(20), self.barrier.wait()).await;
            if met.is_ok() {
                self.all_met.store(true, Ordering::SeqCst);
            }
        }
        self.in_flight.lock().unwrap().retain(|p| !partitions.contains(p));
        self.invoked.lock().unwrap().extend(
            event
                .records
                .values()
                .flatten()
                .map(|r| format!("{}@{}", r.partition, r.offset)),
        );
        Ok(KafkaBatchResponse::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_invoked_at_once_but_each_partition_one_batch_at_a_time() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 3), (FAILED_TOPIC, 1)]);
    for (partition, id) in [(0, "a"), (0, "b"), (1, "c"), (2, "d")] {
        produce_at(&broker, partition, id, now_ms()).await;
    }
    let rendezvous = Rendezvous {
        barrier: tokio::sync::Barrier::new(3),
        arrived: AtomicUsize::new(0),
        parties: 3,
        in_flight: Mutex::new(Vec::new()),
        overlapped_in_a_partition: AtomicBool::new(false),
        all_met: AtomicBool::new(false),
        invoked: Mutex::new(Vec::new()),
    };
    // One record per batch: a batch is one partition's.
    let emulator = Emulator::new(&client_of(&broker), esm_config(1, 0), &rendezvous).unwrap();

    run_until(&emulator, || rendezvous.invoked.lock().unwrap().len() >= 4).await;

    assert!(
        rendezvous.all_met.load(Ordering::SeqCst),
        "three partitions' batches in flight at once"
    );
    assert!(
        !rendezvous.overlapped_in_a_partition.load(Ordering::SeqCst),
        "never two batches of one partition at once"
    );
    let mut invoked = rendezvous.invoked.lock().unwrap().clone();
    invoked.sort();
    assert_eq!(invoked, ["0@0", "0@1", "1@0", "2@0"]);
}

/// Holds each invocation until released.
struct Held {
    started: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Invoker for Held {
    async fn invoke(
        &self,
        _event: &KafkaEvent,
        _deadline: Instant,
    ) -> Result<KafkaBatchResponse, InvokeError> {
        self.started.notify_one();
        self.release.notified().await;
        Ok(KafkaBatchResponse::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_the_batch_in_flight_finish_and_commit() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1), (FAILED_TOPIC, 1)]);
    produce(&broker, &["p", "q"]).await;
    let held = Held {
        started: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    };
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 300), &held).unwrap();
    let shutdown = CancellationToken::new();

    let stop_while_in_flight = async {
        held.started.notified().await;
        shutdown.cancel();
        held.release.notify_one();
    };
    let (result, ()) = tokio::join!(emulator.run(shutdown.clone()), stop_while_in_flight);

    result.unwrap();
    assert_eq!(committed(&broker, 1), [Offset::Offset(2)]);
}

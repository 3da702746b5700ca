//! Batching and resume: at most `batch_size` records a batch, each once; the batching window;
//! a failing batch retried whole and never committed; a restart resuming from the commit.

use std::collections::HashSet;
use std::time::Duration;

use qgen_local::esm::Emulator;
use qgen_testkit::MockBroker;
use rdkafka::Offset;

use super::{
    REQUEST_TOPIC, Recorder, Seen, client_of, committed, esm_config, now_ms, produce, produce_at, publisher,
    run_until, send, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_at_most_batch_size_records_and_each_record_once() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1)]);
    produce(&broker, &["a", "b", "c", "d", "e", "f", "g"]).await;
    let recorder = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(3, 300), &recorder).unwrap();

    run_until(&emulator, || recorder.records() >= 7).await;

    let batches = recorder.batches();
    assert!(batches.iter().all(|b| b.len() <= 3), "{batches:?}");
    assert_eq!(batches.concat(), ["a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(committed(&broker, 1), [Offset::Offset(7)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batching_window_gathers_records_that_arrive_within_it() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1)]);
    let recorder = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(100, 1_500), &recorder).unwrap();
    let publisher = publisher(&broker);
    send(&publisher, &["warm-up"]).await;
    let late_producer = async {
        // Once the consumer has taken the warm-up record (so it is assigned and fetching), send
        // two records 300 ms apart.
        wait_for("the warm-up record's invocation", Duration::from_secs(30), || {
            recorder.records() >= 1
        })
        .await;
        send(&publisher, &["early"]).await;
        // Not synchronisation: this gap is what the test is about. "late" arrives 300 ms after
        // "early", well inside the 1.5 s window that "early" opened, and must join its batch.
        tokio::time::sleep(Duration::from_millis(300)).await;
        send(&publisher, &["late"]).await;
    };

    tokio::join!(run_until(&emulator, || recorder.records() >= 3), late_producer);

    assert_eq!(
        recorder.batches()[1..],
        [vec!["early".to_owned(), "late".to_owned()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_retried_with_the_same_records_and_never_committed() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 2)]);
    produce(&broker, &["x", "y", "z"]).await;
    let failing = Recorder::failing(usize::MAX);
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &failing).unwrap();

    run_until(&emulator, || failing.batches().len() >= 3).await;
    drop(emulator);

    // Each partition's retries carry the same records as its first attempt: nothing dropped,
    // nothing added. (Both partitions may share one batch or have one each.)
    let attempts = failing.seen();
    assert!(attempts.len() >= 3);
    for partition in 0..2 {
        let of_partition: Vec<Vec<&Seen>> = attempts
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .filter(|(p, _, _)| *p == partition)
                    .collect::<Vec<_>>()
            })
            .filter(|records| !records.is_empty())
            .collect();
        assert!(
            of_partition.windows(2).all(|w| w[0] == w[1]),
            "retries must carry the same records: {attempts:?}"
        );
    }
    assert!(
        committed(&broker, 2)
            .iter()
            .all(|o| !matches!(o, Offset::Offset(_))),
        "nothing committed"
    );

    // The function recovers: a new emulator in the group gets the same records again.
    let recovered = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &recovered).unwrap();
    run_until(&emulator, || recovered.records() >= 3).await;
    let mut seen = recovered.batches().concat();
    seen.sort();
    assert_eq!(seen, ["x", "y", "z"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_processing_resumes_from_the_committed_offset() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 2)]);
    for (partition, id) in [(0, "1"), (1, "2"), (0, "3")] {
        produce_at(&broker, partition, id, now_ms()).await;
    }
    let first = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &first).unwrap();
    run_until(&emulator, || first.records() >= 3).await;
    drop(emulator);

    // One new record in each partition. A partition's records are delivered in offset order,
    // so once both new ones are invoked, any record wrongly delivered again (from before the
    // committed offset) has been invoked too: no wait after the run is needed.
    produce_at(&broker, 0, "4", now_ms()).await;
    produce_at(&broker, 1, "5", now_ms()).await;
    let second = Recorder::default();
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 200), &second).unwrap();
    run_until(&emulator, || {
        let seen = second.batches().concat();
        seen.contains(&"4".to_owned()) && seen.contains(&"5".to_owned())
    })
    .await;

    let mut before = first.batches().concat();
    let mut after = second.batches().concat();
    before.sort();
    after.sort();
    assert_eq!(before, ["1", "2", "3"]);
    assert_eq!(after, ["4", "5"], "only the records after the committed offsets");
    let all: HashSet<String> = before.into_iter().chain(after).collect();
    assert_eq!(all.len(), 5);
}

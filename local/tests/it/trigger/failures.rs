//! Partial batch responses and the on-failure topic: a commit up to the reported offset, the
//! retry cap and the maximum record age sending records to `question.request.failed`.

use std::time::Duration;

use qgen_contract::msk::KafkaBatchResponse;
use qgen_local::esm::Emulator;
use qgen_testkit::MockBroker;
use rdkafka::{Message, Offset};
use tokio_util::sync::CancellationToken;

use super::{
    FAILED_TOPIC, REQUEST_TOPIC, Recorder, client_of, committed, esm_config, failed_records, now_ms,
    produce_at, run_until, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_failure_commits_up_to_the_reported_offset_and_redelivers_from_it() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 3), (FAILED_TOPIC, 1)]);
    for (partition, id) in [(0, "a0"), (0, "a1"), (1, "b0"), (1, "b1"), (1, "b2"), (2, "c0")] {
        produce_at(&broker, partition, id, now_ms()).await;
    }
    // The first invocation given b1 (partition 1, offset 1) reports it; every other succeeds.
    // The records may reach the emulator over several fetches (a loaded machine splits them), so
    // the test keys on b1, not on the first batch.
    let reported = std::sync::atomic::AtomicBool::new(false);
    let recorder = Recorder::answering(move |_, seen| {
        let has_b1 = seen.iter().any(|(_, _, id)| id == "b1");
        Ok(
            if has_b1 && !reported.swap(true, std::sync::atomic::Ordering::SeqCst) {
                KafkaBatchResponse::retry_from([(REQUEST_TOPIC, 1, 1)])
            } else {
                KafkaBatchResponse::default()
            },
        )
    });
    let emulator = Emulator::new(&client_of(&broker), esm_config(10, 300), &recorder).unwrap();
    let times = |id: &str| {
        recorder
            .batches()
            .iter()
            .flatten()
            .filter(|seen| *seen == id)
            .count()
    };

    run_until(&emulator, || {
        times("b1") == 2 && times("b2") >= 1 && ["a0", "a1", "b0", "c0"].iter().all(|id| times(id) == 1)
    })
    .await;

    // What the report named was redelivered from b1, on its partition alone; what was before it,
    // and the other partitions, were not redelivered.
    let batches = recorder.batches();
    let with_b1: Vec<&Vec<String>> = batches.iter().filter(|b| b.contains(&"b1".to_owned())).collect();
    assert_eq!(with_b1.len(), 2, "{batches:?}");
    assert_eq!(with_b1[1][0], "b1", "redelivered from b1: {batches:?}");
    assert!(with_b1[1].iter().all(|id| id.starts_with('b')), "{batches:?}");
    for id in ["a0", "a1", "b0", "c0"] {
        assert_eq!(times(id), 1, "{id} is invoked once: {batches:?}");
    }
    assert_eq!(
        committed(&broker, 3),
        [Offset::Offset(2), Offset::Offset(3), Offset::Offset(1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_retry_cap_records_go_to_the_failed_topic_and_the_partition_moves_on() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 2), (FAILED_TOPIC, 1)]);
    produce_at(&broker, 0, "x0", now_ms()).await;
    let y0 = produce_at(&broker, 1, "y0", now_ms()).await;
    let y1 = produce_at(&broker, 1, "y1", now_ms()).await;
    let recorder = Recorder::refusing(&["y0", "y1"]);
    let mut config = esm_config(10, 300);
    config.maximum_retry_attempts = 2;
    let emulator = Emulator::new(&client_of(&broker), config, &recorder).unwrap();
    let shutdown = CancellationToken::new();
    let run = emulator.run(shutdown.clone());
    let check = async {
        let failed = failed_records(&broker, 2).await;
        // The partition moves on: a record after the given-up ones is invoked.
        produce_at(&broker, 1, "y2", now_ms()).await;
        wait_for("y2 to be invoked", Duration::from_secs(20), || {
            recorder.batches().concat().contains(&"y2".to_owned())
        })
        .await;
        shutdown.cancel();
        failed
    };
    let (result, failed) = tokio::join!(run, check);
    result.unwrap();

    let tries_of_y0 = recorder
        .batches()
        .iter()
        .filter(|b| b.contains(&"y0".to_owned()))
        .count();
    assert_eq!(tries_of_y0, 3, "the first invocation and 2 retries");
    assert_eq!(
        recorder
            .batches()
            .concat()
            .iter()
            .filter(|id| *id == "x0")
            .count(),
        1
    );
    assert!(recorder.batches().concat().contains(&"y2".to_owned()));
    assert_eq!(failed.len(), 2, "one on-failure record per record");
    for ((record, message), (offset, value)) in failed.iter().zip([(0, &y0), (1, &y1)]) {
        assert_eq!(record.request_context.condition, "RetriesExhausted");
        assert_eq!(record.request_context.approximate_invoke_count, 3);
        assert_eq!(record.response_context.as_ref().unwrap().status_code, 200);
        assert_eq!(record.batch_info.record_info.offset, offset.to_string());
        let original = &record.originals().unwrap()[0];
        assert_eq!((original.partition, original.offset), (1, offset));
        assert_eq!(original.value.as_ref(), Some(value), "the original bytes");
        assert_eq!(
            message.key(),
            original.key.as_deref(),
            "produced with the original key"
        );
    }
    assert_eq!(committed(&broker, 2), [Offset::Offset(1), Offset::Offset(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_older_than_the_maximum_age_goes_to_the_failed_topic_without_an_invocation() {
    let broker = MockBroker::start(&[(REQUEST_TOPIC, 1), (FAILED_TOPIC, 1)]);
    let old = produce_at(&broker, 0, "old", now_ms() - 120_000).await;
    produce_at(&broker, 0, "new", now_ms()).await;
    let recorder = Recorder::default();
    let mut config = esm_config(10, 300);
    // The smallest age AWS accepts (kafka-retry-configurations.html: 60-604800, or -1).
    config.maximum_record_age_seconds = 60;
    let emulator = Emulator::new(&client_of(&broker), config, &recorder).unwrap();

    run_until(&emulator, || recorder.records() >= 1).await;
    let failed = failed_records(&broker, 1).await;

    assert_eq!(recorder.batches(), [["new"]], "the old record is never invoked");
    let (record, _) = &failed[0];
    assert_eq!(record.request_context.condition, "RecordAgeExceeded");
    assert_eq!(record.request_context.approximate_invoke_count, 0);
    assert!(record.response_context.is_none());
    assert_eq!(record.originals().unwrap()[0].value.as_ref(), Some(&old));
    assert_eq!(committed(&broker, 1), [Offset::Offset(2)]);
}

//! Benchmark 1, the publish path: the API handler's warm latency against the one raw produce it
//! wraps, where the handler's own time goes, and the producer's compression codecs weighed.

use std::time::{Duration, Instant};

use qgen_adapters::config::{ApiConfig, KafkaConfig};
use qgen_adapters::kafka::{
    CONTENT_TYPE_JSON, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_EVENT_TYPE, KafkaPublisher,
    producer_config,
};
use qgen_contract::events::{Difficulty, RequestEvent, ResponseEvent};
use qgen_contract::validation::{Limits, parse_request_body};
use question_api::Api;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::fixtures::{BODY, REQUEST_TOPIC, api_request, lookup, mock_broker};
use crate::stats::{median, ms, percentile, ratio, verdict};
use crate::{BenchError, Mode, fail};

/// One raw `FutureProducer` send of `payload`, awaited until the broker acknowledges it.
async fn raw_send(
    producer: &FutureProducer,
    key: &str,
    event_id: &str,
    payload: &[u8],
) -> Result<(), BenchError> {
    let headers = OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: HEADER_EVENT_TYPE,
            value: Some("question.generation.request"),
        })
        .insert(Header {
            key: HEADER_EVENT_ID,
            value: Some(event_id),
        })
        .insert(Header {
            key: HEADER_CONTENT_TYPE,
            value: Some(CONTENT_TYPE_JSON),
        });
    let record = FutureRecord::to(REQUEST_TOPIC)
        .key(key)
        .payload(payload)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(5))
        .await
        .map(|_| ())
        .map_err(|(e, _)| fail("raw produce", e))
}

/// Runs benchmark 1 and prints its figures.
pub(crate) async fn publish_path(mode: Mode) -> Result<(), BenchError> {
    let (warmup, n) = match mode {
        Mode::Quick => (200, 2_000),
        Mode::Full => (500, 10_000),
    };
    let cluster = mock_broker()?;
    let config =
        ApiConfig::from_lookup(lookup(&cluster.bootstrap_servers(), None)).map_err(|e| fail("config", e))?;
    let api = Api::new(
        KafkaPublisher::new(&config.kafka).map_err(|e| fail("publisher", e))?,
        &config,
    );
    let raw: FutureProducer = producer_config(&config.kafka)
        .create()
        .map_err(|e| fail("raw producer", e))?;
    // The record the handler produces for BODY: same size, same key, same headers.
    let event = RequestEvent::new_request(
        parse_request_body(BODY.as_bytes(), &Limits::default()).map_err(|e| fail("body", e))?,
    );
    let payload = serde_json::to_vec(&event).map_err(|e| fail("event", e))?;
    let key = event.event_data.request_id.clone();

    let mut handler = Vec::with_capacity(n);
    let mut produce = Vec::with_capacity(n);
    for i in 0..warmup + n {
        // Built outside the timed region: API Gateway hands the function a parsed request.
        let mut request = Some(api_request()?);
        // A/B then B/A: neither side always goes first, so drift and any after-effect of the
        // other side's call fall on both equally.
        let handler_first = i % 2 == 0;
        let mut h = Duration::ZERO;
        let mut p = Duration::ZERO;
        for turn in 0..2 {
            if (turn == 0) == handler_first {
                let request = request
                    .take()
                    .ok_or_else(|| BenchError("request used twice".into()))?;
                let started = Instant::now();
                let response = api.handle(request).await;
                h = started.elapsed();
                if response.status() != http::StatusCode::ACCEPTED {
                    return Err(BenchError(format!("the handler answered {}", response.status())));
                }
            } else {
                let started = Instant::now();
                raw_send(&raw, &key, &event.event_id, &payload).await?;
                p = started.elapsed();
            }
        }
        if i >= warmup {
            handler.push(h);
            produce.push(p);
        }
    }
    let (h50, p50) = (median(&handler), median(&produce));
    let r = ratio(h50, p50);
    println!(
        "\n[1] publish path: question-api handler vs one raw FutureProducer send, {n} each, interleaved"
    );
    println!(
        "    handler (validate -> produce -> ack)  p50 {}  p99 {}",
        ms(h50),
        ms(percentile(&handler, 99.0))
    );
    println!(
        "    raw produce + ack                     p50 {}  p99 {}",
        ms(p50),
        ms(percentile(&produce, 99.0))
    );
    println!(
        "    handler p50 / raw p50 = {r:.2}   target <= 1.30   {}",
        verdict(r <= 1.30)
    );
    handler_steps(n);
    producer_settings(&config.kafka, &event, n / 2).await
}

/// Where the handler's time over the raw produce goes: its CPU steps timed one by one, with
/// the same calls the handler makes, so a reader knows what a fix would have to cut.
fn handler_steps(n: usize) {
    fn time(n: usize, mut step: impl FnMut()) -> Duration {
        let samples: Vec<Duration> = (0..n)
            .map(|_| {
                let started = Instant::now();
                step();
                started.elapsed()
            })
            .collect();
        median(&samples)
    }
    let limits = Limits::default();
    let request = parse_request_body(BODY.as_bytes(), &limits).ok();
    let event = request.clone().map(RequestEvent::new_request);
    let steps = [
        (
            "parse + validate body",
            time(n, || drop(parse_request_body(BODY.as_bytes(), &limits))),
        ),
        (
            "request event (UUID, timestamp)",
            time(n, || drop(request.clone().map(RequestEvent::new_request))),
        ),
        (
            "event to JSON",
            time(n, || drop(event.as_ref().map(serde_json::to_vec))),
        ),
        (
            "EMF metric line on stdout",
            time(n, || {
                qgen_adapters::telemetry::Metrics::new(question_api::SERVICE)
                    .count(qgen_adapters::telemetry::Metric::Accepted, 1)
                    .duration(
                        qgen_adapters::telemetry::Metric::PublishLatency,
                        Duration::from_micros(50),
                    )
                    .emit()
            }),
        ),
    ];
    let figures: Vec<String> = steps
        .iter()
        .map(|(name, t)| format!("{name} {:.1} µs", t.as_secs_f64() * 1e6))
        .collect();
    println!("    handler steps (p50 of {n} each): {}", figures.join(", "));
}

/// The producer's compression, weighed in the same run: the configured codec against the
/// others (`zstd`, `lz4`, none), on a request-sized record and on a response-sized one (five
/// questions), the producers taking turns so that each sees the same broker.
async fn producer_settings(kafka: &KafkaConfig, event: &RequestEvent, n: usize) -> Result<(), BenchError> {
    let configured = producer_config(kafka);
    let current = configured.get("compression.type").unwrap_or("none").to_owned();
    let mut variants = vec![current.as_str()];
    variants.extend(["zstd", "lz4", "none"].into_iter().filter(|c| *c != current));
    let mut producers = Vec::with_capacity(variants.len());
    for &compression in &variants {
        let producer: FutureProducer = producer_config(kafka)
            .set("compression.type", compression)
            .create()
            .map_err(|e| fail("producer", e))?;
        producers.push(producer);
    }
    let request = serde_json::to_vec(event).map_err(|e| fail("event", e))?;
    let questions = qgen_contract::offline::questions("Python Loops", 5, Difficulty::Medium);
    let response = ResponseEvent::completed(&event.event_id, &event.event_data.request_id, questions);
    let response = serde_json::to_vec(&response).map_err(|e| fail("event", e))?;
    println!("    producer compression (raw produce + ack, p50 of {n} each, taking turns):");
    for (label, payload) in [("request", &request), ("response", &response)] {
        let mut times = vec![Vec::with_capacity(n); producers.len()];
        for i in 0..n + 100 {
            for turn in 0..producers.len() {
                // Rotating who goes first, for the same reason as above.
                let v = (i + turn) % producers.len();
                let started = Instant::now();
                raw_send(
                    &producers[v],
                    &event.event_data.request_id,
                    &event.event_id,
                    payload,
                )
                .await?;
                if i >= 100 {
                    times[v].push(started.elapsed());
                }
            }
        }
        let base = median(&times[0]);
        let figures: Vec<String> = variants
            .iter()
            .zip(&times)
            .map(|(name, t)| format!("{name} {} (x{:.2})", ms(median(t)), ratio(median(t), base)))
            .collect();
        println!("      {label:<8} {:>5} B: {}", payload.len(), figures.join("  "));
    }
    Ok(())
}

//! The `publish` benchmark, the publish path: the API handler's warm latency against the one raw produce it
//! wraps, where the handler's own time goes, and the producer's compression codecs weighed;
//! then the same comparison on a tansu broker (`tansu`) and counted in instructions
//! (`callgrind`).

use std::time::{Duration, Instant};

use qgen_adapters::config::{ApiConfig, KafkaConfig};
use qgen_adapters::kafka::{KafkaPublisher, producer_config};
use qgen_contract::events::{Difficulty, RequestEvent, ResponseEvent};
use qgen_contract::headers::{CONTENT_TYPE_JSON, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_EVENT_TYPE};
use qgen_contract::validation::{Limits, parse_request_body};
use question_api::Api;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::fixtures::{BODY, REQUEST_TOPIC, api_request, lookup, mock_broker};
use crate::stats::{median, ms, percentile, ratio, verdict};
use crate::{BenchError, BenchOptions, Mode, fail};

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

/// The two sides of the `publish` benchmark on one broker: the API handler, a raw producer with the same
/// settings, and the record the handler produces for [`BODY`] (same size, key and headers).
pub(crate) struct PublishPair {
    api: Api<KafkaPublisher>,
    raw: FutureProducer,
    pub(crate) kafka: KafkaConfig,
    pub(crate) event: RequestEvent,
    payload: Vec<u8>,
}

impl PublishPair {
    /// Both sides, pointed at the broker at `bootstrap`.
    pub(crate) fn new(bootstrap: &str) -> Result<Self, BenchError> {
        let config = ApiConfig::from_lookup(lookup(bootstrap, None)).map_err(|e| fail("config", e))?;
        let api = Api::new(
            KafkaPublisher::new(&config.kafka).map_err(|e| fail("publisher", e))?,
            &config,
        );
        let raw = producer_config(&config.kafka)
            .create()
            .map_err(|e| fail("raw producer", e))?;
        let event = RequestEvent::new_request(
            parse_request_body(BODY.as_bytes(), &Limits::default()).map_err(|e| fail("body", e))?,
        );
        let payload = serde_json::to_vec(&event).map_err(|e| fail("event", e))?;
        Ok(PublishPair {
            api,
            raw,
            kafka: config.kafka,
            event,
            payload,
        })
    }

    /// One handler call on `request` (built by the caller: API Gateway hands the function a
    /// parsed request), which must be answered 202.
    pub(crate) async fn handle(&self, request: lambda_http::Request) -> Result<(), BenchError> {
        let response = self.api.handle(request).await;
        if response.status() != http::StatusCode::ACCEPTED {
            return Err(BenchError(format!("the handler answered {}", response.status())));
        }
        Ok(())
    }

    /// One raw send of the handler's record, awaited until the broker acknowledges it.
    pub(crate) async fn raw(&self) -> Result<(), BenchError> {
        let key = &self.event.event_data.request_id;
        raw_send(&self.raw, key, &self.event.event_id, &self.payload).await
    }

    /// `n` timed calls of each side after `warmup` of each, interleaved: (handler, raw).
    pub(crate) async fn interleaved(
        &self,
        warmup: usize,
        n: usize,
    ) -> Result<(Vec<Duration>, Vec<Duration>), BenchError> {
        let mut handler = Vec::with_capacity(n);
        let mut produce = Vec::with_capacity(n);
        for i in 0..warmup + n {
            let request = api_request()?;
            // A/B then B/A: neither side always goes first, so drift and any after-effect of the
            // other side's call fall on both equally.
            let (h, p) = if i % 2 == 0 {
                let h = timed(self.handle(request)).await?;
                (h, timed(self.raw()).await?)
            } else {
                let p = timed(self.raw()).await?;
                (timed(self.handle(request)).await?, p)
            };
            if i >= warmup {
                handler.push(h);
                produce.push(p);
            }
        }
        Ok((handler, produce))
    }
}

async fn timed(call: impl Future<Output = Result<(), BenchError>>) -> Result<Duration, BenchError> {
    let started = Instant::now();
    call.await?;
    Ok(started.elapsed())
}

/// The handler's and the raw produce's p50 and p99, and the ratio of medians against the target.
pub(crate) fn print_comparison(handler: &[Duration], produce: &[Duration], indent: &str) {
    let (h50, p50) = (median(handler), median(produce));
    let r = ratio(h50, p50);
    println!(
        "{indent}handler (validate -> produce -> ack)  p50 {}  p99 {}",
        ms(h50),
        ms(percentile(handler, 99.0))
    );
    println!(
        "{indent}raw produce + ack                     p50 {}  p99 {}",
        ms(p50),
        ms(percentile(produce, 99.0))
    );
    println!(
        "{indent}handler p50 / raw p50 = {r:.2}   target <= 1.30   {}",
        verdict(r <= 1.30)
    );
}

/// Runs the `publish` benchmark and prints its figures.
pub(crate) async fn publish_path(options: &BenchOptions) -> Result<(), BenchError> {
    let (warmup, n) = match options.mode {
        Mode::Quick => (200, 2_000),
        Mode::Full => (500, 10_000),
    };
    let cluster = mock_broker()?;
    let pair = PublishPair::new(&cluster.bootstrap_servers())?;
    let (handler, produce) = pair.interleaved(warmup, n).await?;
    println!(
        "\n[publish] publish path: question-api handler vs one raw FutureProducer send, {n} each, interleaved"
    );
    print_comparison(&handler, &produce, "    ");
    handler_steps(n);
    producer_settings(&pair.kafka, &pair.event, n / 2).await
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

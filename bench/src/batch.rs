//! The `batch` benchmark, batch throughput: the generator on one batch of [`BATCH`] requests against a
//! Gemini stand-in with a fixed latency, at `GENERATION_CONCURRENCY` 1, 16 and 32, against the
//! ideal time of `ceil(BATCH / C) × latency`.

use std::time::{Duration, Instant};

use qgen_adapters::kafka::KafkaPublisher;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use secrecy::SecretString;

use crate::fixtures::{batch_event, lookup, mock_broker};
use crate::stand_ins::GeminiStandIn;
use crate::stats::{median, ms, ratio, verdict};
use crate::{BATCH, BenchError, GEMINI_LATENCY, Mode, fail};

/// Runs the `batch` benchmark and prints its figures.
pub(crate) async fn batch_throughput(mode: Mode) -> Result<(), BenchError> {
    let repeats = match mode {
        Mode::Quick => 3,
        Mode::Full => 7,
    };
    let cluster = mock_broker()?;
    let bootstrap = cluster.bootstrap_servers();
    let gemini = GeminiStandIn::start(GEMINI_LATENCY)
        .await
        .map_err(|e| fail("gemini stand-in", e))?;
    let event = batch_event(BATCH, &bootstrap)?;
    println!(
        "\n[batch] batch throughput: generator on {BATCH} requests, Gemini stand-in with fixed latency {} ms",
        GEMINI_LATENCY.as_millis()
    );
    let mut baseline = None;
    for concurrency in [1usize, 16, 32] {
        let mut config = GeneratorConfig::from_lookup(lookup(&bootstrap, Some(&gemini.base_url())))
            .map_err(|e| fail("config", e))?;
        config.concurrency = concurrency;
        let generator = Generator::new(
            GeminiClient::new(&config.gemini, SecretString::from("bench-key"))
                .map_err(|e| fail("gemini client", e))?,
            KafkaPublisher::new(&config.kafka).map_err(|e| fail("publisher", e))?,
            &config,
        );
        // C = 1 takes BATCH × L (20 s): once is enough, its spread is tiny next to its length.
        let runs = if concurrency == 1 { 1 } else { repeats };
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            let started = Instant::now();
            let report = generator.handle(&event, deadline).await;
            times.push(started.elapsed());
            if report.completed != BATCH {
                return Err(BenchError(format!("batch not fully completed: {report:?}")));
            }
        }
        let t = median(&times);
        let ideal = GEMINI_LATENCY * BATCH.div_ceil(concurrency) as u32;
        let r = ratio(t, ideal);
        let base = *baseline.get_or_insert(t);
        let target = if concurrency == 1 {
            "(baseline)".to_owned()
        } else {
            format!("target <= 1.15   {}", verdict(r <= 1.15))
        };
        println!(
            "    C = {concurrency:>2}: median {:>9} of {runs}  ideal {:>9}  ratio {r:.3}  speed-up x{:.1}   {target}",
            ms(t),
            ms(ideal),
            ratio(base, t)
        );
    }
    Ok(())
}

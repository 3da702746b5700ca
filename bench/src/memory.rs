//! The `memory` benchmark, memory and CPU: each release binary's peak resident set (`VmHWM`) and the CPU
//! time (user + system, from `wait4`, in µs) it spends per request under the Runtime API
//! stand-in; then what that CPU becomes at each `MemorySize`, and (as 7) what a million
//! requests cost, from [`crate::cost`].

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::cost::{self, *};
use crate::fixtures::{batch_event, mock_broker};
use crate::process::{binary, marginal};
use crate::stand_ins::GeminiStandIn;
use crate::stats::verdict;
use crate::{BATCH, BenchError, BenchOptions, GEMINI_LATENCY, Mode, fail};

/// The issue's target for peak RSS.
const TARGET_KB: u64 = 64 * 1024;
/// The `cold-start` benchmark's target for exec to the first Runtime API poll, beside the start-up CPU.
const COLD_START: Duration = Duration::from_millis(50);

/// `us` microseconds, one decimal.
fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The API Gateway HTTP API event of request `i`.
fn api_event(template: &Value, i: usize) -> Bytes {
    let mut event = template.clone();
    event["body"] = json!(format!(
        r#"{{"request_id":"bench-{i}","topic":"Python Loops {i}","num_questions":5,"difficulty":"medium"}}"#
    ));
    Bytes::from(event.to_string())
}

/// Runs the `memory` benchmark and prints its figures, then the sizing and the cost table (`cost`).
pub(crate) async fn memory(options: &BenchOptions) -> Result<(), BenchError> {
    let cluster = mock_broker()?;
    let bootstrap = cluster.bootstrap_servers();
    let gemini = GeminiStandIn::start(GEMINI_LATENCY)
        .await
        .map_err(|e| fail("gemini stand-in", e))?;
    let gemini_url = gemini.base_url();
    let stand_ins = (bootstrap.as_str(), gemini_url.as_str());
    let reps = if options.mode == Mode::Full { 9 } else { 5 };
    println!(
        "\n[memory] memory and CPU: peak RSS (VmHWM) and CPU time (user + system, wait4) of each release binary under the Runtime API stand-in"
    );
    println!(
        "    CPU per request = (CPU of warm-up + N requests - CPU of warm-up alone) / N, median of {reps} interleaved pairs"
    );

    let batch = |n: usize| -> Result<Bytes, BenchError> {
        let event = batch_event(n, &bootstrap)?;
        Ok(Bytes::from(
            serde_json::to_vec(&event).map_err(|e| fail("batch", e))?,
        ))
    };
    let program = binary(&options.target_dir, "question-generator")?;
    let warm = [batch(1)?];
    let mut generator = Vec::new();
    for (size, batches) in [(TEMPLATE_BATCH_SIZE as usize, 10), (BATCH, 2)] {
        let measured = vec![batch(size)?; batches];
        let m = marginal(
            &program,
            "question-generator",
            (&warm, &measured),
            size * batches,
            reps,
            stand_ins,
        )
        .await?;
        println!(
            "    question-generator  batch of {size:>3}, C = {CONCURRENCY}: CPU {:>9} per record, {} ms per batch",
            us(m.cpu),
            m.wall.as_millis()
        );
        generator.push(m);
    }
    let peak = generator.iter().map(|m| m.peak_kb).max().unwrap_or(0);
    println!(
        "    question-generator  {:>6.1} MB peak  (batches of up to {BATCH}, C = {CONCURRENCY})           target <= 64 MB   {}",
        mb(peak),
        verdict(peak <= TARGET_KB)
    );

    let template: Value = serde_json::from_str(include_str!("../../events/api-http-v2.json"))
        .map_err(|e| fail("api event", e))?;
    let warm = [api_event(&template, BATCH)];
    let measured: Vec<Bytes> = (0..BATCH).map(|i| api_event(&template, i)).collect();
    let program = binary(&options.target_dir, "question-api")?;
    let api = marginal(
        &program,
        "question-api",
        (&warm, &measured),
        BATCH,
        reps,
        stand_ins,
    )
    .await?;
    println!(
        "    question-api        CPU {:>9} per invocation, {} µs wall each",
        us(api.cpu),
        api.wall.as_micros()
    );
    println!(
        "    question-api        {:>6.1} MB peak  ({BATCH} invocations)                           target <= 64 MB   {}",
        mb(api.peak_kb),
        verdict(api.peak_kb <= TARGET_KB)
    );

    let measured = Measured {
        api_cpu: api.cpu,
        api_peak_kb: api.peak_kb,
        record_cpu_10: generator[0].cpu,
        record_cpu_100: generator[1].cpu,
        generator_peak_kb: peak,
        api_start_cpu: api.start,
        generator_start_cpu: generator[0].start,
    };
    let (api_mb, generator_mb) = sizing(&measured);
    cost_table(&measured, api_mb, generator_mb);
    Ok(())
}

/// Prints what each size makes of the measured CPU next to each function's wait; returns the
/// sizes it recommends (API, generator).
fn sizing(m: &Measured) -> (u32, u32) {
    println!(
        "    MemorySize: CPU at MB/{MB_PER_VCPU} of a vCPU; enough = peak RSS x {RSS_MARGIN} fits and CPU <= {:.0} % of the wait",
        CPU_SHARE_OF_WAIT * 100.0
    );
    println!(
        "    {:<34}{:>12}{:>12}{:>12}   wait",
        "", "128 MB", "256 MB", "512 MB"
    );
    let wall = |b: u32| batch_wall(b, CONCURRENCY, REAL_GEMINI_LATENCY, BATCH_OVERHEAD);
    let (b10, b100) = (wall(TEMPLATE_BATCH_SIZE), wall(BATCH as u32));
    // The start-up rows are for reading only: a cold start is not every request's cost.
    let rows = [
        (
            "api: CPU per invocation",
            m.api_cpu,
            MSK_PRODUCE_WAIT,
            "MSK produce, assumed",
        ),
        (
            "generator: CPU per batch of 10",
            m.record_cpu_10 * 10,
            b10,
            "Gemini, 1 wave",
        ),
        (
            "generator: CPU per batch of 100",
            m.record_cpu_100 * 100,
            b100,
            "Gemini, 7 waves",
        ),
        (
            "api: CPU of exec + 1st invocation",
            m.api_start_cpu,
            COLD_START,
            "cold start target",
        ),
        (
            "generator: exec + batch of 1",
            m.generator_start_cpu,
            COLD_START,
            "cold start target",
        ),
    ];
    for (label, cpu, wait, what) in rows {
        let cells: Vec<String> = MEMORY_SIZES_MB
            .iter()
            .map(|&size| format!("{:>9.3} ms", cpu_at(cpu, size).as_secs_f64() * 1e3))
            .collect();
        println!(
            "    {label:<34}{}   {:.3} s ({what})",
            cells.join(" "),
            wait.as_secs_f64()
        );
    }
    // The largest size when none meets the rule: memory is the only lever on the CPU share.
    let largest = MEMORY_SIZES_MB[MEMORY_SIZES_MB.len() - 1];
    let api = smallest_enough(m.api_peak_kb, m.api_cpu, MSK_PRODUCE_WAIT);
    let generator = smallest_enough(m.generator_peak_kb, m.record_cpu_10 * 10, b10)
        .zip(smallest_enough(m.generator_peak_kb, m.record_cpu_100 * 100, b100))
        .map(|(a, b)| a.max(b));
    let (api_met, generator_met) = (api.is_some(), generator.is_some());
    let (api, generator) = (api.unwrap_or(largest), generator.unwrap_or(largest));
    let fits = |peak: u64| verdict(peak * RSS_MARGIN <= 128 * 1024);
    println!(
        "    128 MB holds peak RSS x {RSS_MARGIN}: api {:.1} MB {}, generator {:.1} MB {}",
        mb(m.api_peak_kb),
        fits(m.api_peak_kb),
        mb(m.generator_peak_kb),
        fits(m.generator_peak_kb)
    );
    println!(
        "    recommended MemorySize: api {api} MB (template {TEMPLATE_API_MB}, rule {}), generator {generator} MB (template {TEMPLATE_GENERATOR_MB}, rule {})",
        verdict(api_met),
        verdict(generator_met)
    );
    (api, generator)
}

/// The cost table (`cost`, printed after `memory`): USD per million requests at the template's sizes and at the recommended ones.
fn cost_table(m: &Measured, api_mb: u32, generator_mb: u32) {
    let (input, output) = (cost::prompt_chars(), cost::answer_chars());
    println!(
        "\n[cost] cost per million requests, USD list prices (Lambda arm64 us-east-1; gemini-3.6-flash at $1.50/$7.50 per 1M tokens), Gemini latency {} s",
        REAL_GEMINI_LATENCY.as_secs()
    );
    println!(
        "    per request: prompt {input} chars = {:.0} input tokens, 5-question answer {output} chars = {:.0} output tokens ({CHARS_PER_TOKEN} chars/token); thinking not counted",
        tokens(input),
        tokens(output)
    );
    let rows = [
        (
            TEMPLATE_API_MB,
            TEMPLATE_GENERATOR_MB,
            TEMPLATE_BATCH_SIZE,
            "template",
        ),
        (api_mb, generator_mb, TEMPLATE_BATCH_SIZE, "recommended"),
        (api_mb, generator_mb, BATCH as u32, "recommended"),
    ];
    for (api, generator, batch, which) in rows {
        let label = format!("{which}: api {api}, gen {generator}, B {batch}");
        print_row(&label, &cost_per_million(&workload(m, api, generator, batch)));
    }
    println!(
        "    each 100 thinking tokens per request add ${:.0} per million requests (billed as output)",
        100.0 * GEMINI_USD_PER_MILLION_OUTPUT_TOKENS
    );
}

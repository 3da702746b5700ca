//! What a million requests cost, and what a `MemorySize` does to the CPU work: arithmetic over
//! list prices and the figures the `memory` benchmark measures (no I/O but [`print_row`]'s one line).
//!
//! Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>, read 2026-12-03),
//! so CPU work measured on a full core takes `1769 / MemorySize` times as long in Lambda. Prices
//! are US East (N. Virginia) list prices without free tiers, batch discounts or promotions.

use std::time::Duration;

use qgen_contract::events::{Difficulty, GenerationRequest};
use question_generator::config::DEFAULT_THINKING_LEVEL;
use question_generator::gemini::build_request;
use serde_json::{Value, json};

/// Lambda arm64 duration price, USD per GB-second (the first 7.5 billion GB-s a month, US East).
/// <https://aws.amazon.com/lambda/pricing/>, read 2026-12-03; the page renders its rates client
/// side, so the figure was read from its transcription in
/// <https://cloudchipr.com/blog/aws-lambda-pricing> ("First 7.5 Billion GB-seconds per month:
/// $0.0000133334 per GB-second"; x86: $0.0000166667).
pub const LAMBDA_ARM64_USD_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda request price, USD per request ($0.20 per million, both architectures).
/// <https://aws.amazon.com/lambda/pricing/>, read 2026-12-03 (same transcription as above).
pub const LAMBDA_USD_PER_REQUEST: f64 = 0.20 / 1e6;
/// Gemini input price for `gemini-3.6-flash` (the default model,
/// `question_generator::config::DEFAULT_GEMINI_MODEL`), USD per million tokens, paid tier, the
/// list price the README's "What a request costs" quotes: $1.50 in and $7.50 out, thinking
/// included (Google's Gemini 3.6 page, read 2026-12-02; <https://ai.google.dev/gemini-api/docs/pricing>).
/// The transcription of the pricing page available here (read 2026-10-07,
/// <https://github.com/api-evangelist/gemini/blob/main/plans/gemini-plans-pricing.yml>) shows the
/// 3.x Flash models at a promotional half rate until 2026-12-31 (3.8 Flash: $0.75 / $3.75, then
/// $1.50 / $7.50); the list price is the one that holds from 2027.
pub const GEMINI_USD_PER_MILLION_INPUT_TOKENS: f64 = 1.50;
/// Gemini output price, USD per million tokens, thinking tokens included; see
/// [`GEMINI_USD_PER_MILLION_INPUT_TOKENS`] for the source.
pub const GEMINI_USD_PER_MILLION_OUTPUT_TOKENS: f64 = 7.50;
/// "For Gemini models, a token is equivalent to about 4 characters."
/// <https://ai.google.dev/gemini-api/docs/tokens>, read 2026-12-03.
pub const CHARS_PER_TOKEN: f64 = 4.0;
/// Memory at which a function has one vCPU (see the module's doc).
pub const MB_PER_VCPU: f64 = 1769.0;
/// Lambda's GB-seconds count memory in GiB: 512 MB is 0.5 GB.
const MB_PER_GB: f64 = 1024.0;

/// The memory sizes weighed for each function.
pub const MEMORY_SIZES_MB: [u32; 3] = [128, 256, 512];

/// template.yaml: the API's MemorySize.
pub const TEMPLATE_API_MB: u32 = 256;
/// template.yaml: the generator's MemorySize.
pub const TEMPLATE_GENERATOR_MB: u32 = 512;
/// template.yaml: the MSK trigger's BatchSize.
pub const TEMPLATE_BATCH_SIZE: u32 = 10;
/// `GENERATION_CONCURRENCY` in the template and in this benchmark.
pub const CONCURRENCY: u32 = 16;
/// Gemini's latency for a 5-question answer in the cost table (the stand-in's is 200 ms).
pub const REAL_GEMINI_LATENCY: Duration = Duration::from_secs(4);
/// The `batch` benchmark's worst batch time over its ideal, `ceil(B / C) × latency` (C = 32).
pub const BATCH_OVERHEAD: f64 = 1.035;
/// What the API waits for per request: an MSK `acks=all` produce. An assumption: the mock
/// broker is in-process and measures none.
pub const MSK_PRODUCE_WAIT: Duration = Duration::from_millis(5);
/// A size is enough when peak RSS × this fits in it (the rest is Lambda's and the heap's slack)...
pub const RSS_MARGIN: u64 = 2;
/// ...and its CPU work, stretched to its share of a vCPU, is at most this share of its wait.
pub const CPU_SHARE_OF_WAIT: f64 = 0.10;

/// What the `memory` benchmark measured, on a whole core.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The API's CPU per invocation.
    pub api_cpu: Duration,
    /// The API's peak RSS, in kB.
    pub api_peak_kb: u64,
    /// The generator's CPU per record in batches of 10.
    pub record_cpu_10: Duration,
    /// The generator's CPU per record in batches of 100.
    pub record_cpu_100: Duration,
    /// The generator's peak RSS, in kB.
    pub generator_peak_kb: u64,
    /// The API's CPU from exec through its first invocation.
    pub api_start_cpu: Duration,
    /// The generator's CPU from exec through a first batch of one record.
    pub generator_start_cpu: Duration,
}

/// The smallest of [`MEMORY_SIZES_MB`] that holds `peak_kb` with margin and runs `cpu` within
/// its share of `wait`; `None` when none does.
pub fn smallest_enough(peak_kb: u64, cpu: Duration, wait: Duration) -> Option<u32> {
    MEMORY_SIZES_MB.into_iter().find(|&size| {
        peak_kb * RSS_MARGIN <= u64::from(size) * 1024
            && cpu_at(cpu, size).as_secs_f64() <= CPU_SHARE_OF_WAIT * wait.as_secs_f64()
    })
}

/// The workload of `m` at the given sizes and BatchSize: the API waits for the broker then does
/// its CPU work at its share of a vCPU; the generator waits for Gemini in waves then does its
/// CPU work (an upper bound: most of it overlaps the waiting). Tokens from [`prompt_chars`] and
/// [`answer_chars`].
pub fn workload(m: &Measured, api_mb: u32, generator_mb: u32, batch: u32) -> Workload {
    let record_cpu = if batch >= 100 {
        m.record_cpu_100
    } else {
        m.record_cpu_10
    };
    Workload {
        api_memory_mb: api_mb,
        api_duration: MSK_PRODUCE_WAIT + cpu_at(m.api_cpu, api_mb),
        generator_memory_mb: generator_mb,
        batch_duration: batch_wall(batch, CONCURRENCY, REAL_GEMINI_LATENCY, BATCH_OVERHEAD)
            + cpu_at(record_cpu * batch, generator_mb),
        batch_size: batch,
        input_tokens: tokens(prompt_chars()),
        output_tokens: tokens(answer_chars()),
    }
}

/// How long `cpu` of work (measured on a whole core) takes with `memory_mb`'s share of a vCPU.
pub fn cpu_at(cpu: Duration, memory_mb: u32) -> Duration {
    cpu.mul_f64(MB_PER_VCPU / f64::from(memory_mb))
}

/// The generator's wall time for a batch: `ceil(batch / concurrency)` waves of Gemini calls,
/// times `overhead` (the `batch` benchmark measures ≤ 1.035 at C = 16 and 32).
pub fn batch_wall(batch: u32, concurrency: u32, gemini_latency: Duration, overhead: f64) -> Duration {
    (gemini_latency * batch.div_ceil(concurrency.max(1))).mul_f64(overhead)
}

/// Tokens for `chars` characters of text, at [`CHARS_PER_TOKEN`].
pub fn tokens(chars: usize) -> f64 {
    chars as f64 / CHARS_PER_TOKEN
}

/// Characters of one `generateContent` request as the generator builds it for a 5-question
/// medium request: the system instruction, the user parts and the response schema (which the
/// API counts as prompt).
pub fn prompt_chars() -> usize {
    let request = GenerationRequest {
        request_id: "bench-0".into(),
        topic: "Python Loops".into(),
        num_questions: 5,
        difficulty: Difficulty::Medium,
        context: None,
    };
    let body = build_request(&request, DEFAULT_THINKING_LEVEL);
    let texts = |parts: &Value| -> usize {
        parts
            .as_array()
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .map(str::len)
                    .sum()
            })
            .unwrap_or(0)
    };
    texts(&body["systemInstruction"]["parts"])
        + texts(&body["contents"][0]["parts"])
        + body["generationConfig"]["responseSchema"].to_string().len()
}

/// Characters of a 5-question answer: the JSON the model writes, of the stand-in's questions
/// (four options of a sentence each, a one-sentence explanation), which are as long as real ones.
pub fn answer_chars() -> usize {
    let questions = qgen_contract::offline::questions("Python Loops", 5, Difficulty::Medium);
    json!({ "questions": questions }).to_string().len()
}

/// The deployment and workload a cost is computed for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// The API function's MemorySize.
    pub api_memory_mb: u32,
    /// The API's billed time per invocation: its wait on the broker plus its CPU at that size.
    pub api_duration: Duration,
    /// The generator's MemorySize.
    pub generator_memory_mb: u32,
    /// The generator's billed time per invocation (one batch).
    pub batch_duration: Duration,
    /// Records per generator invocation (the event source mapping's BatchSize).
    pub batch_size: u32,
    /// Gemini input tokens per request.
    pub input_tokens: f64,
    /// Gemini output tokens per request (answer and thinking).
    pub output_tokens: f64,
}

/// USD per million requests, by line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    /// API Lambda: one request per API Gateway invocation.
    pub api_requests: f64,
    /// API Lambda: GB-seconds.
    pub api_compute: f64,
    /// Generator Lambda: one request per batch.
    pub generator_requests: f64,
    /// Generator Lambda: GB-seconds, the batch's time shared by its records.
    pub generator_compute: f64,
    /// Gemini input tokens.
    pub gemini_input: f64,
    /// Gemini output tokens.
    pub gemini_output: f64,
}

impl Cost {
    /// Both Lambda functions.
    pub fn lambda(&self) -> f64 {
        self.api_requests + self.api_compute + self.generator_requests + self.generator_compute
    }

    /// Gemini.
    pub fn gemini(&self) -> f64 {
        self.gemini_input + self.gemini_output
    }

    /// Everything.
    pub fn total(&self) -> f64 {
        self.lambda() + self.gemini()
    }
}

/// Lambda bills duration rounded up to the millisecond.
fn billed_seconds(duration: Duration) -> f64 {
    duration.as_micros().div_ceil(1000) as f64 / 1000.0
}

/// USD per million requests of `w`.
pub fn cost_per_million(w: &Workload) -> Cost {
    const MILLION: f64 = 1e6;
    let gb = |mb: u32| f64::from(mb) / MB_PER_GB;
    let invocations = MILLION / f64::from(w.batch_size.max(1));
    Cost {
        api_requests: MILLION * LAMBDA_USD_PER_REQUEST,
        api_compute: MILLION
            * gb(w.api_memory_mb)
            * billed_seconds(w.api_duration)
            * LAMBDA_ARM64_USD_PER_GB_SECOND,
        generator_requests: invocations * LAMBDA_USD_PER_REQUEST,
        generator_compute: invocations
            * gb(w.generator_memory_mb)
            * billed_seconds(w.batch_duration)
            * LAMBDA_ARM64_USD_PER_GB_SECOND,
        gemini_input: MILLION * w.input_tokens * GEMINI_USD_PER_MILLION_INPUT_TOKENS / MILLION,
        gemini_output: MILLION * w.output_tokens * GEMINI_USD_PER_MILLION_OUTPUT_TOKENS / MILLION,
    }
}

/// Prints `cost` as one row of the cost table.
pub fn print_row(label: &str, cost: &Cost) {
    println!(
        "    {label:<38} API ${:>5.2} + {:>5.2}   generator ${:>5.2} + {:>5.2}   Gemini ${:>7.2} + {:>7.2}   total ${:>8.2}   (Lambda {:.3} %)",
        cost.api_requests,
        cost.api_compute,
        cost.generator_requests,
        cost.generator_compute,
        cost.gemini_input,
        cost.gemini_output,
        cost.total(),
        100.0 * cost.lambda() / cost.total()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            api_memory_mb: 1024,
            api_duration: Duration::from_secs(1),
            generator_memory_mb: 1024,
            batch_duration: Duration::from_secs(1),
            batch_size: 1,
            input_tokens: 0.0,
            output_tokens: 0.0,
        }
    }

    #[test]
    fn a_million_one_second_one_gb_invocations_cost_the_list_price() {
        let cost = cost_per_million(&workload());
        // 1 GB × 1 s × 1e6 = 1e6 GB-s at $0.0000133334 = $13.33; 1e6 requests = $0.20.
        assert!((cost.api_compute - 13.3334).abs() < 1e-9, "{cost:?}");
        assert!((cost.api_requests - 0.20).abs() < 1e-12, "{cost:?}");
        assert_eq!(cost.api_compute, cost.generator_compute);
    }

    #[test]
    fn memory_is_in_mebibytes_and_512_mb_is_half_a_gb() {
        let half = cost_per_million(&Workload {
            api_memory_mb: 512,
            ..workload()
        });
        assert!((half.api_compute - 13.3334 / 2.0).abs() < 1e-9, "{half:?}");
    }

    #[test]
    fn a_batch_shares_one_invocation_and_its_duration_among_its_records() {
        let batched = cost_per_million(&Workload {
            batch_size: 10,
            ..workload()
        });
        assert!((batched.generator_requests - 0.02).abs() < 1e-12, "{batched:?}");
        assert!((batched.generator_compute - 1.33334).abs() < 1e-9, "{batched:?}");
        assert!(
            (batched.api_requests - 0.20).abs() < 1e-12,
            "the API is per request"
        );
    }

    #[test]
    fn tokens_are_priced_per_million_and_per_request() {
        let cost = cost_per_million(&Workload {
            input_tokens: 1000.0,
            output_tokens: 100.0,
            ..workload()
        });
        // A million requests of 1,000 input tokens are 1e9 tokens: 1,000 × $1.50.
        assert!((cost.gemini_input - 1500.0).abs() < 1e-6, "{cost:?}");
        assert!((cost.gemini_output - 750.0).abs() < 1e-6, "{cost:?}");
        assert!((cost.total() - cost.lambda() - 2250.0).abs() < 1e-6);
    }

    #[test]
    fn duration_is_billed_by_the_millisecond_rounded_up() {
        assert_eq!(billed_seconds(Duration::from_micros(1)), 0.001);
        assert_eq!(billed_seconds(Duration::from_micros(1001)), 0.002);
        assert_eq!(billed_seconds(Duration::from_millis(4140)), 4.14);
    }

    #[test]
    fn cpu_stretches_by_1769_over_memory_and_batches_wait_in_waves() {
        assert_eq!(
            cpu_at(Duration::from_millis(1769), 1769),
            Duration::from_millis(1769)
        );
        assert_eq!(
            cpu_at(Duration::from_micros(128), 128),
            Duration::from_micros(1769)
        );
        let latency = Duration::from_secs(4);
        assert_eq!(batch_wall(10, 16, latency, 1.0), latency);
        assert_eq!(batch_wall(100, 16, latency, 1.0), latency * 7);
        assert_eq!(batch_wall(16, 16, latency, 1.5), Duration::from_secs(6));
    }

    #[test]
    fn the_smallest_size_needs_room_for_twice_the_peak_and_a_tenth_of_the_wait_in_cpu() {
        let wait = Duration::from_secs(4);
        assert_eq!(
            smallest_enough(20 * 1024, Duration::from_millis(1), wait),
            Some(128)
        );
        assert_eq!(
            smallest_enough(100 * 1024, Duration::from_millis(1), wait),
            Some(256)
        );
        // 40 ms of CPU is 553 ms at 128 MB (over 400 ms), 276 ms at 256 MB.
        assert_eq!(
            smallest_enough(20 * 1024, Duration::from_millis(40), wait),
            Some(256)
        );
        assert_eq!(smallest_enough(20 * 1024, Duration::from_secs(9), wait), None);
    }

    #[test]
    fn the_prompt_and_answer_are_a_few_thousand_characters() {
        let (prompt, answer) = (prompt_chars(), answer_chars());
        assert!((1_000..20_000).contains(&prompt), "{prompt}");
        assert!((1_000..10_000).contains(&answer), "{answer}");
        assert_eq!(tokens(4_000), 1_000.0);
    }
}

//! What an operator asks ([`Options`], the options of `recommend` on the command line) and what
//! the planner answers ([`Answer`], printed as the template's parameters), and the sweep's table of
//! recommendations for a few rates ([`table`]).

use std::fmt::{self, Display, Write};

use crate::file::ModelFile;
use crate::model::{Latency, Model, Shape};
use crate::recommend::{MAX_WAIT, Recommendation, retries};
use crate::{P99_TARGET, PRODUCTION_LATENCY, TEMPLATE_BATCHING_WINDOW, deployed};

/// What `recommend` is asked: a request rate and what it assumes of Gemini and the trigger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Target requests per second.
    pub rate: f64,
    /// Gemini's median latency, seconds (positive).
    pub gemini_p50: f64,
    /// Gemini's 99th-percentile latency, seconds (positive; taken as the median when below it).
    pub gemini_p99: f64,
    /// Gemini's requests-per-minute quota, if it should be checked (positive).
    pub quota_rpm: Option<f64>,
    /// `MaximumBatchingWindowInSeconds` of the trigger (a negative window is taken as 0).
    pub batching_window: f64,
    /// Largest request-to-response p99 to accept, seconds (positive).
    pub p99_target: f64,
}

impl Options {
    /// `rate` with the defaults: Gemini at 4 s / 12 s, no quota, the template's batching window
    /// (1 s) and p99 alarm (60 s).
    pub fn for_rate(rate: f64) -> Self {
        Options {
            rate,
            gemini_p50: PRODUCTION_LATENCY.p50,
            gemini_p99: PRODUCTION_LATENCY.p99,
            quota_rpm: None,
            batching_window: TEMPLATE_BATCHING_WINDOW,
            p99_target: P99_TARGET,
        }
    }

    /// Gemini's latency as the simulation draws it.
    pub fn latency(&self) -> Latency {
        Latency {
            p50: self.gemini_p50,
            p99: self.gemini_p99.max(self.gemini_p50),
        }
    }

    fn check(&self) -> Result<(), InvalidOption> {
        let positive = [
            ("gemini_p50", Some(self.gemini_p50)),
            ("gemini_p99", Some(self.gemini_p99)),
            ("quota_rpm", self.quota_rpm),
            ("p99_target", Some(self.p99_target)),
        ];
        for (option, value) in positive {
            if let Some(value) = value.filter(|v| !(*v > 0.0 && v.is_finite())) {
                return Err(InvalidOption { option, value });
            }
        }
        Ok(())
    }
}

/// An option that must be a positive number is not.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{option} must be a positive number, not {value}")]
pub struct InvalidOption {
    /// The field of [`Options`].
    pub option: &'static str,
    /// What it was.
    pub value: f64,
}

/// The recommendation for one rate, with the model it came from. Its `Display` is what
/// `recommend` prints.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The model file answered from.
    pub model: ModelFile,
    /// What was asked.
    pub options: Options,
    /// What to deploy, and what it is predicted to do.
    pub recommendation: Recommendation,
    /// `MaximumRetryAttempts` for the recommended `Timeout`.
    pub max_retry_attempts: u32,
}

/// The recommendation for `options`, from the model compiled in.
pub fn recommend(options: &Options) -> Result<Answer, InvalidOption> {
    recommend_with(&ModelFile::committed(), options)
}

/// The recommendation for `options`, from `file` (a sweep's `model.json` read back).
pub fn recommend_with(file: &ModelFile, options: &Options) -> Result<Answer, InvalidOption> {
    options.check()?;
    let model = deployed(&file.model, options.batching_window.max(0.0));
    let recommendation = crate::recommend::recommend(
        &model,
        options.rate,
        options.latency(),
        options.quota_rpm,
        options.p99_target,
    );
    Ok(Answer {
        model: file.clone(),
        options: *options,
        max_retry_attempts: retries(recommendation.timeout),
        recommendation,
    })
}

impl Display for Answer {
    /// The model's date and errors, then the template's parameters and what they predict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, r, latency) = (&self.model, &self.recommendation, self.options.latency());
        writeln!(
            f,
            "model of {} (held-out error: throughput {:.1} %, p50 {:.1} %)",
            file.fitted_at,
            file.throughput_error * 100.0,
            file.p50_error * 100.0
        )?;
        writeln!(
            f,
            "for {} requests/s with Gemini at p50 {:.2} s, p99 {:.2} s:",
            self.options.rate, latency.p50, latency.p99
        )?;
        writeln!(f, "  partitions of question.request  {}", r.shape.partitions)?;
        writeln!(f, "  BatchSize                       {}", r.shape.batch_size)?;
        writeln!(f, "  GenerationConcurrency           {}", r.shape.concurrency)?;
        writeln!(f, "  generator Timeout               {} s", r.timeout)?;
        writeln!(
            f,
            "  MaximumRetryAttempts            {} (holds covering GeminiMaxWaitSeconds {MAX_WAIT:.0})",
            self.max_retry_attempts
        )?;
        writeln!(
            f,
            "  MinimumPollers / MaximumPollers {} / {}",
            r.pollers.0, r.pollers.1
        )?;
        writeln!(
            f,
            "  predicted: capacity {:.1} responses/s ({:.0} % used); request to response p50 {:.2} s, p99 {:.2} s",
            r.capacity,
            r.utilisation * 100.0,
            r.steady.p50,
            r.steady.p99
        )?;
        if let Some(warning) = &r.warning {
            writeln!(f, "  WARNING: {warning}")?;
        }
        Ok(())
    }
}

fn seconds(s: f64) -> String {
    format!("{:.2} s", s)
}

/// The sweep's table: the recommendation for a few rates (1 to 200 a second) at the template's
/// batching window, and what the template's defaults carry.
pub fn table(model: &Model, latency: Latency, quota_rpm: Option<f64>, p99_target: f64) -> String {
    let model = &deployed(model, TEMPLATE_BATCHING_WINDOW);
    let mut text = format!(
        "\nrecommended for Gemini p50 {} / p99 {}, batching window {} (simulated; utilisation <= 70 %, p99 <= {}):\n",
        seconds(latency.p50),
        seconds(latency.p99),
        seconds(model.batching_window),
        seconds(p99_target)
    );
    text +=
        "  req/s  partitions  BatchSize  concurrency  capacity  steady p50  steady p99  Timeout  pollers\n";
    for rate in [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0] {
        let r = crate::recommend::recommend(model, rate, latency, quota_rpm, p99_target);
        row(&mut text, rate, &r);
    }
    // The template's defaults: 3 partitions (`topics`), BatchSize 10, GenerationConcurrency 16.
    let template = Shape {
        partitions: 3,
        batch_size: 10,
        concurrency: 16,
    };
    let _ = writeln!(
        text,
        "  the template's defaults (3 partitions, BatchSize 10, GenerationConcurrency 16) carry {:.1} responses/s at most",
        model.capacity(template, latency, quota_rpm)
    );
    text
}

/// One recommendation as a row of [`table`] (and its warning, if any).
fn row(text: &mut String, rate: f64, r: &Recommendation) {
    let _ = writeln!(
        text,
        "  {:>5.0}  {:>10}  {:>9}  {:>11}  {:>6.1}/s  {:>10}  {:>10}  {:>5} s  {:>3}-{:<3}",
        rate,
        r.shape.partitions,
        r.shape.batch_size,
        r.shape.concurrency,
        r.capacity,
        seconds(r.steady.p50),
        seconds(r.steady.p99),
        r.timeout,
        r.pollers.0,
        r.pollers.1
    );
    if let Some(warning) = &r.warning {
        let _ = writeln!(text, "         WARNING: {warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter's `Default:` in `template.yaml` (the line under `  NAME:` that says it).
    fn template_default(name: &str) -> f64 {
        let template = include_str!("../../template.yaml");
        let at = template
            .find(&format!("\n  {name}:\n"))
            .unwrap_or_else(|| panic!("no parameter {name}"));
        let default = template[at..]
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with("    "))
            .find_map(|line| line.trim().strip_prefix("Default: "))
            .unwrap_or_else(|| panic!("{name} has no default"));
        default.parse().unwrap()
    }

    /// The API admits more than the default trigger carries at a 4 s Gemini; the defaults are
    /// consistent because a burst at the API's limit drains before its records age out.
    #[test]
    fn a_burst_at_the_apis_limit_drains_before_the_default_triggers_records_age_out() {
        let file = ModelFile::committed();
        let model = deployed(&file.model, TEMPLATE_BATCHING_WINDOW);
        let shape = Shape {
            partitions: template_default("RequestTopicPartitions") as u32,
            batch_size: template_default("BatchSize") as u32,
            concurrency: template_default("GenerationConcurrency") as u32,
        };
        let carried = model.capacity(shape, PRODUCTION_LATENCY, None);
        let admitted = template_default("ApiThrottlingRateLimit");
        let record_age = template_default("MaximumRecordAgeInSeconds");

        // The record admitted last in a burst of T seconds at the API's limit waits behind a
        // backlog of (admitted - carried) x T, drained at `carried`: the longest burst whose
        // last record is answered before it is MaximumRecordAgeInSeconds old.
        let longest = record_age * carried / (admitted - carried);
        println!(
            "default trigger carries {carried:.2}/s; the API admits {admitted}/s: a burst of up to {:.0} min drains in time",
            longest / 60.0
        );
        assert!(
            carried < admitted,
            "the defaults carry what the API admits: no limit to check"
        );
        assert!(
            longest >= 20.0 * 60.0,
            "a burst of {longest:.0} s at the API's limit ages out"
        );
    }

    #[test]
    fn the_answer_reads_as_the_templates_parameters_from_the_committed_model() {
        let answer = recommend(&Options::for_rate(10.0)).unwrap();
        let text = answer.to_string();
        let r = &answer.recommendation;
        assert!(
            text.starts_with(&format!("model of {} ", ModelFile::committed().fitted_at)),
            "{text}"
        );
        assert!(text.contains("for 10 requests/s with Gemini at p50 4.00 s, p99 12.00 s:\n"));
        assert!(text.contains(&format!(
            "\n  partitions of question.request  {}\n",
            r.shape.partitions
        )));
        assert!(text.contains(&format!(
            "\n  MaximumRetryAttempts            {} (",
            retries(r.timeout)
        )));
        assert!(r.steady.p99 <= P99_TARGET && r.warning.is_none(), "{text}");
    }

    #[test]
    fn options_that_must_be_positive_are_refused_when_not() {
        let zero_p50 = Options {
            gemini_p50: 0.0,
            ..Options::for_rate(5.0)
        };
        let error = recommend(&zero_p50).unwrap_err();
        assert_eq!(error.option, "gemini_p50");
        let no_quota = Options {
            quota_rpm: Some(f64::NAN),
            ..Options::for_rate(5.0)
        };
        assert_eq!(recommend(&no_quota).unwrap_err().option, "quota_rpm");
        // A p99 under the median is read as the median, as the command line always did.
        let low_p99 = Options {
            gemini_p99: 1.0,
            ..Options::for_rate(5.0)
        };
        assert_eq!(low_p99.latency(), Latency { p50: 4.0, p99: 4.0 });
    }
}

//! The per-request tally of Gemini calls: how many, their latency, tokens and the model that
//! answered, recorded on the request's span and emitted as EMF metrics per model.

use std::time::Duration;

use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::metrics::GENERATOR;

use super::reply::Usage;
use crate::source::Calls;

/// Totals over the calls made for one request, recorded on the request's span and emitted as
/// metrics per model.
#[derive(Default)]
pub(super) struct Tally {
    calls: u64,
    latency_ms: u64,
    usage: Usage,
    /// The model of the last call.
    model: Option<String>,
}

impl Tally {
    /// Counts one call to `model`.
    pub(super) fn add(&mut self, model: &str, latency_ms: u64, usage: Usage) {
        self.calls += 1;
        self.latency_ms += latency_ms;
        self.usage.add(usage);
        if self.model.as_deref() != Some(model) {
            self.model = Some(model.to_owned());
        }
    }

    /// Writes the totals on the current span (the request's).
    pub(super) fn record(&self) {
        let span = tracing::Span::current();
        span.record("gemini_calls", self.calls);
        span.record("gemini_latency_ms", self.latency_ms);
        if let Some(model) = &self.model {
            span.record("gemini_model", model.as_str());
        }
        span.record("prompt_tokens", self.usage.prompt_token_count);
        span.record("cached_tokens", self.usage.cached_content_token_count);
        span.record("output_tokens", self.usage.candidates_token_count);
        span.record("thoughts_tokens", self.usage.thoughts_token_count);
        span.record("total_tokens", self.usage.total_token_count);
    }

    /// The totals as one EMF record with the dimension `Model` (the model of the last call), or
    /// nothing when no call was made. What a request costs is a sum over these metrics (README,
    /// "What a request costs").
    pub(super) fn metrics(&self) -> Option<Metrics> {
        let model = self.model.as_ref()?;
        Some(
            Metrics::new(GENERATOR)
                .dimension("Model", model.as_str())
                .count(Metric::GeminiCalls, self.calls)
                .duration(Metric::GeminiLatency, Duration::from_millis(self.latency_ms))
                .count(Metric::GeminiPromptTokens, self.usage.prompt_token_count)
                .count(Metric::GeminiCachedTokens, self.usage.cached_content_token_count)
                .count(Metric::GeminiOutputTokens, self.usage.candidates_token_count)
                .count(Metric::GeminiThoughtsTokens, self.usage.thoughts_token_count),
        )
    }

    /// The calls made, or nothing when none was.
    pub(super) fn calls(&self) -> Option<Calls> {
        Some(Calls {
            count: self.calls,
            latency: Duration::from_millis(self.latency_ms),
            model: self.model.clone()?,
        })
    }

    /// Emits [`Tally::metrics`].
    pub(super) fn emit(&self) {
        if let Some(metrics) = self.metrics() {
            metrics.emit();
        }
    }
}

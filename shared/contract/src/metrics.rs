//! The CloudWatch metrics the two functions emit, as Embedded Metric Format records in the
//! namespace [`NAMESPACE`]: the one list the code emits from (`qgen_adapters::telemetry` takes a
//! [`Metric`], not a name), that the dashboard and alarms of `template.yaml` read (a test checks
//! every name and dimension they use against it), and that `contracts/metrics.json` publishes.
//!
//! Every record carries the dimension [`SERVICE_DIMENSION`] and at most one more, the metric's
//! [`Metric::dimension`]; each value is published under both dimension sets.

use serde_json::{Value, json};

/// The CloudWatch namespace of every metric the service emits.
pub const NAMESPACE: &str = "QuestionGeneration";
/// The dimension every record carries: which function emitted it.
pub const SERVICE_DIMENSION: &str = "Service";
/// The `Service` of the API's metrics.
pub const API: &str = "question-api";
/// The `Service` of the generator's metrics.
pub const GENERATOR: &str = "question-generator";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
}

impl Unit {
    /// CloudWatch's name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Every metric the functions emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// A request the broker acknowledged (202).
    Accepted,
    /// A request the broker did not acknowledge in time (503).
    PublishFailed,
    /// How long the API waited for the broker.
    PublishLatency,
    /// A request refused with a 4xx, by `Reason` (its error code).
    Rejected,
    /// Records in a batch.
    Records,
    /// Poison records sent to the DLQ.
    DeadLettered,
    /// Responses generated, by `Outcome` (`completed` or the failure's code).
    Responses,
    /// How long generating a response took, by `Outcome`.
    GenerationLatency,
    /// From the request event's `timestamp` to the broker's acknowledgement of its response, by
    /// `Outcome`: the latency the content service feels.
    RequestToResponse,
    /// Duplicates answered from the idempotency table.
    IdempotentReplays,
    /// Gemini calls made for a request, by `Model`.
    GeminiCalls,
    /// Their total latency, by `Model`.
    GeminiLatency,
    /// Prompt tokens, cached ones included, by `Model`.
    GeminiPromptTokens,
    /// Prompt tokens served from the cache, by `Model`.
    GeminiCachedTokens,
    /// Answer tokens, by `Model`.
    GeminiOutputTokens,
    /// Thinking tokens (billed as output), by `Model`.
    GeminiThoughtsTokens,
    /// Per-minute quota answers (429 with a `retryDelay`) Gemini gave: a pacing signal, waited
    /// out, never a failure.
    GeminiThrottled,
    /// HTTP 402 answers: the project's prepaid credit is used up (alarmed).
    GeminiCreditExhausted,
    /// Requests held: Gemini as a whole could not answer before the invocation ended, so the
    /// record was named in the partial batch response and waits in Kafka.
    Held,
    /// How long a held request had waited when it was held, from its request event's
    /// `timestamp` (alarmed on its maximum).
    HeldFor,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 20] = [
        Metric::Accepted,
        Metric::PublishFailed,
        Metric::PublishLatency,
        Metric::Rejected,
        Metric::Records,
        Metric::DeadLettered,
        Metric::Responses,
        Metric::GenerationLatency,
        Metric::RequestToResponse,
        Metric::IdempotentReplays,
        Metric::GeminiCalls,
        Metric::GeminiLatency,
        Metric::GeminiPromptTokens,
        Metric::GeminiCachedTokens,
        Metric::GeminiOutputTokens,
        Metric::GeminiThoughtsTokens,
        Metric::GeminiThrottled,
        Metric::GeminiCreditExhausted,
        Metric::Held,
        Metric::HeldFor,
    ];

    /// The metric's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accepted => "Accepted",
            Metric::PublishFailed => "PublishFailed",
            Metric::PublishLatency => "PublishLatency",
            Metric::Rejected => "Rejected",
            Metric::Records => "Records",
            Metric::DeadLettered => "DeadLettered",
            Metric::Responses => "Responses",
            Metric::GenerationLatency => "GenerationLatency",
            Metric::RequestToResponse => "RequestToResponse",
            Metric::IdempotentReplays => "IdempotentReplays",
            Metric::GeminiCalls => "GeminiCalls",
            Metric::GeminiLatency => "GeminiLatency",
            Metric::GeminiPromptTokens => "GeminiPromptTokens",
            Metric::GeminiCachedTokens => "GeminiCachedTokens",
            Metric::GeminiOutputTokens => "GeminiOutputTokens",
            Metric::GeminiThoughtsTokens => "GeminiThoughtsTokens",
            Metric::GeminiThrottled => "GeminiThrottled",
            Metric::GeminiCreditExhausted => "GeminiCreditExhausted",
            Metric::Held => "Held",
            Metric::HeldFor => "HeldFor",
        }
    }

    /// Its unit.
    pub fn unit(self) -> Unit {
        match self {
            Metric::PublishLatency
            | Metric::GenerationLatency
            | Metric::RequestToResponse
            | Metric::GeminiLatency
            | Metric::HeldFor => Unit::Milliseconds,
            _ => Unit::Count,
        }
    }

    /// The function that emits it (the value of its `Service` dimension).
    pub fn service(self) -> &'static str {
        match self {
            Metric::Accepted | Metric::PublishFailed | Metric::PublishLatency | Metric::Rejected => API,
            _ => GENERATOR,
        }
    }

    /// The dimension it carries besides `Service`, if any.
    pub fn dimension(self) -> Option<&'static str> {
        match self {
            Metric::Rejected => Some("Reason"),
            Metric::Responses | Metric::GenerationLatency | Metric::RequestToResponse => Some("Outcome"),
            Metric::GeminiCalls
            | Metric::GeminiLatency
            | Metric::GeminiPromptTokens
            | Metric::GeminiCachedTokens
            | Metric::GeminiOutputTokens
            | Metric::GeminiThoughtsTokens => Some("Model"),
            _ => None,
        }
    }

    /// The metric with this name.
    pub fn named(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The dimension sets it is published under: `[Service]`, and `[Service, dimension]` when it
    /// has one.
    pub fn dimension_sets(self) -> Vec<Vec<&'static str>> {
        let mut sets = vec![vec![SERVICE_DIMENSION]];
        if let Some(dimension) = self.dimension() {
            sets.push(vec![SERVICE_DIMENSION, dimension]);
        }
        sets
    }
}

/// `contracts/metrics.json`: the namespace and every metric with its unit, service and dimension
/// sets.
pub fn catalog() -> Value {
    let metrics: Vec<Value> = Metric::ALL
        .into_iter()
        .map(|m| {
            json!({
                "name": m.name(),
                "unit": m.unit().as_str(),
                "service": m.service(),
                "dimensions": m.dimension_sets(),
            })
        })
        .collect();
    json!({"namespace": NAMESPACE, "metrics": metrics})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_one_name_and_is_found_by_it() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        for metric in Metric::ALL {
            assert_eq!(Metric::named(metric.name()), Some(metric));
        }
        assert_eq!(Metric::named("Nonsense"), None);
    }

    #[test]
    fn the_catalog_lists_units_services_and_dimension_sets() {
        let catalog = catalog();
        let latency = catalog["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "RequestToResponse")
            .unwrap();
        assert_eq!(
            latency,
            &json!({"name": "RequestToResponse", "unit": "Milliseconds", "service": "question-generator",
                "dimensions": [["Service"], ["Service", "Outcome"]]})
        );
        assert_eq!(Metric::Accepted.dimension_sets(), [vec!["Service"]]);
        assert_eq!(Metric::Rejected.service(), "question-api");
    }
}

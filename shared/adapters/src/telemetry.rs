//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout that CloudWatch
//! Logs turns into metrics, with no API call, no agent and no extra latency in the function.
//!
//! A [`Metrics`] record is built per outcome (a request accepted or rejected, a response
//! published) and written with [`Metrics::emit`]. It takes a [`Metric`] of the catalog in
//! `qgen_contract::metrics`, never a free name, so the dashboard and alarms can be checked against
//! what the code emits. The namespace is [`NAMESPACE`]; every record has the dimension `Service`
//! (the function) and may add one more (`Reason`, `Outcome`, `Model`), so each metric is published
//! both per service and per service and that dimension.
//!
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::io::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};

pub use qgen_contract::metrics::{Metric, NAMESPACE, SERVICE_DIMENSION, Unit};

/// Metrics could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Writing the line failed (stdout closed).
    #[error("could not write metrics")]
    Write(#[source] std::io::Error),
}

/// One EMF record: a service, at most one extra dimension, and a few metric values.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    service: &'static str,
    dimension: Option<(&'static str, String)>,
    values: Vec<(Metric, f64)>,
    properties: Vec<(&'static str, Value)>,
}

impl Metrics {
    /// A record for `service` (e.g. `question-api`).
    pub fn new(service: &'static str) -> Self {
        Metrics {
            service,
            dimension: None,
            values: Vec::with_capacity(2),
            properties: Vec::new(),
        }
    }

    /// Adds the extra dimension `name` = `value` (e.g. `Reason` = `invalid_num_questions`).
    /// Keep values few and stable: every distinct value is a new CloudWatch metric.
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimension = Some((name, value.into()));
        self
    }

    /// Adds a count.
    pub fn count(mut self, metric: Metric, n: u64) -> Self {
        debug_assert_eq!(metric.unit(), Unit::Count, "{metric:?}");
        self.values.push((metric, n as f64));
        self
    }

    /// Adds a duration, in milliseconds.
    pub fn duration(mut self, metric: Metric, elapsed: Duration) -> Self {
        debug_assert_eq!(metric.unit(), Unit::Milliseconds, "{metric:?}");
        self.values.push((metric, elapsed.as_secs_f64() * 1000.0));
        self
    }

    /// Adds a property: searchable in Logs Insights, not a metric (e.g. a request id).
    pub fn property(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.properties.push((name, value.into()));
        self
    }

    /// The EMF document, stamped `timestamp_ms` (milliseconds since the epoch).
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut dimension_sets = vec![json!([SERVICE_DIMENSION])];
        let mut root = Map::new();
        root.insert(SERVICE_DIMENSION.into(), self.service.into());
        if let Some((name, value)) = &self.dimension {
            dimension_sets.push(json!([SERVICE_DIMENSION, name]));
            root.insert((*name).into(), value.as_str().into());
        }
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(metric, _)| json!({"Name": metric.name(), "Unit": metric.unit().as_str()}))
            .collect();
        for (metric, value) in &self.values {
            // What the catalog says of each metric is what the record publishes: the dashboard
            // and the alarms are checked against the catalog (tests run with debug assertions).
            debug_assert_eq!(
                (metric.service(), metric.dimension()),
                (self.service, self.dimension.as_ref().map(|(name, _)| *name)),
                "{metric:?} emitted off its catalog entry"
            );
            root.insert(metric.name().into(), json!(value));
        }
        for (name, value) in &self.properties {
            root.insert((*name).into(), value.clone());
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimension_sets,
                    "Metrics": definitions,
                }]
            }),
        );
        Value::Object(root)
    }

    /// Writes the record as one line to `out`.
    pub fn write_to(&self, mut out: impl Write, timestamp_ms: i64) -> Result<(), TelemetryError> {
        let mut line = self.to_json(timestamp_ms).to_string();
        line.push('\n');
        // One write call, so the line is not interleaved with log lines from other tasks.
        out.write_all(line.as_bytes()).map_err(TelemetryError::Write)
    }

    /// Writes the record to stdout, where Lambda's log capture hands it to CloudWatch (unless
    /// [`silence`] was called).
    pub fn emit(&self) {
        if SILENCED.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let captured = CAPTURED.with_borrow_mut(|records| match records {
            Some(records) => {
                records.push(self.to_json(0));
                true
            }
            None => false,
        });
        if captured {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        // `println!` holds the stdout lock for the whole line (no interleaving with log lines)
        // and, unlike a raw write, is captured by the test harness.
        println!("{}", self.to_json(now));
    }
}

static SILENCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops [`Metrics::emit`] from writing, for processes where stdout is a person's terminal
/// (the local stack) rather than CloudWatch.
pub fn silence() {
    SILENCED.store(true, std::sync::atomic::Ordering::Relaxed);
}

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Vec<Value>>> = const { std::cell::RefCell::new(None) };
}

/// Records emitted on this thread while a [`Capture`] lives, instead of on stdout: how tests
/// read the metrics the code emits (a `#[tokio::test]` runs its tasks on the test's thread).
#[derive(Debug)]
pub struct Capture {
    // Bound to the thread that made it.
    _thread: std::marker::PhantomData<*const ()>,
}

/// Starts capturing this thread's records (see [`Capture`]); dropping it stops.
pub fn capture() -> Capture {
    CAPTURED.with_borrow_mut(|records| *records = Some(Vec::new()));
    Capture {
        _thread: std::marker::PhantomData,
    }
}

impl Capture {
    /// The EMF documents emitted so far (stamped 0), oldest first.
    pub fn records(&self) -> Vec<Value> {
        CAPTURED.with_borrow(|records| records.clone().unwrap_or_default())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURED.with_borrow_mut(|records| *records = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_valid_emf_line_with_namespace_dimensions_and_metrics() {
        let metrics = Metrics::new("question-generator")
            .dimension("Outcome", "completed")
            .count(Metric::Responses, 1)
            .duration(Metric::GenerationLatency, Duration::from_micros(2_500))
            .property("request_id", "req-1");
        let mut out = Vec::new();

        metrics.write_to(&mut out, 1_700_000_000_000).unwrap();

        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with('\n'));
        let doc: Value = serde_json::from_str(text.trim_end()).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            json!([["Service"], ["Service", "Outcome"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Responses", "Unit": "Count"}, {"Name": "GenerationLatency", "Unit": "Milliseconds"}])
        );
        // Every dimension and metric named in the directive is a top-level member (EMF's rule).
        assert_eq!(doc["Service"], "question-generator");
        assert_eq!(doc["Outcome"], "completed");
        assert_eq!(doc["Responses"], 1.0);
        assert_eq!(doc["GenerationLatency"], 2.5);
        assert_eq!(doc["request_id"], "req-1");
    }

    #[test]
    fn a_capture_takes_this_threads_records_until_it_is_dropped() {
        let capture = capture();
        Metrics::new("question-generator")
            .count(Metric::Records, 4)
            .emit();
        let other = std::thread::spawn(|| {
            Metrics::new("question-api").count(Metric::Accepted, 1).emit();
        });
        other.join().unwrap();

        let records = capture.records();
        drop(capture);

        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["Records"], 4.0);
        assert!(CAPTURED.with_borrow(Option::is_none));
    }

    #[test]
    #[should_panic(expected = "emitted off its catalog entry")]
    fn a_metric_emitted_without_its_catalog_dimension_is_refused_in_tests() {
        // Responses is published by Outcome: a record without it would leave the dashboard empty.
        Metrics::new("question-generator")
            .count(Metric::Responses, 1)
            .to_json(0);
    }

    #[test]
    fn without_an_extra_dimension_metrics_are_per_service_only() {
        let doc = Metrics::new("question-generator")
            .count(Metric::Records, 4)
            .to_json(0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service"]])
        );
        assert_eq!(doc["Records"], 4.0);
    }

    /// `silence` is process-wide, so it is tried in a child process: this test binary run
    /// again for this one test, which emits a record (after `silence` when asked) and a marker.
    #[test]
    fn silenced_metrics_are_not_written() {
        const TEST: &str = "telemetry::tests::silenced_metrics_are_not_written";
        if let Some(mode) = std::env::var_os("QGEN_SILENCE_CHILD") {
            if mode == "silent" {
                silence();
            }
            Metrics::new("question-api").count(Metric::Accepted, 1).emit();
            println!("child done");
            return;
        }
        let stdout = |mode: &str| {
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env("QGEN_SILENCE_CHILD", mode)
                .output()
                .unwrap();
            assert!(child.status.success(), "{child:?}");
            String::from_utf8(child.stdout).unwrap()
        };

        let loud = stdout("loud");
        let silent = stdout("silent");

        assert!(
            loud.contains("child done") && loud.contains("\"Accepted\":1.0"),
            "{loud}"
        );
        assert!(
            silent.contains("child done") && !silent.contains("Accepted"),
            "{silent}"
        );
    }
}

//! The dashboard and the alarms of `template.yaml` read only metrics the code emits: every metric
//! of the service's namespace they name is in the catalog the code emits from
//! (`qgen_contract::metrics`), under one of the dimension sets it is published with and the
//! function that emits it; and the dashboard shows what an operator needs.

use std::collections::BTreeSet;

use qgen_contract::metrics::{Metric, NAMESPACE, SERVICE_DIMENSION};
use serde_json::Value as Json;
use serde_yaml_ng::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// A metric a dashboard widget or an alarm reads.
#[derive(Debug)]
struct Read {
    /// The resource (and widget) that reads it.
    by: String,
    namespace: String,
    name: String,
    /// Dimension names, in order.
    dimensions: Vec<String>,
    /// The `Service` dimension's value, when it is a literal.
    service: Option<String>,
}

fn resources(template: &Value) -> impl Iterator<Item = (String, &Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, resource)| (name.as_str().unwrap().to_owned(), resource))
}

fn alarm_reads(template: &Value) -> Vec<Read> {
    resources(template)
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, alarm)| {
            let props = &alarm["Properties"];
            let dimensions = props["Dimensions"].as_sequence().cloned().unwrap_or_default();
            Read {
                by: name,
                namespace: props["Namespace"].as_str().unwrap().to_owned(),
                name: props["MetricName"].as_str().unwrap().to_owned(),
                dimensions: dimensions
                    .iter()
                    .map(|d| d["Name"].as_str().unwrap().to_owned())
                    .collect(),
                service: dimensions
                    .iter()
                    .find(|d| d["Name"] == SERVICE_DIMENSION)
                    .and_then(|d| d["Value"].as_str().map(str::to_owned)),
            }
        })
        .collect()
}

/// The dashboard's body with every `${…}` of its `!Sub` replaced, as JSON.
fn dashboard_body(template: &Value) -> Json {
    let body = &template["Resources"]["ServiceDashboard"]["Properties"]["DashboardBody"];
    let Value::Tagged(sub) = body else {
        panic!("DashboardBody is not !Sub: {body:?}")
    };
    let mut text = sub.value.as_str().unwrap().to_owned();
    while let Some(start) = text.find("${") {
        let end = start + text[start..].find('}').unwrap();
        text.replace_range(start..=end, "0");
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}\n{text}"))
}

/// A metric row of a widget: `[namespace, name, dimension, value, …, {options}?]`, or a
/// `SEARCH('{namespace,dimension,…} MetricName="name"', …)` expression.
fn row_read(widget: &str, row: &[Json]) -> Read {
    if let Some(expression) = row[0]["expression"].as_str() {
        let braces = &expression[expression.find('{').unwrap() + 1..expression.find('}').unwrap()];
        let mut schema = braces.split(',').map(|s| s.trim().to_owned());
        let namespace = schema.next().unwrap();
        let name_start = expression.find("MetricName=\"").unwrap() + "MetricName=\"".len();
        let name_end = name_start + expression[name_start..].find('"').unwrap();
        return Read {
            by: widget.to_owned(),
            namespace,
            name: expression[name_start..name_end].to_owned(),
            dimensions: schema.collect(),
            service: None,
        };
    }
    let strings: Vec<&str> = row.iter().map_while(Json::as_str).collect();
    let pairs: Vec<(&str, &str)> = strings[2..].chunks(2).map(|p| (p[0], p[1])).collect();
    Read {
        by: widget.to_owned(),
        namespace: strings[0].to_owned(),
        name: strings[1].to_owned(),
        dimensions: pairs.iter().map(|(k, _)| (*k).to_owned()).collect(),
        service: pairs
            .iter()
            .find(|(k, _)| *k == SERVICE_DIMENSION)
            .map(|(_, v)| (*v).to_owned()),
    }
}

fn dashboard_reads(template: &Value) -> Vec<Read> {
    let body = dashboard_body(template);
    let mut reads = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        let title = widget["properties"]["title"].as_str().unwrap_or("?");
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            reads.push(row_read(title, row.as_array().unwrap()));
        }
    }
    reads
}

/// What is wrong with `read`, if it reads a metric of ours that the code does not emit so.
fn problem(read: &Read) -> Option<String> {
    if read.namespace != NAMESPACE {
        return None;
    }
    let Some(metric) = Metric::named(&read.name) else {
        return Some(format!(
            "{}: {} is not a metric the code emits",
            read.by, read.name
        ));
    };
    if !metric.dimension_sets().iter().any(|set| *set == read.dimensions) {
        return Some(format!(
            "{}: {} is published under {:?}, not {:?}",
            read.by,
            read.name,
            metric.dimension_sets(),
            read.dimensions
        ));
    }
    match &read.service {
        Some(service) if service != metric.service() => Some(format!(
            "{}: {} comes from {}, not {service}",
            read.by,
            read.name,
            metric.service()
        )),
        _ => None,
    }
}

#[test]
fn every_metric_the_dashboard_and_the_alarms_read_is_one_the_code_emits() {
    let template = template();
    let reads: Vec<Read> = alarm_reads(&template)
        .into_iter()
        .chain(dashboard_reads(&template))
        .collect();

    let problems: Vec<String> = reads.iter().filter_map(problem).collect();

    assert!(problems.is_empty(), "{problems:#?}");
    assert!(reads.iter().filter(|r| r.namespace == NAMESPACE).count() >= 15);
}

#[test]
fn the_dashboard_shows_traffic_outcomes_latency_cost_lag_losses_and_the_functions_health() {
    let shown: BTreeSet<String> = dashboard_reads(&template()).into_iter().map(|r| r.name).collect();

    for needed in [
        "Accepted",
        "Rejected",
        "PublishFailed",
        "Responses",
        "RequestToResponse",
        "GeminiLatency",
        "GeminiPromptTokens",
        "GeminiOutputTokens",
        "GeminiThoughtsTokens",
        "OffsetLag",
        "DeadLettered",
        "OnFailureDestinationDeliveredEventCount",
        "DroppedEventCount",
        "Errors",
        "Throttles",
        "Duration",
    ] {
        assert!(
            shown.contains(needed),
            "{needed} is not on the dashboard: {shown:?}"
        );
    }
}

#[test]
fn the_check_finds_a_metric_the_code_does_not_emit_or_emits_otherwise() {
    let read = |name: &str, dimensions: &[&str], service: Option<&str>| Read {
        by: "test".into(),
        namespace: NAMESPACE.into(),
        name: name.into(),
        dimensions: dimensions.iter().map(|d| (*d).to_owned()).collect(),
        service: service.map(str::to_owned),
    };

    assert_eq!(
        problem(&read("RequestToResponse", &["Service", "Outcome"], None)),
        None
    );
    assert!(problem(&read("RequestLatency", &["Service"], None)).is_some());
    assert!(problem(&read("Responses", &["Service", "Model"], None)).is_some());
    assert!(problem(&read("Accepted", &["Service"], Some("question-generator"))).is_some());
}

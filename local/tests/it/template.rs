//! The emulator runs with the settings `template.yaml` deploys, and the functions with the
//! names it sets: the tests read the template and compare its trigger parameters with the
//! emulator's defaults, and its environment variables and table with what the code reads and
//! writes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_local::esm::{EsmConfig, defaults};
use question_generator::config::GeneratorConfig;
use question_generator::idempotency::{EXPIRATION, ID};
use serde_yaml_ng::Value;
use serde_yaml_ng::value::TaggedValue;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn default_of(template: &Value, parameter: &str) -> Value {
    template["Parameters"][parameter]["Default"].clone()
}

/// `!Ref NAME` as the YAML parser reads it.
fn reference(name: &str) -> Value {
    Value::Tagged(Box::new(TaggedValue {
        tag: serde_yaml_ng::value::Tag::new("Ref"),
        value: Value::String(name.into()),
    }))
}

#[test]
fn the_emulator_defaults_are_the_templates_trigger_settings() {
    let template = template();
    let function = &template["Resources"]["QuestionGeneratorFunction"]["Properties"];
    let trigger = &function["Events"]["QuestionRequests"]["Properties"];
    let kafka =
        GeneratorConfig::from_lookup(|var| (var == "KAFKA_BOOTSTRAP_SERVERS").then(|| "b:9092".into()))
            .unwrap()
            .kafka;
    let esm = EsmConfig::new(&kafka.request_topic, &kafka.failed_topic);

    // Each MSK event property is the parameter of the same name ...
    for (property, parameter) in [
        ("BatchSize", "BatchSize"),
        ("MaximumBatchingWindowInSeconds", "MaximumBatchingWindowInSeconds"),
        ("MaximumRetryAttempts", "MaximumRetryAttempts"),
        ("MaximumRecordAgeInSeconds", "MaximumRecordAgeInSeconds"),
        ("ConsumerGroupId", "ConsumerGroupId"),
    ] {
        assert_eq!(trigger[property], reference(parameter), "{property}");
    }
    assert_eq!(trigger["Topics"][0], reference("RequestTopic"));
    // ... whose default is the emulator's.
    assert_eq!(
        default_of(&template, "BatchSize"),
        Value::from(esm.batch_size as u64)
    );
    assert_eq!(
        Duration::from_secs(
            default_of(&template, "MaximumBatchingWindowInSeconds")
                .as_u64()
                .unwrap()
        ),
        esm.batching_window
    );
    assert_eq!(
        default_of(&template, "MaximumRetryAttempts"),
        Value::from(i64::from(esm.maximum_retry_attempts))
    );
    assert_eq!(
        default_of(&template, "MaximumRecordAgeInSeconds"),
        Value::from(esm.maximum_record_age_seconds)
    );
    assert_eq!(
        default_of(&template, "ConsumerGroupId"),
        Value::from(esm.group_id.as_str())
    );
    assert_eq!(
        default_of(&template, "RequestTopic"),
        Value::from(esm.topic.as_str())
    );
    assert_eq!(
        Duration::from_secs(function["Timeout"].as_u64().unwrap()),
        esm.function_timeout
    );
    assert_eq!(esm.function_timeout, defaults::FUNCTION_TIMEOUT);

    // The records given up go to the failed topic the functions and `replay` know.
    assert_eq!(
        default_of(&template, "FailedTopic"),
        Value::from(esm.on_failure_topic.as_deref().unwrap())
    );
    let destination = &trigger["DestinationConfig"]["OnFailure"]["Destination"];
    let Value::Tagged(sub) = destination else {
        panic!("Destination is not !Sub: {destination:?}")
    };
    assert_eq!(sub.value, Value::from("kafka://${FailedTopic}"));

    // Partial batch responses are what the emulator honours; they need provisioned mode.
    assert_eq!(
        trigger["FunctionResponseTypes"],
        Value::Sequence(vec![Value::from("ReportBatchItemFailures")])
    );
    assert_eq!(
        trigger["ProvisionedPollerConfig"]["MinimumPollers"],
        reference("MinimumPollers")
    );
}

/// A template value as the function would see it: a literal, a parameter's default (or a
/// placeholder for parameters without one), the first branch of an `!If` (for the SCRAM
/// condition: the deployment with the most variables), or `None` for `AWS::NoValue`.
fn resolve(template: &Value, value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str().unwrap();
            match &template["Parameters"][name]["Default"] {
                _ if name == "AWS::NoValue" => None,
                // No default, or an empty one (a parameter the deployer must fill in).
                Value::Null => Some(format!("{name}-placeholder")),
                Value::String(empty) if empty.is_empty() => Some(format!("{name}-placeholder")),
                default => resolve(template, default),
            }
        }
        Value::Tagged(tagged) if tagged.tag == "If" => resolve(template, &tagged.value[1]),
        other => panic!("an environment value the test cannot resolve: {other:?}"),
    }
}

fn variables(template: &Value, mapping: &Value) -> BTreeMap<String, Option<String>> {
    mapping
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.as_str().unwrap().to_owned(), resolve(template, value)))
        .collect()
}

/// Loads a configuration from `vars`, returning the names it asked for.
fn names_read<T, E: std::fmt::Debug>(
    vars: &BTreeMap<String, Option<String>>,
    load: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> Result<T, E>,
) -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    let lookup = |var: &str| {
        asked.borrow_mut().insert(var.to_owned());
        vars.get(var).cloned().flatten()
    };
    load(&lookup).expect("the function loads its configuration from the template's values");
    asked.into_inner()
}

/// The names the template and the code must share: each environment variable the template sets
/// is one the function's configuration reads (a renamed variable would otherwise be ignored in
/// silence, its default used), and the configuration loads from the template's values; the
/// idempotency table's key and TTL attribute are the ones the store writes. The metric names
/// the alarms and the dashboard read are checked by `dashboard.rs`.
#[test]
fn the_template_and_the_code_use_the_same_names() {
    let template = template();
    let globals = variables(
        &template,
        &template["Globals"]["Function"]["Environment"]["Variables"],
    );
    let generator = &template["Resources"]["QuestionGeneratorFunction"]["Properties"];
    let mut generator_vars = globals.clone();
    generator_vars.extend(variables(&template, &generator["Environment"]["Variables"]));
    assert!(
        generator_vars.contains_key("IDEMPOTENCY_TABLE"),
        "{generator_vars:?}"
    );

    let api_read = names_read(&globals, |lookup| ApiConfig::from_lookup(lookup));
    let generator_read = names_read(&generator_vars, |lookup| GeneratorConfig::from_lookup(lookup));

    for (function, set, read) in [
        ("question-api", &globals, &api_read),
        ("question-generator", &generator_vars, &generator_read),
    ] {
        let unread: Vec<&String> = set.keys().filter(|name| !read.contains(*name)).collect();
        assert!(
            unread.is_empty(),
            "{function}: the template sets {unread:?}, which it never reads"
        );
    }

    let table = &template["Resources"]["IdempotencyTable"]["Properties"];
    assert_eq!(
        table["KeySchema"],
        serde_yaml_ng::from_str::<Value>(&format!("[{{AttributeName: {ID}, KeyType: HASH}}]")).unwrap()
    );
    assert_eq!(
        table["AttributeDefinitions"],
        serde_yaml_ng::from_str::<Value>(&format!("[{{AttributeName: {ID}, AttributeType: S}}]")).unwrap()
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        Value::from(EXPIRATION)
    );
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], Value::from(true));
}

/// A held request waits at most `GeminiMaxWaitSeconds`, and the deployed trigger's settings
/// must let it: each invocation holds its records until the publish reserve before its
/// `Timeout`, so `MaximumRetryAttempts` holds must cover the wait (or the trigger gives the
/// records up to the failed topic before the generator answers them); the records must not age
/// out (`MaximumRecordAgeInSeconds`) before the wait and one more hold are over; and an
/// invocation must leave room for at least one whole Gemini call and the publish.
#[test]
fn the_templates_defaults_let_a_held_request_wait_its_whole_maximum() {
    let template = template();
    let generator = &template["Resources"]["QuestionGeneratorFunction"]["Properties"];
    let mut vars = variables(
        &template,
        &template["Globals"]["Function"]["Environment"]["Variables"],
    );
    vars.extend(variables(&template, &generator["Environment"]["Variables"]));
    let config = GeneratorConfig::from_lookup(|var| vars.get(var).cloned().flatten()).unwrap();
    let timeout = Duration::from_secs(generator["Timeout"].as_u64().unwrap());
    let retries = u32::try_from(default_of(&template, "MaximumRetryAttempts").as_i64().unwrap()).unwrap();
    let record_age = Duration::from_secs(
        default_of(&template, "MaximumRecordAgeInSeconds")
            .as_u64()
            .unwrap(),
    );
    let reserve = question_generator::deadline::publish_reserve(config.kafka.message_timeout);
    let hold = timeout - reserve;

    assert_eq!(config.max_wait, Duration::from_secs(1_800));
    assert!(
        hold * retries >= config.max_wait,
        "{retries} retries of a {hold:?} hold do not cover the maximum wait {:?}",
        config.max_wait
    );
    assert!(
        record_age > config.max_wait + timeout,
        "records age out ({record_age:?}) before the maximum wait and one hold are over"
    );
    assert!(
        hold >= config.gemini.request_timeout,
        "an invocation leaves {hold:?} for Gemini, less than one call ({:?})",
        config.gemini.request_timeout
    );
    // Each partition's invocation takes its share of the quota.
    assert_eq!(
        generator["Environment"]["Variables"]["GEMINI_QUOTA_INVOCATIONS"],
        reference("RequestTopicPartitions")
    );
    assert_eq!(
        default_of(&template, "RequestTopicPartitions"),
        Value::from(i64::from(qgen_adapters::kafka::EVENT_PARTITIONS))
    );
}

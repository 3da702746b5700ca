//! The emulator runs with the settings `template.yaml` deploys: one test reads the template and
//! compares its trigger parameters and the MSK event's properties with the emulator's defaults.

use std::time::Duration;

use qgen_local::esm::{EsmConfig, defaults};
use question_generator::config::GeneratorConfig;
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

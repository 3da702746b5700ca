"""Checks the MSK trigger in the expanded CloudFormation template (what `sam deploy` submits):
the failure path is bounded and recorded as docs/testing.md's Guarantees say.

1. one AWS::Lambda::EventSourceMapping, on the generator, in provisioned mode (min/max pollers
   from parameters), which the retry controls and a Kafka on-failure destination require;
2. explicit MaximumRetryAttempts and MaximumRecordAgeInSeconds (parameters), and
   FunctionResponseTypes [ReportBatchItemFailures] (the generator's partial batch responses);
3. the on-failure destination is the Kafka topic `kafka://${FailedTopic}`, not the source topic;
4. the generator's role may write that topic (kafka-cluster:WriteData and DescribeTopic on its
   topic ARN, under IAM auth), and nothing is left of the SQS failed-batch queue;
5. poller logging (LoggingConfig.SystemLogLevel), EventCount metrics, and alarms on the mapping's
   OnFailureDestinationDeliveredEventCount and DroppedEventCount.

usage: check-template-trigger.py EXPANDED_TEMPLATE.json
Exits 1 listing every violation.
"""
import json
import sys


def ref(name):
    return {"Ref": name}


def main(path):
    template = json.load(open(path))
    resources = template.get("Resources", {})
    problems = []

    mappings = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::EventSourceMapping"}
    if len(mappings) != 1:
        problems.append(f"expected one event-source mapping, found {sorted(mappings)}")
        mappings = dict(list(mappings.items())[:1])
    for name, mapping in mappings.items():
        props = mapping["Properties"]
        if props.get("FunctionName") != ref("QuestionGeneratorFunction"):
            problems.append(f"{name}: not the generator's trigger")
        pollers = props.get("ProvisionedPollerConfig", {})
        if pollers != {"MinimumPollers": ref("MinimumPollers"), "MaximumPollers": ref("MaximumPollers")}:
            problems.append(f"{name}: not in provisioned mode with the poller parameters: {pollers}")
        for prop in ("MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "BatchSize"):
            if props.get(prop) != ref(prop):
                problems.append(f"{name}: {prop} is {props.get(prop)}, not the parameter")
        if props.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
            problems.append(f"{name}: FunctionResponseTypes is {props.get('FunctionResponseTypes')}")
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination != {"Fn::Sub": "kafka://${FailedTopic}"}:
            problems.append(f"{name}: on-failure destination is {destination}, not kafka://${{FailedTopic}}")
        if props.get("Topics") != [ref("RequestTopic")]:
            problems.append(f"{name}: reads {props.get('Topics')}")
        if props.get("LoggingConfig") != {"SystemLogLevel": ref("TriggerLogLevel")}:
            problems.append(f"{name}: LoggingConfig is {props.get('LoggingConfig')}")
        if "EventCount" not in props.get("MetricsConfig", {}).get("Metrics", []):
            problems.append(f"{name}: no EventCount metrics (the alarms read them)")
        for metric in ("OnFailureDestinationDeliveredEventCount", "DroppedEventCount"):
            alarms = [
                k for k, v in resources.items()
                if v["Type"] == "AWS::CloudWatch::Alarm"
                and v["Properties"].get("MetricName") == metric
                and {"Name": "EventSourceMappingUUID", "Value": ref(name)} in v["Properties"].get("Dimensions", [])
            ]
            if not alarms:
                problems.append(f"{name}: no alarm on its {metric}")

    params = template.get("Parameters", {})
    if params.get("FailedTopic", {}).get("Default") == params.get("RequestTopic", {}).get("Default"):
        problems.append("FailedTopic is the request topic: Lambda refuses a destination that is a source")

    role = resources.get("QuestionGeneratorRole", {}).get("Properties", {})
    text = json.dumps(role)
    writes = [
        statement
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if "kafka-cluster:WriteData" in json.dumps(statement)
    ]
    if "${FailedTopic}" not in json.dumps(writes) or "kafka-cluster:DescribeTopic" not in json.dumps(writes):
        problems.append("QuestionGeneratorRole: no kafka-cluster:WriteData/DescribeTopic on the FailedTopic ARN")
    if "sqs:" in text or any(v["Type"] == "AWS::SQS::Queue" for v in resources.values()):
        problems.append("an SQS failed-batch queue is still there")

    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("template trigger: provisioned mode, explicit retries and record age, partial batch responses, "
          "kafka://${FailedTopic} with WriteData, poller logs, alarms on given-up and dropped records")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""An independent reader of question.response, as the content service would be: Python's
confluent-kafka (its own librdkafka build), reading every partition from the beginning until a
response for each expected request_id arrived. Prints one JSON line per response event and
exits 0 when all arrived (each line also carries the whole event, for the schema check), 1 on timeout.

usage: read_responses.py BOOTSTRAP TOPIC TIMEOUT_SECONDS REQUEST_ID...
"""
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def main() -> int:
    bootstrap, topic, timeout, *expected = sys.argv[1:]
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "independent-reader",
        "enable.auto.commit": False,
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    missing = set(expected)
    deadline = time.monotonic() + float(timeout)
    while missing and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        event = json.loads(message.value())
        data = event["eventData"]
        missing.discard(data["request_id"])
        print(json.dumps({
            "event_id": event["eventId"],
            "key": message.key().decode(),
            "request_id": data["request_id"],
            "status": data["status"],
            "source": data.get("source"),
            "total_questions": data["total_questions"],
            "event": event,
        }), flush=True)
    consumer.close()
    if missing:
        print(f"missing responses: {sorted(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

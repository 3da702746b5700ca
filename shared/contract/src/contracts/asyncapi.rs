//! The AsyncAPI document of the topics: the request and response events, the DLQ's dead letters
//! and the records the MSK trigger gives up on.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::schemas::{request_event, response_event};
use crate::events::{REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE};
use crate::headers::{
    CONTENT_TYPE_JSON, DLQ_ERROR, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC,
    HEADER_BATCH_INVOKED_AT, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_GEMINI_CALLS,
    HEADER_GEMINI_MODEL, HEADER_GEMINI_MS, TRACEPARENT,
};
use crate::metrics::GENERATOR;

fn event_headers(event_type: &str) -> Value {
    json!({
        "type": "object",
        "required": [HEADER_EVENT_TYPE, HEADER_EVENT_ID, HEADER_CONTENT_TYPE, TRACEPARENT],
        "properties": {
            HEADER_EVENT_TYPE: {"type": "string", "const": event_type},
            HEADER_EVENT_ID: {"type": "string", "description": "The envelope's eventId, for de-duplication without parsing"},
            HEADER_CONTENT_TYPE: {"type": "string", "const": CONTENT_TYPE_JSON},
            TRACEPARENT: {
                "type": "string",
                "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C Trace Context (version 00). On a request: the caller's trace when it sent \
                    a valid traceparent, else API Gateway's X-Ray trace id, else a new trace, with the API's \
                    own parent id. On a response: the request's trace (a new one when the request had none \
                    or a malformed one), with the generator's own parent id. The 32 hex digits of the trace \
                    id find the request in both functions' logs (field trace_id)."
            }
        }
    })
}

/// A response's headers: an event's, and its timeline (`qgen timeline` reads them).
fn response_headers() -> Value {
    let mut headers = event_headers(RESPONSE_EVENT_TYPE);
    let properties = headers["properties"].as_object_mut().expect("an object");
    for (name, description) in [
        (
            HEADER_BATCH_INVOKED_AT,
            "When the invocation that answered the request started (RFC 3339, UTC, milliseconds)",
        ),
        (
            HEADER_GEMINI_CALLS,
            "Gemini calls made for this answer, decimal; absent when none was (an answer re-published \
             from the idempotency store, an invalid request, the offline source)",
        ),
        (
            HEADER_GEMINI_MS,
            "Their latency added up, milliseconds, decimal; with qgen-gemini-calls",
        ),
        (
            HEADER_GEMINI_MODEL,
            "The model of the last call; with qgen-gemini-calls",
        ),
    ] {
        properties.insert(name.into(), json!({"type": "string", "description": description}));
    }
    headers["required"]
        .as_array_mut()
        .expect("an array")
        .push(HEADER_BATCH_INVOKED_AT.into());
    headers
}

/// The AsyncAPI 3.0 document of the topics.
pub fn asyncapi() -> Value {
    let s = SchemaSettings::draft07;
    let key = json!({"type": "string", "description": "request_id"});
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Question generation events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Requests for quiz questions and their answers, on Amazon MSK. Every accepted \
                request ends in at least one terminal response (completed or failed); repeats carry the \
                same eventId, so consumers de-duplicate by it. Producers compress record batches with \
                lz4: a consumer needs lz4 support (librdkafka and the Java client have it; kafka-python \
                needs the lz4 package, kafkajs a codec plugin)."
        },
        "defaultContentType": "application/json",
        "servers": {
            "msk": {"host": "b-1.example.kafka.eu-west-1.amazonaws.com:9098", "protocol": "kafka-secure", "description": "Amazon MSK (IAM or SCRAM auth)"},
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "the local stack's broker (its port is printed at start-up)"}
        },
        "channels": {
            "questionRequest": {
                "address": "question.request",
                "messages": {"requestEvent": {"$ref": "#/components/messages/requestEvent"}},
                "bindings": {"kafka": {"partitions": 3}}
            },
            "questionResponse": {
                "address": "question.response",
                "messages": {"responseEvent": {"$ref": "#/components/messages/responseEvent"}},
                "bindings": {"kafka": {"partitions": 3}}
            },
            "questionRequestDlq": {
                "address": "question.request.dlq",
                "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}}
            },
            "questionRequestFailed": {
                "address": "question.request.failed",
                "messages": {"givenUp": {"$ref": "#/components/messages/givenUp"}}
            }
        },
        "operations": {
            "queueRequest": {
                "action": "send",
                "channel": {"$ref": "#/channels/questionRequest"},
                "summary": "question-api publishes each accepted request (acks=all, idempotent) before answering 202"
            },
            "generateQuestions": {
                "action": "receive",
                "channel": {"$ref": "#/channels/questionRequest"},
                "summary": "question-generator consumes requests through the MSK event-source mapping",
                "bindings": {"kafka": {"groupId": {"type": "string", "enum": [GENERATOR]}}}
            },
            "answerRequest": {
                "action": "send",
                "channel": {"$ref": "#/channels/questionResponse"},
                "summary": "question-generator publishes one completed or failed response per request"
            },
            "receiveAnswer": {
                "action": "receive",
                "channel": {"$ref": "#/channels/questionResponse"},
                "summary": "the content service consumes responses, de-duplicating by eventId"
            },
            "deadLetter": {
                "action": "send",
                "channel": {"$ref": "#/channels/questionRequestDlq"},
                "summary": "question-generator sends records it cannot decode, unchanged, with their origin"
            },
            "giveUp": {
                "action": "send",
                "channel": {"$ref": "#/channels/questionRequestFailed"},
                "summary": "the MSK trigger (Lambda itself) writes the request records it gave up on, after \
                    MaximumRetryAttempts retries or past MaximumRecordAgeInSeconds; qgen replay \
                    publishes them to question.request again"
            }
        },
        "components": {
            "messages": {
                "requestEvent": {
                    "name": "RequestEvent",
                    "title": "Question generation request",
                    "contentType": "application/json",
                    "headers": event_headers(REQUEST_EVENT_TYPE),
                    "payload": request_event(s()),
                    "bindings": {"kafka": {"key": key}}
                },
                "responseEvent": {
                    "name": "ResponseEvent",
                    "title": "Question generation response",
                    "contentType": "application/json",
                    "headers": response_headers(),
                    "payload": response_event(s()),
                    "bindings": {"kafka": {"key": key}}
                },
                "deadLetter": {
                    "name": "DeadLetter",
                    "title": "A request record that could not be decoded",
                    "contentType": "application/octet-stream",
                    "headers": {
                        "type": "object",
                        "description": "The original record's headers (traceparent among them, when it had one), \
                            then these.",
                        "required": [DLQ_SOURCE_TOPIC, DLQ_SOURCE_PARTITION, DLQ_SOURCE_OFFSET, DLQ_ERROR],
                        "properties": {
                            DLQ_SOURCE_TOPIC: {"type": "string"},
                            DLQ_SOURCE_PARTITION: {"type": "string", "description": "decimal"},
                            DLQ_SOURCE_OFFSET: {"type": "string", "description": "decimal"},
                            DLQ_ERROR: {"type": "string", "description": "why the record could not be decoded"}
                        }
                    },
                    "payload": {"description": "The original record value, byte for byte (absent when it had none)"},
                    "bindings": {"kafka": {"key": {"type": "string", "description": "the original key, when it had one"}}}
                },
                "givenUp": {
                    "name": "GivenUp",
                    "title": "A request record the MSK trigger gave up on",
                    "description": "Written by Lambda, as documented in \"Using a Kafka topic as an on-failure \
                        destination\" (record format): failure metadata and, under payload, the invocation \
                        event holding the original record (key and value base64, headers as byte arrays).",
                    "contentType": "application/json",
                    "payload": {
                        "type": "object",
                        "required": ["requestContext", "version", "timestamp", "KafkaBatchInfo", "payload"],
                        "properties": {
                            "requestContext": {
                                "type": "object",
                                "properties": {
                                    "requestId": {"type": "string"},
                                    "functionArn": {"type": "string"},
                                    "condition": {"type": "string", "description": "RetriesExhausted, or RecordAgeExceeded (the local emulator's name; AWS documents only the first)"},
                                    "approximateInvokeCount": {"type": "integer"}
                                }
                            },
                            "responseContext": {"type": "object", "description": "the last invocation's status, executedVersion and functionError"},
                            "version": {"type": "string"},
                            "timestamp": {"type": "string", "format": "date-time"},
                            "KafkaBatchInfo": {"type": "object", "description": "batchSize, eventSourceArn, bootstrapServers, payloadSize, recordInfo {offset, timestamp}"},
                            "payload": {"type": "object", "description": "the MSK event (eventSource, eventSourceArn, bootstrapServers, records by topic-partition)"}
                        }
                    },
                    "bindings": {"kafka": {"key": {"type": "string", "description": "the original record's key (request_id)"}}}
                }
            }
        }
    })
}

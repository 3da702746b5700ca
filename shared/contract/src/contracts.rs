//! Machine-readable contracts, generated from the Rust types so they cannot drift: JSON Schemas
//! for the topics' envelopes and the HTTP bodies, an OpenAPI document for the endpoint and an
//! AsyncAPI document for the topics. The committed copies live in `contracts/`; a test fails
//! when they differ from what this module generates.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::api::{Accepted, ErrorResponse, HttpRequest, ROUTE};
use crate::events::{REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE, RequestEvent, ResponseEvent};

fn schema_with<T: JsonSchema>(settings: SchemaSettings, title: &str) -> Value {
    let mut settings = settings;
    // Self-contained schemas: embedded in OpenAPI and AsyncAPI, a `#/$defs/...` reference
    // would point at the wrong document root.
    settings.inline_subschemas = true;
    let mut schema = settings.into_generator().into_root_schema_for::<T>().to_value();
    schema["title"] = json!(title);
    schema
}

/// A completed response carries questions and no error; a failed one an error and none.
fn with_status_rules(mut schema: Value) -> Value {
    schema["properties"]["eventData"]["oneOf"] = json!([
        {
            "title": "completed",
            "properties": {"status": {"const": "completed"}},
            "not": {"required": ["error"]}
        },
        {
            "title": "failed",
            "properties": {
                "status": {"const": "failed"},
                "questions": {"maxItems": 0},
                "total_questions": {"const": 0}
            },
            "required": ["error"]
        }
    ]);
    schema
}

fn request_event(settings: SchemaSettings) -> Value {
    let mut schema = schema_with::<RequestEvent>(settings, "RequestEvent");
    schema["properties"]["eventType"]["const"] = json!(REQUEST_EVENT_TYPE);
    schema
}

fn response_event(settings: SchemaSettings) -> Value {
    let mut schema = schema_with::<ResponseEvent>(settings, "ResponseEvent");
    schema["properties"]["eventType"]["const"] = json!(RESPONSE_EVENT_TYPE);
    with_status_rules(schema)
}

/// The JSON Schemas (draft 2020-12), by file name.
pub fn json_schemas() -> Vec<(&'static str, Value)> {
    let s = SchemaSettings::draft2020_12;
    vec![
        ("request-event.schema.json", request_event(s())),
        ("response-event.schema.json", response_event(s())),
        (
            "http-request.schema.json",
            schema_with::<HttpRequest>(s(), "GenerationHttpRequest"),
        ),
        (
            "http-accepted.schema.json",
            schema_with::<Accepted>(s(), "Accepted"),
        ),
        (
            "http-error.schema.json",
            schema_with::<ErrorResponse>(s(), "ErrorResponse"),
        ),
    ]
}

fn json_content(schema_ref: &str) -> Value {
    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_ref}")}}})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": json_content("ErrorResponse")})
}

/// The OpenAPI 3.0 document of the endpoint.
pub fn openapi() -> Value {
    let s = SchemaSettings::openapi3;
    let mut request = schema_with::<HttpRequest>(s(), "GenerationHttpRequest");
    let mut accepted = schema_with::<Accepted>(s(), "Accepted");
    let mut error = schema_with::<ErrorResponse>(s(), "ErrorResponse");
    for schema in [&mut request, &mut accepted, &mut error] {
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Question generation API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accepts a request for quiz questions and queues it on Kafka. The questions \
                arrive asynchronously as a response event on the question.response topic (see the \
                AsyncAPI document). 202 means the request is persisted in Kafka."
        },
        "servers": [
            {
                "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
                "description": "API Gateway HTTP API (IAM auth: sign requests with SigV4)",
                "variables": {"apiId": {"default": "abcdef1234"}, "region": {"default": "eu-west-1"}}
            },
            {"url": "http://127.0.0.1:8000", "description": "the local stack (scripts/local up), no auth"}
        ],
        "security": [{"sigv4": []}],
        "paths": {
            ROUTE: {
                "post": {
                    "operationId": "generateQuestions",
                    "summary": "Queue a question-generation request",
                    "requestBody": {"required": true, "content": json_content("GenerationHttpRequest")},
                    "responses": {
                        "202": {"description": "Stored on question.request; the answer comes on question.response", "content": json_content("Accepted")},
                        "400": error_response("A field breaks a rule (error.field names it) or the body is not a JSON object"),
                        "404": error_response("No such route"),
                        "405": {
                            "description": "Only POST is allowed",
                            "headers": {"Allow": {"schema": {"type": "string"}, "description": "POST"}},
                            "content": json_content("ErrorResponse")
                        },
                        "413": error_response("The body is larger than 64 KiB"),
                        "415": error_response("The content type is not application/json"),
                        "503": error_response("The broker did not acknowledge in time; nothing was queued, retry later")
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 (API Gateway IAM authorization, service execute-api)",
                    "x-amazon-apigateway-authtype": "awsSigv4"
                }
            },
            "schemas": {"GenerationHttpRequest": request, "Accepted": accepted, "ErrorResponse": error}
        }
    })
}

fn event_headers(event_type: &str) -> Value {
    json!({
        "type": "object",
        "required": ["eventType", "eventId", "content-type"],
        "properties": {
            "eventType": {"type": "string", "const": event_type},
            "eventId": {"type": "string", "description": "The envelope's eventId, for de-duplication without parsing"},
            "content-type": {"type": "string", "const": "application/json"}
        }
    })
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
                "bindings": {"kafka": {"groupId": {"type": "string", "enum": ["question-generator"]}}}
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
                    MaximumRetryAttempts retries or past MaximumRecordAgeInSeconds; qgen-local replay \
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
                    "headers": event_headers(RESPONSE_EVENT_TYPE),
                    "payload": response_event(s()),
                    "bindings": {"kafka": {"key": key}}
                },
                "deadLetter": {
                    "name": "DeadLetter",
                    "title": "A request record that could not be decoded",
                    "contentType": "application/octet-stream",
                    "headers": {
                        "type": "object",
                        "required": ["dlq-source-topic", "dlq-source-partition", "dlq-source-offset", "dlq-error"],
                        "properties": {
                            "dlq-source-topic": {"type": "string"},
                            "dlq-source-partition": {"type": "string", "description": "decimal"},
                            "dlq-source-offset": {"type": "string", "description": "decimal"},
                            "dlq-error": {"type": "string", "description": "why the record could not be decoded"}
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

/// Every committed contract document, by path under `contracts/`.
pub fn documents() -> Vec<(String, Value)> {
    let mut documents: Vec<(String, Value)> = json_schemas()
        .into_iter()
        .map(|(name, schema)| (format!("schemas/{name}"), schema))
        .collect();
    documents.push(("openapi.json".to_owned(), openapi()));
    documents.push(("asyncapi.json".to_owned(), asyncapi()));
    documents
}

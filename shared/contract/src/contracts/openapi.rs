//! The OpenAPI document of the endpoint, with the HTTP bodies' schemas as its components.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::schemas::schema_with;
use crate::api::{Accepted, ErrorResponse, HttpRequest, ROUTE};

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
                        "503": {
                            "description": "The broker did not acknowledge in time; nothing was queued, retry after Retry-After seconds",
                            "headers": {"Retry-After": {
                                "schema": {"type": "integer", "enum": [crate::api::RETRY_AFTER_SECONDS]},
                                "description": "Seconds to wait before sending the request again (RFC 9110, section 10.2.3)"
                            }},
                            "content": json_content("ErrorResponse")
                        }
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

//! End to end, through both functions and a real broker: an HTTP request to the API handler →
//! the record on `question.request` → a `KafkaEvent` built from it as the MSK trigger would →
//! the generator (Gemini client against a local stand-in) → the response on `question.response`.
//!
//! Run against librdkafka's in-process mock cluster and against tansu, an independent broker.

use std::collections::HashMap;
use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_adapters::msk::record_json;
use qgen_contract::msk::kafka_event;
use qgen_testkit::{
    GeminiStandIn, MockBroker, TansuBroker, assert_matches_schema, message_header, message_json, read_topic,
};
use question_api::Api;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::handler::Generator;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::time::Instant;

const HTTP_V2: &str = include_str!("../../events/api-http-v2.json");

fn lookup(vars: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
    move |var| vars.get(var).cloned()
}

/// POSTs `body` through the API handler; returns the response status and JSON.
async fn post(api: &Api<KafkaPublisher>, body: &Value) -> (u16, Value) {
    let mut event: Value = serde_json::from_str(HTTP_V2).unwrap();
    event["body"] = body.to_string().into();
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = api.handle(request).await;
    let json = serde_json::from_slice(response.body().as_ref()).unwrap();
    (response.status().as_u16(), json)
}

async fn run_pipeline(bootstrap: &str) {
    let stand_in = GeminiStandIn::answering().await;
    let vars = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
        ("GEMINI_BASE_URL", stand_in.base_url()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "10000".to_owned()),
    ]);
    let api_config = ApiConfig::from_lookup(lookup(vars.clone())).unwrap();
    let generator_config = GeneratorConfig::from_lookup(lookup(vars)).unwrap();
    let api = Api::new(KafkaPublisher::new(&api_config.kafka).unwrap(), &api_config);

    // 1. The API accepts the request only once it is on the topic.
    let request =
        json!({"request_id": "req-1", "topic": "Python Loops", "num_questions": 3, "difficulty": "easy"});
    let (status, accepted) = post(&api, &request).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["request_id"], "req-1");

    // 2. The record on question.request is the contract's request envelope.
    let requests = read_topic(bootstrap, "question.request", 1, Duration::from_secs(20)).await;
    assert_eq!(requests.len(), 1, "request record not found");
    let envelope = message_json(&requests[0]);
    assert_matches_schema("request-event.schema.json", &envelope);
    assert_eq!(envelope["eventId"], accepted["event_id"]);
    assert_eq!(envelope["eventType"], "question.generation.request");
    assert_eq!(envelope["userId"], "content-service");
    assert!(envelope["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(envelope["eventData"], request);

    // 3. The generator gets it as the MSK trigger would deliver it.
    let event = kafka_event(requests.iter().map(record_json), "arn:aws:kafka:local", bootstrap);
    let generator = Generator::new(
        GeminiClient::new(&generator_config.gemini, SecretString::from("test-key")).unwrap(),
        KafkaPublisher::new(&generator_config.kafka).unwrap(),
        &generator_config,
    );
    let report = generator
        .handle(&event, Instant::now() + Duration::from_secs(60))
        .await;
    assert_eq!(report.completed, 1);

    // 4. The response on question.response answers it.
    let responses = read_topic(bootstrap, "question.response", 1, Duration::from_secs(20)).await;
    assert_eq!(responses.len(), 1, "response record not found");
    let response = message_json(&responses[0]);
    assert_matches_schema("response-event.schema.json", &response);
    assert_eq!(rdkafka::Message::key(&responses[0]), Some(&b"req-1"[..]));
    assert_eq!(
        message_header(&responses[0], "eventId").as_deref(),
        response["eventId"].as_str()
    );
    assert_eq!(response["eventType"], "question.generation.response");
    let data = &response["eventData"];
    assert_eq!(data["request_id"], "req-1");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["total_questions"], 3);
    let questions = data["questions"].as_array().unwrap();
    assert_eq!(questions.len(), 3);
    for q in questions {
        assert_eq!(q["type"], "multiple_choice");
        assert_eq!(q["difficulty"], "easy");
        assert!(q["options"].as_array().unwrap().contains(&q["correct_answer"]));
    }
    assert_eq!(stand_in.calls().await.len(), 1);
}

#[tokio::test]
async fn a_request_becomes_a_completed_response_on_the_mock_cluster() {
    let broker = MockBroker::with_service_topics();
    run_pipeline(&broker.bootstrap_servers()).await;
}

#[tokio::test]
async fn a_request_becomes_a_completed_response_on_tansu() {
    let broker = TansuBroker::with_service_topics().await;
    run_pipeline(&broker.bootstrap_servers()).await;
}

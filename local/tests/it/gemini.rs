//! `gemini-stand-in` answered by the generator's real Gemini client over HTTP: the questions
//! asked for come back and pass the client's checks; what is not a `generateContent` call is
//! refused.

use std::time::Duration;

use qgen_contract::events::{Difficulty, GenerationRequest};
use qgen_standins::GeminiStandIn;
use question_generator::config::GeneratorConfig;
use question_generator::gemini::GeminiClient;
use question_generator::source::QuestionSource;
use secrecy::SecretString;

/// `gemini-stand-in`'s stand-in on a free port, and its URL; it stops when dropped.
pub(crate) async fn stand_in() -> (String, GeminiStandIn) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stand_in = qgen_local::gemini::stand_in(listener).await;
    (stand_in.base_url(), stand_in)
}

#[tokio::test]
async fn the_generators_client_gets_exactly_the_questions_it_asked_for() {
    let (url, stand_in) = stand_in().await;
    let config = GeneratorConfig::from_lookup(|var| match var {
        "KAFKA_BOOTSTRAP_SERVERS" => Some("unused:9092".into()),
        "GEMINI_BASE_URL" => Some(url.clone()),
        _ => None,
    })
    .unwrap();
    let client = GeminiClient::new(&config.gemini, SecretString::from("key")).unwrap();
    let request = GenerationRequest {
        request_id: "req-1".into(),
        topic: "Rust ownership".into(),
        num_questions: 4,
        difficulty: Difficulty::Hard,
        context: None,
    };

    let questions = client
        .generate(&request, tokio::time::Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();

    assert_eq!(questions.len(), 4);
    assert!(questions.iter().all(|q| q.difficulty == Difficulty::Hard));
    assert!(
        questions.iter().all(|q| q.question.contains("Rust ownership")),
        "{questions:?}"
    );
    drop(stand_in);
}

#[tokio::test]
async fn anything_but_a_keyed_generate_content_call_is_not_found() {
    let (url, stand_in) = stand_in().await;
    let http = reqwest::Client::new();
    let target = format!("{url}/v1beta/models/m:generateContent");

    let without_key = http.post(&target).body("{}").send().await.unwrap();
    let other_route = http
        .post(format!("{url}/v1beta/models/m:countTokens"))
        .header("x-goog-api-key", "key")
        .body("{}")
        .send()
        .await
        .unwrap();
    let keyed = http
        .post(&target)
        .header("x-goog-api-key", "key")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(without_key.status(), 404);
    assert_eq!(other_route.status(), 404);
    assert_eq!(keyed.status(), 200);
    drop(stand_in);
}

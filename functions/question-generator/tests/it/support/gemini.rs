//! The Gemini client with fast settings, and a stand-in that replies as scripted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use qgen_contract::events::{Difficulty, GenerationRequest, Question};
use qgen_testkit::{AnswersAsAsked, GeminiStandIn, gemini_reply};
use question_generator::config::{GeminiConfig, GeneratorConfig};
use question_generator::gemini::GeminiClient;
use question_generator::source::{GenerationError, QuestionSource};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::later;

/// Fast settings: millisecond backoff, three attempts, and a breaker that stays out of the way
/// (it has tests of its own).
pub fn config(base_url: &str, overrides: &[(&str, &str)]) -> GeminiConfig {
    let mut vars: HashMap<String, String> = [
        ("KAFKA_BOOTSTRAP_SERVERS", "unused:9092"),
        ("GEMINI_BASE_URL", base_url),
        ("GEMINI_TIMEOUT_MS", "2000"),
        ("GEMINI_MAX_ATTEMPTS", "3"),
        ("GEMINI_BACKOFF_BASE_MS", "1"),
        ("GEMINI_BACKOFF_MAX_MS", "5"),
        ("GEMINI_BREAKER_THRESHOLD", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    GeneratorConfig::from_lookup(|var| vars.get(var).cloned())
        .unwrap()
        .gemini
}

pub fn client(stand_in: &GeminiStandIn) -> GeminiClient {
    GeminiClient::new(&config(&stand_in.base_url(), &[]), SecretString::from("test-key")).unwrap()
}

pub fn request() -> GenerationRequest {
    GenerationRequest {
        request_id: "req-1".into(),
        topic: "Python Loops".into(),
        num_questions: 3,
        difficulty: Difficulty::Medium,
        context: None,
    }
}

/// One reply of a scripted stand-in.
#[derive(Clone)]
pub enum Step {
    /// The questions asked for.
    Answer,
    /// This reply.
    Reply(ResponseTemplate),
}

/// Answers call `n` with `steps[n]`, and every call after the last step with the last step.
pub struct Scripted {
    steps: Vec<Step>,
    calls: AtomicUsize,
}

impl Scripted {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Scripted {
            steps: steps.into_iter().collect(),
            calls: AtomicUsize::new(0),
        }
    }
}

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.steps[n.min(self.steps.len() - 1)] {
            Step::Answer => AnswersAsAsked.respond(request),
            Step::Reply(reply) => reply.clone(),
        }
    }
}

pub fn model_says(text: &str, finish_reason: &str) -> Step {
    Step::Reply(ResponseTemplate::new(200).set_body_json(gemini_reply(text, finish_reason)))
}

pub fn questions_text(questions: &[Question]) -> String {
    json!({ "questions": questions }).to_string()
}

pub fn status(code: u16) -> Step {
    Step::Reply(
        ResponseTemplate::new(code)
            .set_body_json(json!({"error": {"code": code, "message": format!("stand-in says {code}")}})),
    )
}

pub async fn run(steps: impl IntoIterator<Item = Step>) -> (Result<Vec<Question>, GenerationError>, usize) {
    let stand_in = GeminiStandIn::start(Scripted::new(steps)).await;
    let outcome = client(&stand_in).generate(&request(), later()).await;
    (outcome, stand_in.calls().await.len())
}

pub fn code(outcome: &Result<Vec<Question>, GenerationError>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    }
}

pub fn body_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

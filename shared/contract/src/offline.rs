//! Questions written without a model, for the local stack's offline source and test stand-ins.
//!
//! They are well-formed (they pass [`crate::validation::validate_questions`]) and say plainly
//! that they are placeholders, so nobody mistakes them for a model's work.

use serde_json::{Value, json};

use crate::events::{Difficulty, Question, QuestionType};
use crate::prompt::PromptData;

/// `n` well-formed placeholder questions about `topic` at `difficulty`.
pub fn questions(topic: &str, n: usize, difficulty: Difficulty) -> Vec<Question> {
    (1..=n)
        .map(|i| {
            let correct = format!("Statement {i} about {topic}, which the course material supports");
            Question {
                question: format!("[offline placeholder {i}/{n}] Which statement about {topic} is supported by the course material?"),
                kind: QuestionType::MultipleChoice,
                options: vec![
                    correct.clone(),
                    format!("A claim about {topic} that contradicts the material ({i}a)"),
                    format!("A claim unrelated to {topic} ({i}b)"),
                    format!("A claim about {topic} that the material never makes ({i}c)"),
                ],
                correct_answer: correct,
                explanation: format!(
                    "Placeholder written without a model at {} difficulty: run with GOOGLE_API_KEY set for real questions.",
                    difficulty.as_str()
                ),
                difficulty,
            }
        })
        .collect()
}

/// A `generateContent` reply whose text is `text`, finishing with `finish_reason` — what the
/// Gemini stand-ins (tests, benchmarks) answer with. It names no `modelVersion`, so the model
/// called is the one reported; a stand-in that knows the URL adds it, as Gemini does.
pub fn gemini_reply(text: &str, finish_reason: &str) -> Value {
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": [{"text": text}]},
            "finishReason": finish_reason,
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 480, "totalTokenCount": 600}
    })
}

/// The reply to a `generateContent` request body with exactly the questions its
/// [`PromptData`] asks for; a body without one gets 3 medium questions.
pub fn answer_generate_content(request_body: &[u8]) -> Value {
    let body: Value = serde_json::from_slice(request_body).unwrap_or(Value::Null);
    let (topic, n, difficulty) = match PromptData::from_generate_content(&body) {
        Some(data) => (data.topic, data.num_questions as usize, data.difficulty),
        None => ("the topic".to_owned(), 3, Difficulty::default()),
    };
    let text = json!({ "questions": questions(&topic, n, difficulty) }).to_string();
    gemini_reply(&text, "STOP")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::GenerationRequest;
    use crate::validation::validate_questions;

    #[test]
    fn offline_questions_pass_validation() {
        for n in [1, 5, 20] {
            let request = GenerationRequest {
                request_id: "r".into(),
                topic: "Python Loops".into(),
                num_questions: n,
                difficulty: Difficulty::Hard,
                context: None,
            };
            let questions = questions(&request.topic, n as usize, request.difficulty);
            assert_eq!(validate_questions(&questions, &request), Ok(()));
        }
    }

    #[test]
    fn the_stand_in_reply_is_a_finished_generate_content_answer_with_the_questions_asked_for() {
        let reply = gemini_reply("{\"questions\": []}", "STOP");
        assert_eq!(reply["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            reply["candidates"][0]["content"]["parts"][0]["text"],
            "{\"questions\": []}"
        );
        assert_eq!(reply["usageMetadata"]["totalTokenCount"], 600);

        let body = json!({"contents": [{"parts": [{"text": crate::prompt::PromptData::from(&GenerationRequest {
            request_id: "r".into(),
            topic: "Joins".into(),
            num_questions: 4,
            difficulty: Difficulty::Easy,
            context: None,
        }).to_text()}]}]});
        let answer = answer_generate_content(body.to_string().as_bytes());
        let text = answer["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        let questions: Value = serde_json::from_str(text).unwrap();
        assert_eq!(questions["questions"].as_array().unwrap().len(), 4);
        assert_eq!(questions["questions"][0]["difficulty"], "easy");
    }
}

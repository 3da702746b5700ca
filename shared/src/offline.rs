//! Questions written without a model, for the local stack's offline source and test stand-ins.
//!
//! They are well-formed (they pass [`crate::validation::validate_questions`]) and say plainly
//! that they are placeholders, so nobody mistakes them for a model's work.

use crate::events::{Difficulty, Question, QuestionType};

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
                    "None of the above".to_owned(),
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
}

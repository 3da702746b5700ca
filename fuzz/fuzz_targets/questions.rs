//! The checks on a model's questions, on any question set: a set that passes obeys every rule
//! and stays valid once its options are shuffled — never a panic.
//!
//! The input is built from structured data rather than JSON (the JSON layer is serde's, fuzzed
//! by the other targets): options are often copied into `correct_answer` or from one question to
//! another, so the fuzzer reaches the rules past "correct_answer is not one of the options".

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use qgen_contract::events::{Difficulty, GenerationRequest, Question, QuestionType};
use qgen_contract::validation::{tidy_questions, validate_questions};
use qgen_fuzz::assert_valid_questions;

#[derive(Arbitrary, Debug)]
struct Input {
    request_id: u16,
    hard: bool,
    questions: Vec<RawQuestion>,
}

#[derive(Arbitrary, Debug)]
struct RawQuestion {
    question: String,
    /// Copy the text of an earlier question instead (index into the set).
    repeat: Option<u8>,
    options: Vec<String>,
    /// The correct answer: one of the options by index, or a text of its own.
    correct: Result<u8, String>,
    explanation: String,
    hard: bool,
}

fuzz_target!(|input: Input| {
    let difficulty = |hard| if hard { Difficulty::Hard } else { Difficulty::Easy };
    let mut questions: Vec<Question> = Vec::new();
    for raw in input.questions.into_iter().take(20) {
        let question = match raw.repeat {
            Some(i) if !questions.is_empty() => questions[i as usize % questions.len()].question.clone(),
            _ => raw.question,
        };
        let correct_answer = match raw.correct {
            Ok(i) if !raw.options.is_empty() => raw.options[i as usize % raw.options.len()].clone(),
            Ok(_) => String::new(),
            Err(text) => text,
        };
        questions.push(Question {
            question,
            kind: QuestionType::MultipleChoice,
            options: raw.options,
            correct_answer,
            explanation: raw.explanation,
            difficulty: difficulty(raw.hard),
        });
    }
    let request = GenerationRequest {
        request_id: format!("req-{}", input.request_id),
        topic: "t".into(),
        num_questions: questions.len().max(1) as u32,
        difficulty: difficulty(input.hard),
        context: None,
    };
    tidy_questions(&mut questions);
    let mut again = questions.clone();
    tidy_questions(&mut again);
    assert_eq!(again, questions, "tidying is idempotent");
    if validate_questions(&questions, &request).is_ok() {
        assert_valid_questions(&questions, &request);
    }
});

//! The checks on a model's questions (docs/DESIGN.md, "Question rules"): the count asked for,
//! plain-text fields, well-formed options that do not give the answer away, the requested
//! difficulty, no two questions alike.

use std::collections::HashMap;

use super::tells::tell;
use super::text::{Lines, option_key, question_key, text_problem};
use crate::events::{GenerationRequest, Question};

/// Fewest and most options of a question.
pub const OPTIONS_RANGE: std::ops::RangeInclusive<usize> = 2..=6;

/// Why a model's questions were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// Not the number that was asked for.
    #[error("expected {expected} questions, got {got}")]
    WrongCount {
        /// Asked for.
        expected: usize,
        /// Received.
        got: usize,
    },
    /// A question breaks a rule.
    #[error("question {index}: {problem}")]
    BadQuestion {
        /// Zero-based position.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// Two questions of the set ask the same thing.
    #[error("question {index} duplicates question {earlier} ({question:?}): {how}")]
    Duplicate {
        /// Zero-based position of the later one.
        index: usize,
        /// Zero-based position of the one it repeats.
        earlier: usize,
        /// The earlier question's text, so the repair call can name it.
        question: String,
        /// Same text, or same options and answer.
        how: &'static str,
    },
}

/// Trims every field a student sees: whitespace around a field is the model's noise, not worth a
/// repair call. Everything else is left to [`validate_questions`].
pub fn tidy_questions(questions: &mut [Question]) {
    let trim = |s: &mut String| {
        let trimmed = s.trim();
        if trimmed.len() != s.len() {
            *s = trimmed.to_owned();
        }
    };
    for q in questions {
        trim(&mut q.question);
        trim(&mut q.correct_answer);
        trim(&mut q.explanation);
        q.options.iter_mut().for_each(trim);
    }
}

/// Checks a model's questions against the request: the count; every field non-empty, trimmed,
/// plain text (no control characters, no Markdown; options one line); 2–6 unique options with
/// `correct_answer` among them and no tell ([`super::tells`]); the requested difficulty; and no
/// two questions alike (same text, or same options and answer).
pub fn validate_questions(questions: &[Question], request: &GenerationRequest) -> Result<(), OutputError> {
    let expected = request.num_questions as usize;
    if questions.len() != expected {
        return Err(OutputError::WrongCount {
            expected,
            got: questions.len(),
        });
    }
    let mut texts = HashMap::with_capacity(questions.len());
    let mut answers = HashMap::with_capacity(questions.len());
    for (index, q) in questions.iter().enumerate() {
        let bad = |problem: String| OutputError::BadQuestion { index, problem };
        check_question(q, request).map_err(bad)?;
        let duplicate = |earlier: usize, how| OutputError::Duplicate {
            index,
            earlier,
            question: questions[earlier].question.clone(),
            how,
        };
        if let Some(earlier) = texts.insert(question_key(&q.question), index) {
            return Err(duplicate(earlier, "the same question"));
        }
        let answer = (option_key(&q.correct_answer), option_keys(q));
        if let Some(earlier) = answers.insert(answer, index) {
            return Err(duplicate(earlier, "the same options and correct answer"));
        }
    }
    Ok(())
}

/// The question's options as compared with each other ([`option_key`]), sorted.
fn option_keys(q: &Question) -> Vec<String> {
    let mut keys: Vec<String> = q.options.iter().map(|o| option_key(o)).collect();
    keys.sort_unstable();
    keys
}

/// The rules of one question on its own.
fn check_question(q: &Question, request: &GenerationRequest) -> Result<(), String> {
    let field = |name: &str, text: &str, lines| match text_problem(text, lines) {
        Some(problem) => Err(format!("{name} {problem}")),
        None => Ok(()),
    };
    field("question", &q.question, Lines::Many)?;
    field("explanation", &q.explanation, Lines::Many)?;
    if !OPTIONS_RANGE.contains(&q.options.len()) {
        return Err("must have 2 to 6 options".into());
    }
    for (i, option) in q.options.iter().enumerate() {
        field(&format!("option {i}"), option, Lines::One)?;
    }
    let mut unique = option_keys(q);
    unique.dedup();
    if unique.len() != q.options.len() {
        return Err("options are not unique".into());
    }
    if !q.options.iter().any(|o| o == &q.correct_answer) {
        return Err("correct_answer is not one of the options".into());
    }
    if let Some(problem) = tell(&q.options, &q.correct_answer) {
        return Err(problem);
    }
    if q.difficulty != request.difficulty {
        return Err("difficulty differs from the request".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Difficulty, QuestionType};

    fn request(n: u32) -> GenerationRequest {
        GenerationRequest {
            request_id: "r".into(),
            topic: "t".into(),
            num_questions: n,
            difficulty: Difficulty::Easy,
            context: None,
        }
    }

    fn question(text: &str) -> Question {
        Question {
            question: text.into(),
            kind: QuestionType::MultipleChoice,
            // The third option differs per question, so two questions differ in their options.
            options: vec!["a".into(), "b".into(), format!("not {text}")],
            correct_answer: "b".into(),
            explanation: "because".into(),
            difficulty: Difficulty::Easy,
        }
    }

    #[test]
    fn accepts_good_questions() {
        assert_eq!(
            validate_questions(&[question("one?"), question("two?")], &request(2)),
            Ok(())
        );
    }

    #[test]
    fn rejects_each_kind_of_bad_question() {
        let mut wrong_answer = question("q?");
        wrong_answer.correct_answer = "z".into();
        let mut one_option = question("q?");
        one_option.options.truncate(1);
        let mut seven_options = question("q?");
        seven_options.options = (0..7).map(|i| i.to_string()).collect();
        let mut repeated_option = question("q?");
        repeated_option.options = vec!["a".into(), "A".into(), "b".into()];
        let mut blank = question("q?");
        blank.question = "  ".into();
        let mut other_difficulty = question("q?");
        other_difficulty.difficulty = Difficulty::Hard;
        for (bad, problem) in [
            (wrong_answer, "correct_answer is not one of the options"),
            (one_option, "must have 2 to 6 options"),
            (seven_options, "must have 2 to 6 options"),
            (repeated_option, "options are not unique"),
            (blank, "question is empty"),
            (other_difficulty, "difficulty differs from the request"),
        ] {
            assert_eq!(
                validate_questions(std::slice::from_ref(&bad), &request(1)),
                Err(OutputError::BadQuestion {
                    index: 0,
                    problem: problem.into()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_a_wrong_count() {
        assert_eq!(
            validate_questions(&[question("a?")], &request(2)),
            Err(OutputError::WrongCount { expected: 2, got: 1 })
        );
    }

    #[test]
    fn names_a_question_that_repeats_an_earlier_one_in_other_words() {
        let mut other_options = question("Same, really?");
        other_options.options = vec!["x".into(), "y".into()];
        other_options.correct_answer = "y".into();
        let error = validate_questions(
            &[question("one?"), question("Same, really?"), other_options],
            &request(3),
        )
        .unwrap_err();
        assert_eq!(
            error,
            OutputError::Duplicate {
                index: 2,
                earlier: 1,
                question: "Same, really?".into(),
                how: "the same question"
            }
        );
        assert_eq!(
            error.to_string(),
            "question 2 duplicates question 1 (\"Same, really?\"): the same question"
        );
    }

    #[test]
    fn the_same_options_and_answer_is_the_same_question() {
        let mut reordered = question("A different wording?");
        reordered.options = vec!["NOT  One?".into(), "a".into(), "b".into()];
        assert!(matches!(
            validate_questions(&[question("one?"), reordered.clone()], &request(2)),
            Err(OutputError::Duplicate {
                index: 1,
                earlier: 0,
                how: "the same options and correct answer",
                ..
            })
        ));
        reordered.correct_answer = "a".into();
        assert_eq!(
            validate_questions(&[question("one?"), reordered], &request(2)),
            Ok(())
        );
    }

    #[test]
    fn every_field_a_student_sees_is_plain_text() {
        let problem = |q: &Question| match validate_questions(std::slice::from_ref(q), &request(1)) {
            Err(OutputError::BadQuestion { index: 0, problem }) => problem,
            other => panic!("{other:?}"),
        };
        let mut q = question("q?");
        q.explanation = " ".into();
        assert_eq!(problem(&q), "explanation is empty");
        let mut q = question("q?");
        q.options[2] = "line\nbreak".into();
        assert_eq!(problem(&q), "option 2 has a line break");
        let mut q = question("q?");
        q.question = "Is `x` set?".into();
        assert_eq!(
            problem(&q),
            "question has a backtick (Markdown code); write plain text"
        );
        q.question = "q?".into();
        q.correct_answer = " b".into();
        assert_eq!(problem(&q), "correct_answer is not one of the options");
        let mut q = question("q?");
        q.options.push("None of the above".into());
        assert!(
            problem(&q).contains("refers to the other options"),
            "{}",
            problem(&q)
        );
    }

    #[test]
    fn tidying_trims_what_a_model_pads() {
        let mut q = question("  q?\n");
        q.options = vec![" a".into(), "b ".into(), "\tnot q?".into()];
        q.correct_answer = "b\n".into();
        q.explanation = " because ".into();
        let mut set = [q];
        tidy_questions(&mut set);
        assert_eq!(set[0], question("q?"));
        assert_eq!(validate_questions(&set, &request(1)), Ok(()));
    }
}

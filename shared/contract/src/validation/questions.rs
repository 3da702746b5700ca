//! The checks on a model's questions: the count asked for, well-formed options, the requested
//! difficulty, no repeats.

use std::collections::HashSet;

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
}

/// Checks a model's questions against the request: the count, non-empty text, 2–6 unique
/// options, `correct_answer` among them, the requested difficulty, and no two questions alike.
pub fn validate_questions(questions: &[Question], request: &GenerationRequest) -> Result<(), OutputError> {
    let expected = request.num_questions as usize;
    if questions.len() != expected {
        return Err(OutputError::WrongCount {
            expected,
            got: questions.len(),
        });
    }
    let mut seen = HashSet::with_capacity(questions.len());
    for (index, q) in questions.iter().enumerate() {
        let bad = |problem: &str| OutputError::BadQuestion {
            index,
            problem: problem.to_owned(),
        };
        if q.question.trim().is_empty() {
            return Err(bad("empty question text"));
        }
        if !OPTIONS_RANGE.contains(&q.options.len()) {
            return Err(bad("must have 2 to 6 options"));
        }
        if q.options.iter().any(|o| o.trim().is_empty()) {
            return Err(bad("empty option"));
        }
        let unique: HashSet<String> = q.options.iter().map(|o| normalise(o)).collect();
        if unique.len() != q.options.len() {
            return Err(bad("options are not unique"));
        }
        if !q.options.iter().any(|o| o == &q.correct_answer) {
            return Err(bad("correct_answer is not one of the options"));
        }
        if q.difficulty != request.difficulty {
            return Err(bad("difficulty differs from the request"));
        }
        if !seen.insert(normalise(&q.question)) {
            return Err(bad("duplicates an earlier question"));
        }
    }
    Ok(())
}

/// Case- and whitespace-insensitive form used to compare texts.
fn normalise(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
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
            options: vec!["a".into(), "b".into(), "c".into()],
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
        repeated_option.options = vec!["a".into(), " A ".into(), "b".into()];
        let mut blank = question("q?");
        blank.question = "  ".into();
        let mut other_difficulty = question("q?");
        other_difficulty.difficulty = Difficulty::Hard;
        for bad in [
            wrong_answer,
            one_option,
            seven_options,
            repeated_option,
            blank,
            other_difficulty,
        ] {
            assert!(
                matches!(
                    validate_questions(std::slice::from_ref(&bad), &request(1)),
                    Err(OutputError::BadQuestion { index: 0, .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_wrong_count_and_duplicates() {
        assert_eq!(
            validate_questions(&[question("a?")], &request(2)),
            Err(OutputError::WrongCount { expected: 2, got: 1 })
        );
        assert!(matches!(
            validate_questions(&[question("Same?"), question("same? ")], &request(2)),
            Err(OutputError::BadQuestion { index: 1, .. })
        ));
    }
}

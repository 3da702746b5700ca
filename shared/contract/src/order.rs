//! The order a student sees a question's options in. Language models put the correct option in
//! the same few positions far more often than chance, so the generator reorders every question's
//! options before publishing; the order then carries no information about the answer.
//!
//! The order is deterministic: each option is ranked by a UUIDv5 (SHA-1, RFC 9562) of the
//! `request_id`, the question's index and the option's text, so the same answer to the same
//! request is published in the same order, byte for byte, by a retry, a replay or another
//! version of this code. The model's own order plays no part: ranking by a hash of the text makes
//! every permutation equally likely whatever order the options arrived in.

use uuid::Uuid;

use crate::events::Question;

/// Namespace of the option ranks. Never change it: the published order depends on it.
const OPTION_ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x3b9e_51d2_7c04_4a8f_b6e1_0d2f_95a4_c873);

/// Reorders each question's options by its rank for `request_id`. `correct_answer` is a text,
/// not a position, so it still names the same option.
pub fn shuffle_options(questions: &mut [Question], request_id: &str) {
    for (index, question) in questions.iter_mut().enumerate() {
        question
            .options
            .sort_by_cached_key(|option| rank(request_id, index, option));
    }
}

fn rank(request_id: &str, index: usize, option: &str) -> u128 {
    // NUL cannot occur in a request_id (its pattern) nor in a validated option, so the three
    // parts cannot run into each other.
    let name = format!("{request_id}\0{index}\0{option}");
    Uuid::new_v5(&OPTION_ORDER_NAMESPACE, name.as_bytes()).as_u128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Difficulty, QuestionType};

    fn question(options: &[&str]) -> Question {
        Question {
            question: "q?".into(),
            kind: QuestionType::MultipleChoice,
            options: options.iter().map(|s| s.to_string()).collect(),
            correct_answer: options[0].into(),
            explanation: "e".into(),
            difficulty: Difficulty::Easy,
        }
    }

    #[test]
    fn the_order_is_pinned_for_a_request() {
        // A literal: if this changes, every replayed response changes its questions' order.
        let mut set = [question(&["a", "b", "c", "d"]), question(&["a", "b", "c", "d"])];
        shuffle_options(&mut set, "req-123");
        assert_eq!(set[0].options, ["b", "d", "a", "c"]);
        assert_eq!(set[1].options, ["d", "b", "a", "c"]);
        assert!(set.iter().all(|q| q.correct_answer == "a"));
    }

    #[test]
    fn the_model_order_plays_no_part() {
        let mut one = [question(&["a", "b", "c", "d"])];
        let mut other = [question(&["d", "c", "b", "a"])];
        shuffle_options(&mut one, "req-1");
        shuffle_options(&mut other, "req-1");
        assert_eq!(one[0].options, other[0].options);
        let mut elsewhere = [question(&["a", "b", "c", "d"])];
        shuffle_options(&mut elsewhere, "req-2");
        assert_ne!(
            elsewhere[0].options, one[0].options,
            "another request, another order"
        );
    }

    #[test]
    fn every_position_is_equally_likely_for_every_option_count() {
        // The 1 % critical values of chi-square with 1 to 5 degrees of freedom.
        let critical = [6.635, 9.210, 11.345, 13.277, 15.086];
        for (n, critical) in (2..=6).zip(critical) {
            let names: Vec<String> = (0..n).map(|i| format!("option {i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut positions = vec![0usize; n];
            for request in 0..2_000 {
                let mut set = vec![question(&names); 5];
                shuffle_options(&mut set, &format!("req-{request}"));
                for q in &set {
                    positions[q.options.iter().position(|o| *o == q.correct_answer).unwrap()] += 1;
                }
            }
            let expected = 10_000.0 / n as f64;
            let statistic: f64 = positions
                .iter()
                .map(|&o| (o as f64 - expected).powi(2) / expected)
                .sum();
            assert!(
                statistic < critical,
                "{n} options: {positions:?}, chi-square {statistic:.2}"
            );
        }
    }
}

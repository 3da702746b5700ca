//! Options that give the answer away: the two tells common enough in model output to be worth a
//! rule, each cheap to check. Others (grammatical agreement with the stem, an option that repeats
//! the question's words) need language understanding and are left to the prompt.

use super::text::option_key;

/// Options that speak of the other options' positions. The generator shuffles every question's
/// options, so "above" means nothing once they reach the student; and as distractors they are a
/// known tell (a test-wise student rules them out).
const POSITIONAL: [&str; 8] = [
    "all of the above",
    "none of the above",
    "all the above",
    "none of these",
    "all of these",
    "both of the above",
    "neither of the above",
    "all of the options",
];

/// The correct answer is a tell when it is longer than twice the longest other option and at
/// least this many characters longer (so "16" against "4" is not one).
const LONGER_BY_AT_LEAST: usize = 20;

/// Why the question's options give its answer away, if they do.
pub(super) fn tell(options: &[String], correct_answer: &str) -> Option<String> {
    if let Some(option) = options.iter().find(|o| {
        let key = option_key(o);
        POSITIONAL.contains(&key.trim_end_matches('.'))
    }) {
        return Some(format!(
            "option {option:?} refers to the other options, whose order is shuffled"
        ));
    }
    let length = |s: &str| s.chars().count();
    let longest_other = options
        .iter()
        .filter(|o| o.as_str() != correct_answer)
        .map(|o| length(o))
        .max()?;
    let correct = length(correct_answer);
    if correct > 2 * longest_other && correct - longest_other >= LONGER_BY_AT_LEAST {
        return Some(format!(
            "the correct answer ({correct} characters) is far longer than every other option \
             (at most {longest_other}): make the options similar in length"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn positional_options_are_tells_whether_or_not_correct() {
        for positional in ["None of the above", "ALL OF THE ABOVE.", "all  of these"] {
            let list = options(&["a", "b", positional]);
            assert!(tell(&list, "a").is_some(), "{positional}");
            assert!(tell(&list, positional).is_some(), "{positional}");
        }
        assert_eq!(tell(&options(&["above", "below", "beside"]), "above"), None);
    }

    #[test]
    fn a_far_longer_correct_answer_is_a_tell_at_the_threshold() {
        let short = options(&["Yes", "Maybe"]);
        // Longest other: 5 characters. 25 is more than twice it and 20 longer.
        let long = "x".repeat(25);
        let mut list = short.clone();
        list.push(long.clone());
        assert!(tell(&list, &long).is_some());
        // 24: only 19 longer.
        let shorter = "x".repeat(24);
        let mut list = short.clone();
        list.push(shorter.clone());
        assert_eq!(tell(&list, &shorter), None);
        // A long distractor tells nothing: picking the longest would be wrong.
        let mut list = short;
        list.push(long);
        assert_eq!(tell(&list, "Yes"), None);
    }

    #[test]
    fn twice_as_long_is_not_enough_when_both_are_long() {
        // 60 against 30: 30 longer but exactly twice, not more.
        let list = options(&[&"a".repeat(30), &"b".repeat(60)]);
        assert_eq!(tell(&list, &"b".repeat(60)), None);
        let list = options(&[&"a".repeat(30), &"b".repeat(61)]);
        assert!(tell(&list, &"b".repeat(61)).is_some());
    }

    #[test]
    fn short_answers_differ_in_length_freely() {
        assert_eq!(tell(&options(&["4", "16", "8"]), "16"), None);
    }
}

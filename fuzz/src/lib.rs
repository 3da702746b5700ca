//! The properties the fuzz targets check, beyond "does not panic".

use qgen_contract::events::{GenerationRequest, Question};
use qgen_contract::order::shuffle_options;
use qgen_contract::validation::{
    Limits, MAX_CONTEXT_CHARS, MAX_REQUEST_ID_CHARS, MAX_TOPIC_CHARS, RejectionCode, ValidationError,
    parse_request_body, validate_questions,
};

/// A request that passed validation obeys every rule, and is a fixed point: serialised as the
/// API publishes it, it validates again to itself (what the API accepts, the generator accepts).
pub fn assert_valid_request(request: &GenerationRequest, limits: &Limits) {
    let id = &request.request_id;
    assert!(
        !id.is_empty() && id.len() <= MAX_REQUEST_ID_CHARS,
        "request_id length: {id:?}"
    );
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')),
        "request_id characters: {id:?}"
    );
    let topic = &request.topic;
    assert_eq!(topic.trim(), topic, "topic is trimmed");
    assert!(
        !topic.is_empty() && topic.chars().count() <= MAX_TOPIC_CHARS,
        "topic length: {topic:?}"
    );
    assert!(
        !topic.chars().any(char::is_control),
        "topic has a control character: {topic:?}"
    );
    assert!((1..=limits.max_questions).contains(&request.num_questions));
    if let Some(context) = &request.context {
        assert!(
            !context.trim().is_empty(),
            "an empty context is absent, not empty"
        );
        assert!(context.chars().count() <= MAX_CONTEXT_CHARS);
        assert!(
            !context
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')),
            "context has a control character: {context:?}"
        );
    }
    let published = serde_json::to_vec(request).expect("a request serialises");
    let again = parse_request_body(&published, limits).expect("a published request validates again");
    assert_eq!(&again, request, "validation is a fixed point");
}

/// A refusal names its field and says what is wrong (its code is a `RejectionCode`: stable by
/// type).
pub fn assert_clear_refusal(error: &ValidationError) {
    assert!(!error.field.is_empty(), "no field named: {error:?}");
    assert!(!error.message.is_empty(), "no message: {error:?}");
    if error.code == RejectionCode::InvalidJson {
        assert_eq!(error.field, "body");
    }
}

/// A question set that passed validation obeys every rule of docs/DESIGN.md ("Question rules"),
/// checked here in other code than the validator's; and shuffling keeps it valid: the same
/// options, the same correct answer.
pub fn assert_valid_questions(questions: &[Question], request: &GenerationRequest) {
    assert_eq!(questions.len(), request.num_questions as usize, "count");
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    for (i, q) in questions.iter().enumerate() {
        assert_plain(&q.question, true);
        assert_plain(&q.explanation, true);
        assert!((2..=6).contains(&q.options.len()), "option count: {q:?}");
        for option in &q.options {
            assert_plain(option, false);
            let folded = fold(option);
            assert!(
                !["all of the above", "none of the above"].contains(&folded.trim_end_matches('.')),
                "an option refers to the others: {option:?}"
            );
        }
        for (a, b) in pairs(&q.options) {
            assert_ne!(fold(a), fold(b), "options alike: {q:?}");
        }
        assert!(q.options.contains(&q.correct_answer), "correct_answer: {q:?}");
        let longest_other = q
            .options
            .iter()
            .filter(|o| **o != q.correct_answer)
            .map(|o| o.chars().count())
            .max()
            .unwrap();
        let correct = q.correct_answer.chars().count();
        assert!(
            correct <= 2 * longest_other || correct < longest_other + 20,
            "the correct answer stands out by its length: {q:?}"
        );
        assert_eq!(q.difficulty, request.difficulty, "difficulty");
        for other in &questions[..i] {
            assert_ne!(fold(&other.question), fold(&q.question), "same question twice");
        }
    }
    let mut shuffled = questions.to_vec();
    shuffle_options(&mut shuffled, &request.request_id);
    for (before, after) in questions.iter().zip(&shuffled) {
        let (mut a, mut b) = (before.options.clone(), after.options.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b, "shuffling keeps the options");
        assert_eq!(before.correct_answer, after.correct_answer);
    }
    assert_eq!(
        validate_questions(&shuffled, request),
        Ok(()),
        "shuffled, still valid"
    );
}

/// Non-empty, trimmed, no control characters (but line breaks where `lines`), no backtick.
fn assert_plain(text: &str, lines: bool) {
    assert!(!text.is_empty() && text.trim() == text, "not trimmed: {text:?}");
    assert!(
        !text.chars().any(|c| c.is_control() && !(lines && c == '\n')),
        "control character: {text:?}"
    );
    assert!(!text.contains('`'), "Markdown code: {text:?}");
}

fn pairs<T>(items: &[T]) -> impl Iterator<Item = (&T, &T)> {
    items
        .iter()
        .enumerate()
        .flat_map(move |(i, a)| items[i + 1..].iter().map(move |b| (a, b)))
}

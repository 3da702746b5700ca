//! The properties the fuzz targets check, beyond "does not panic".

use qgen_contract::events::GenerationRequest;
use qgen_contract::validation::{
    Limits, MAX_CONTEXT_CHARS, MAX_REQUEST_ID_CHARS, MAX_TOPIC_CHARS, RejectionCode, ValidationError,
    parse_request_body,
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

//! Small fixtures many tests build the same way: an environment as a lookup closure, and a
//! plain valid request.

use std::collections::HashMap;

use qgen_contract::events::{Difficulty, GenerationRequest};

/// The lookup closure the `from_lookup` configuration readers take, answering from `pairs`
/// instead of the process environment (which tests running in parallel would share).
pub fn env_lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// A valid request `req-1` for `num_questions` medium questions on "Python Loops", no context.
pub fn sample_request(num_questions: u32) -> GenerationRequest {
    GenerationRequest {
        request_id: "req-1".into(),
        topic: "Python Loops".into(),
        num_questions,
        difficulty: Difficulty::Medium,
        context: None,
    }
}

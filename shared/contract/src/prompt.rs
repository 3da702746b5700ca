//! The request data the generator hands Gemini: one JSON document in the last part of the user
//! message. The generator writes it with [`PromptData::to_text`]; every stand-in (the test kit's,
//! the benchmarks', the local stack's offline answers) reads it with
//! [`PromptData::from_generate_content`]. Changing the layout changes this type, so a stand-in
//! that still expects the old one stops compiling instead of answering wrongly at run time.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::{Difficulty, GenerationRequest};

/// What the model is asked for: the request's own fields and nothing else, so that the system
/// instruction can tell the model to treat every value here as data, never as instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptData {
    /// What the questions are about.
    pub topic: String,
    /// How many questions.
    pub num_questions: u32,
    /// How hard.
    pub difficulty: Difficulty,
    /// Source material every question must be based on, when the request has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl From<&GenerationRequest> for PromptData {
    fn from(request: &GenerationRequest) -> Self {
        PromptData {
            topic: request.topic.clone(),
            num_questions: request.num_questions,
            difficulty: request.difficulty,
            context: request.context.clone(),
        }
    }
}

impl PromptData {
    /// The text of the data part, as the generator sends it.
    pub fn to_text(&self) -> String {
        // A struct of strings and numbers: serializing it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The data a `generateContent` body carries in the last part of its last content, if that
    /// part holds one.
    pub fn from_generate_content(body: &Value) -> Option<Self> {
        let text = body["contents"].as_array()?.last()?["parts"].as_array()?.last()?["text"].as_str()?;
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(context: Option<&str>) -> GenerationRequest {
        GenerationRequest {
            request_id: "req-1".into(),
            topic: "Python loops".into(),
            num_questions: 4,
            difficulty: Difficulty::Hard,
            context: context.map(str::to_owned),
        }
    }

    #[test]
    fn what_the_generator_writes_is_what_a_stand_in_reads_back() {
        for context in [None, Some("for i in range(3): print(i)")] {
            let data = PromptData::from(&request(context));
            let body = json!({"contents": [{"role": "user", "parts": [
                {"text": "Write the quiz questions for this request (JSON data):"},
                {"text": data.to_text()},
            ]}]});

            assert_eq!(PromptData::from_generate_content(&body), Some(data));
        }
    }

    #[test]
    fn the_data_part_holds_the_request_fields_and_no_others() {
        let text = PromptData::from(&request(None)).to_text();

        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"topic": "Python loops", "num_questions": 4, "difficulty": "hard"})
        );
    }

    #[test]
    fn a_body_without_a_data_part_has_no_prompt_data() {
        for body in [
            json!({}),
            json!({"contents": []}),
            json!({"contents": [{"parts": [{"text": "not json"}]}]}),
            json!({"contents": [{"parts": [{"text": "{\"topic\": \"t\"}"}]}]}),
        ] {
            assert_eq!(PromptData::from_generate_content(&body), None, "{body}");
        }
    }
}

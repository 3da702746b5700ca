//! Reading a `generateContent` reply. Only a finished, unblocked answer whose text parses as a
//! [`QuestionSet`] and passes the contract's validation (after trimming each field) becomes
//! questions: the model's output is untrusted input like any other.

use qgen_contract::events::{GenerationRequest, Question};
use qgen_contract::validation::{tidy_questions, validate_questions};
use serde::Deserialize;

use super::schema::QuestionSet;
use crate::source::{GenerationError, cause};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reply {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<Usage>,
    /// The model that actually answered (`modelVersion`): Google forwards calls for a retired
    /// model to another one instead of answering 404.
    #[serde(default)]
    model_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

/// Token counts Gemini reports for a call (`usageMetadata`,
/// <https://ai.google.dev/api/generate-content#UsageMetadata>). What a call costs: prompt tokens
/// less cached ones at the input price, cached ones at the cached price, candidates and thoughts
/// at the output price (<https://ai.google.dev/gemini-api/docs/pricing>).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Tokens in the prompt, cached ones included.
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Tokens of the prompt served from the context cache (implicit caching included).
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Tokens of the answer.
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Tokens the model spent thinking: not in the answer, billed as output.
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// All of them.
    #[serde(default)]
    pub total_token_count: u64,
}

impl Usage {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Usage) {
        self.prompt_token_count += other.prompt_token_count;
        self.cached_content_token_count += other.cached_content_token_count;
        self.candidates_token_count += other.candidates_token_count;
        self.thoughts_token_count += other.thoughts_token_count;
        self.total_token_count += other.total_token_count;
    }
}

/// Reads a 200 reply: blocked prompts and non-`STOP` finishes are errors, the text must parse
/// as a [`QuestionSet`], and the questions must pass validation against `request`.
pub fn parse_reply(
    body: &[u8],
    request: &GenerationRequest,
) -> Result<(Vec<Question>, Usage), GenerationError> {
    let read = read_reply(body, request);
    read.outcome.map(|q| (q, read.usage))
}

/// What a 200 reply came to, usage and all.
pub(super) struct Read {
    /// Tokens spent, even on a reply that is rejected.
    pub usage: Usage,
    /// `modelVersion`, when the reply names the model that answered.
    pub model_version: Option<String>,
    /// The questions, or why there are none.
    pub outcome: Result<Vec<Question>, GenerationError>,
}

/// [`parse_reply`], keeping the usage and the answering model of a reply that is rejected
/// (its tokens were still spent).
pub(super) fn read_reply(body: &[u8], request: &GenerationRequest) -> Read {
    let mut reply: Reply = match serde_json::from_slice(body) {
        Ok(reply) => reply,
        Err(e) => {
            let error =
                GenerationError::invalid_output("reply is not a generateContent response", Some(cause(e)));
            return Read {
                usage: Usage::default(),
                model_version: None,
                outcome: Err(error),
            };
        }
    };
    let usage = reply.usage_metadata.unwrap_or_default();
    let model_version = reply.model_version.take().filter(|m| !m.trim().is_empty());
    Read {
        usage,
        model_version,
        outcome: questions_of(reply, request),
    }
}

fn questions_of(reply: Reply, request: &GenerationRequest) -> Result<Vec<Question>, GenerationError> {
    if let Some(reason) = reply.prompt_feedback.and_then(|f| f.block_reason) {
        return Err(GenerationError::Blocked(format!("prompt blocked: {reason}")));
    }
    let candidate = reply
        .candidates
        .into_iter()
        .next()
        .ok_or_else(|| GenerationError::invalid_output("reply has no candidates", None))?;
    match candidate.finish_reason.as_deref() {
        Some("STOP") | None => {}
        Some("MAX_TOKENS") => {
            return Err(GenerationError::invalid_output(
                "output truncated (MAX_TOKENS)",
                None,
            ));
        }
        Some(other) => return Err(GenerationError::Blocked(format!("generation stopped: {other}"))),
    }
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.thought)
        .filter_map(|p| p.text)
        .collect();
    let mut set: QuestionSet = serde_json::from_str(&text)
        .map_err(|e| GenerationError::invalid_output("text does not match the schema", Some(cause(e))))?;
    // Whitespace around a field is trimmed here; every other rule is worth a repair call.
    tidy_questions(&mut set.questions);
    validate_questions(&set.questions, request)
        .map_err(|e| GenerationError::invalid_output("the questions break a rule", Some(cause(e))))?;
    Ok(set.questions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_contract::events::Difficulty;
    use qgen_testkit::sample_request as request;
    use qgen_testkit::{gemini_reply, sample_questions};
    use serde_json::json;

    fn reply_with(questions: &[Question], finish: &str) -> Vec<u8> {
        gemini_reply(&json!({ "questions": questions }).to_string(), finish)
            .to_string()
            .into_bytes()
    }

    #[test]
    fn parses_good_questions_and_usage() {
        let questions = sample_questions("Python Loops", 3, Difficulty::Medium);
        let (parsed, usage) = parse_reply(&reply_with(&questions, "STOP"), &request(3)).unwrap();
        assert_eq!(parsed, questions);
        assert_eq!(usage.total_token_count, 600);
    }

    #[test]
    fn reads_thinking_and_cached_tokens() {
        let questions = sample_questions("Python Loops", 3, Difficulty::Medium);
        let mut reply = gemini_reply(&json!({ "questions": questions }).to_string(), "STOP");
        reply["usageMetadata"] = json!({
            "promptTokenCount": 900, "cachedContentTokenCount": 512, "candidatesTokenCount": 480,
            "thoughtsTokenCount": 1200, "totalTokenCount": 2580
        });

        let (_, usage) = parse_reply(reply.to_string().as_bytes(), &request(3)).unwrap();

        assert_eq!(
            usage,
            Usage {
                prompt_token_count: 900,
                cached_content_token_count: 512,
                candidates_token_count: 480,
                thoughts_token_count: 1200,
                total_token_count: 2580,
            }
        );
    }

    #[test]
    fn classifies_bad_replies() {
        let questions = sample_questions("t", 3, Difficulty::Medium);
        let err = |body: &[u8]| parse_reply(body, &request(3)).unwrap_err().code().as_str();
        assert_eq!(err(&reply_with(&questions, "SAFETY")), "gemini_blocked");
        assert_eq!(err(&reply_with(&questions, "MAX_TOKENS")), "invalid_model_output");
        assert_eq!(err(&reply_with(&questions[..2], "STOP")), "invalid_model_output");
        assert_eq!(
            err(gemini_reply("{\"questions\": [1]}", "STOP")
                .to_string()
                .as_bytes()),
            "invalid_model_output"
        );
        assert_eq!(err(b"<html>"), "invalid_model_output");
        let blocked = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}).to_string();
        assert_eq!(err(blocked.as_bytes()), "gemini_blocked");
    }
}

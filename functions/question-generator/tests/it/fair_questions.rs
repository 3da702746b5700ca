//! Questions a student cannot game (docs/DESIGN.md, "Question rules"), through the real handler
//! and the real Gemini client against an HTTP stand-in: the correct answer's position carries no
//! information, the order is the same every time a request is answered, and a set that asks the
//! same thing twice gets one repair call, then `invalid_model_output`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use qgen_adapters::msk::record_json;
use qgen_contract::events::{Difficulty, GenerationRequest, RequestEvent};
use qgen_contract::msk::kafka_event;
use qgen_contract::prompt::PromptData;
use qgen_testkit::{
    AnswersAsAsked, GeminiStandIn, RecordingPublisher, assert_matches_schema, gemini_reply, sample_questions,
};
use question_generator::handler::Generator;
use rdkafka::message::OwnedMessage;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::batches::{config, gemini};

/// One record per request id, each asking for `n` medium questions about "Topic <i>".
fn batch(request_ids: &[String], n: u32) -> KafkaEvent {
    let records: Vec<Value> = request_ids
        .iter()
        .enumerate()
        .map(|(i, request_id)| {
            let event = RequestEvent::new_request(GenerationRequest {
                request_id: request_id.clone(),
                topic: format!("Topic {i}"),
                num_questions: n,
                difficulty: Difficulty::Medium,
                context: None,
            });
            record_json(&OwnedMessage::new(
                Some(serde_json::to_vec(&event).unwrap()),
                Some(request_id.as_bytes().to_vec()),
                "question.request".into(),
                rdkafka::Timestamp::CreateTime(1_795_773_600_000),
                (i % 3) as i32,
                i as i64,
                None,
            ))
        })
        .collect();
    kafka_event(records, "arn:aws:kafka:local", "127.0.0.1:9092")
}

/// Answers `request_ids` once through a fresh handler; the `eventData` of each response, by
/// request id, each checked against the documented schema.
async fn answer(stand_in: &GeminiStandIn, request_ids: &[String], n: u32) -> HashMap<String, Value> {
    let config = config("unused:9092", &stand_in.base_url(), 16);
    let client = gemini(&config);
    let publisher = RecordingPublisher::new();
    let generator = Generator::new(client, &publisher, &config);
    let report = generator
        .handle(&batch(request_ids, n), Instant::now() + Duration::from_secs(60))
        .await;
    assert_eq!(report.records, request_ids.len());
    publisher
        .on_topic("question.response")
        .into_iter()
        .map(|record| {
            let event = record.json();
            assert_matches_schema("response-event.schema.json", &event);
            (record.key_str().unwrap().to_owned(), event["eventData"].clone())
        })
        .collect()
}

/// Pearson's chi-square statistic of `observed` counts against equal expected counts.
fn chi_square(observed: &[usize]) -> f64 {
    let total: usize = observed.iter().sum();
    let expected = total as f64 / observed.len() as f64;
    observed
        .iter()
        .map(|&o| (o as f64 - expected).powi(2) / expected)
        .sum()
}

#[tokio::test]
async fn the_correct_answer_lands_in_every_position_equally_often() {
    // The stand-in puts the correct answer first, in every one of 4 options, as a biased model
    // would; 100 requests of 20 questions are 2 000 questions.
    let stand_in = GeminiStandIn::answering().await;
    let request_ids: Vec<String> = (0..100).map(|i| format!("req-fair-{i}")).collect();
    let responses = answer(&stand_in, &request_ids, 20).await;

    let mut positions = [0usize; 4];
    for data in responses.values() {
        assert_eq!(data["status"], "completed", "{data}");
        for question in data["questions"].as_array().unwrap() {
            let options = question["options"].as_array().unwrap();
            assert_eq!(options.len(), 4);
            let at = options
                .iter()
                .position(|o| *o == question["correct_answer"])
                .expect("correct_answer is still one of the options");
            positions[at] += 1;
        }
    }
    let statistic = chi_square(&positions);
    println!("correct-answer positions {positions:?}: chi-square {statistic:.2} (3 degrees of freedom)");
    assert_eq!(positions.iter().sum::<usize>(), 2000);
    // The 1 % critical value of chi-square with 3 degrees of freedom. The order is seeded from
    // the request ids, so this figure is the same on every run: the test cannot flake.
    assert!(
        statistic < 11.345,
        "positions {positions:?}, chi-square {statistic:.2}"
    );
}

#[tokio::test]
async fn the_same_request_is_published_in_the_same_order_every_time() {
    let stand_in = GeminiStandIn::answering().await;
    let request_ids = vec!["req-again".to_owned()];
    let first = answer(&stand_in, &request_ids, 5).await;
    let second = answer(&stand_in, &request_ids, 5).await;
    assert_eq!(first["req-again"]["status"], "completed");
    assert_eq!(first["req-again"]["questions"], second["req-again"]["questions"]);
    let model_order = serde_json::to_value(sample_questions("Topic 0", 5, Difficulty::Medium)).unwrap();
    assert_ne!(
        first["req-again"]["questions"], model_order,
        "the options are reordered, not published as the model wrote them"
    );
}

/// Answers with the questions asked for, but the last one repeats the first in other case and
/// punctuation, for the first `bad_replies` calls; as asked after that.
struct Repeats {
    bad_replies: usize,
    calls: AtomicUsize,
}

impl Respond for Repeats {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.bad_replies {
            return AnswersAsAsked.respond(request);
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let data = PromptData::from_generate_content(&body).unwrap();
        let mut questions = sample_questions(&data.topic, data.num_questions as usize, data.difficulty);
        let last = questions.len() - 1;
        questions[last].question = questions[0].question.to_uppercase().replace('?', " !");
        let text = json!({ "questions": questions }).to_string();
        ResponseTemplate::new(200).set_body_json(gemini_reply(&text, "STOP"))
    }
}

fn repair_text(call: &Request) -> Option<String> {
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    let parts = body["contents"][0]["parts"].as_array().unwrap();
    (parts.len() == 3).then(|| parts[1]["text"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_repeated_question_gets_one_repair_call_naming_it_then_fails() {
    let stand_in = GeminiStandIn::start(Repeats {
        bad_replies: usize::MAX,
        calls: AtomicUsize::new(0),
    })
    .await;
    let responses = answer(&stand_in, &["req-dup".to_owned()], 3).await;

    let calls = stand_in.calls().await;
    assert_eq!(calls.len(), 2, "the first call and one repair");
    assert_eq!(repair_text(&calls[0]), None);
    let first = &sample_questions("Topic 0", 3, Difficulty::Medium)[0].question;
    let repair = repair_text(&calls[1]).expect("the second call is a repair");
    assert!(
        repair.contains(&format!("question 2 duplicates question 0 ({first:?})")),
        "{repair}"
    );
    let data = &responses["req-dup"];
    assert_eq!(data["status"], "failed");
    assert_eq!(data["error"]["code"], "invalid_model_output");
    let message = data["error"]["message"].as_str().unwrap();
    assert!(message.contains("question 2 duplicates question 0"), "{message}");
}

#[tokio::test]
async fn a_repair_that_removes_the_repeat_completes() {
    let stand_in = GeminiStandIn::start(Repeats {
        bad_replies: 1,
        calls: AtomicUsize::new(0),
    })
    .await;
    let responses = answer(&stand_in, &["req-dup-once".to_owned()], 3).await;
    assert_eq!(stand_in.calls().await.len(), 2);
    assert_eq!(responses["req-dup-once"]["status"], "completed");
    assert_eq!(responses["req-dup-once"]["total_questions"], 3);
}

//! The generator's record decoder, on any record value: a valid request, an answerable invalid
//! one, or poison that keeps the record exactly as it came (for the DLQ) — never a panic.
//!
//! The first byte picks how the rest reaches the decoder: 0 as the value's bytes (base64-encoded
//! as the MSK trigger does), 1 as the base64 text itself (which may not be base64), 2 as no
//! value at all.

#![no_main]

use std::collections::HashMap;

use aws_lambda_events::event::kafka::KafkaRecord;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use qgen_contract::decode::{Decoded, InvalidRequest, MAX_RECORD_BYTES, PoisonRecord, decode_record};
use qgen_contract::validation::Limits;
use qgen_fuzz::{assert_clear_refusal, assert_valid_request};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (value_field, raw_value) = match mode % 3 {
        0 => (Some(BASE64.encode(rest)), Some(rest.to_vec())),
        1 => {
            let text = String::from_utf8_lossy(rest).into_owned();
            let bytes = BASE64
                .decode(&text)
                .ok()
                .unwrap_or_else(|| text.clone().into_bytes());
            (Some(text), Some(bytes))
        }
        _ => (None, None),
    };
    let mut record = KafkaRecord::default();
    record.topic = Some("question.request".into());
    record.partition = 2;
    record.offset = 42;
    record.key = Some(BASE64.encode("req-1"));
    record.value = value_field;
    record.headers = vec![HashMap::from([("eventType".to_string(), vec![-1_i8, 97])])];

    let limits = Limits::default();
    match decode_record("question.request-2", &record, &limits) {
        Decoded::Request {
            source,
            event_id,
            request,
            ..
        } => {
            assert_eq!(
                (source.topic.as_str(), source.partition, source.offset),
                ("question.request", 2, 42)
            );
            assert!(!event_id.is_empty() && event_id.chars().count() <= 256);
            assert!(raw_value.is_some_and(|v| !v.is_empty() && v.len() <= MAX_RECORD_BYTES));
            assert_valid_request(&request, &limits);
        }
        Decoded::Invalid(InvalidRequest {
            source,
            event_id,
            request_id,
            error,
            ..
        }) => {
            assert_eq!((source.partition, source.offset), (2, 42));
            assert!(!event_id.is_empty());
            // The failed response must be addressable: the request_id alone is a valid request's.
            let probe = serde_json::json!({"request_id": request_id, "topic": "t", "num_questions": 1});
            assert!(
                qgen_contract::validation::parse_request_body(probe.to_string().as_bytes(), &limits).is_ok()
            );
            assert_clear_refusal(&error);
        }
        Decoded::Poison(PoisonRecord {
            source,
            key,
            value,
            headers,
            reason,
        }) => {
            // Nothing lost: the DLQ gets the record as it came, with where it came from and why.
            assert_eq!((source.partition, source.offset), (2, 42));
            assert_eq!(key.as_deref(), Some(&b"req-1"[..]));
            assert_eq!(headers, vec![("eventType".to_string(), vec![0xff, b'a'])]);
            match (mode % 3, &record.value) {
                (2, _) => assert_eq!(value, None),
                (_, Some(text)) if BASE64.decode(text).is_err() => {
                    assert_eq!(value.as_deref(), Some(text.as_bytes()));
                }
                _ => assert_eq!(value, raw_value),
            }
            assert!(!reason.is_empty());
        }
    }
});

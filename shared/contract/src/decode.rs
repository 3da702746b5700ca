//! Decoding an MSK batch (pure: no I/O).
//!
//! Every record ends up as exactly one [`Decoded`]: a request to generate, a request that breaks
//! a rule (answered with a `failed` response), or poison that cannot be answered at all (sent to
//! the DLQ). Nothing in a record can make decoding panic or stop the batch.

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use serde::Deserialize;

use crate::events::{GenerationRequest, REQUEST_EVENT_TYPE};
use crate::headers::TRACEPARENT;
use crate::msk::{record_headers, record_key, record_value};
use crate::trace::TraceContext;
use crate::validation::{Limits, RawRequest, ValidationError, validate};

/// Largest record value decoded; anything bigger is poison. Requests are well under 1 KiB and
/// the API refuses bodies over 64 KiB.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// Longest accepted `eventId`.
const MAX_EVENT_ID_CHARS: usize = 256;

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinates {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i64,
    /// Source offset.
    pub offset: i64,
}

/// What an answerable record says of its origin beyond its coordinates: the trace it belongs to
/// and when it was requested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    /// Its valid `traceparent` header; `None` when absent or malformed (a malformed one is
    /// replaced, never propagated).
    pub trace: Option<TraceContext>,
    /// The request event's `timestamp`, when it is an RFC 3339 time: where the request-to-response
    /// latency starts.
    pub requested_at: Option<std::time::SystemTime>,
}

impl Origin {
    /// The trace the record's answer continues: its own, or a new one when it had none.
    pub fn trace_or_new(&self) -> TraceContext {
        self.trace.unwrap_or_else(TraceContext::new_root)
    }
}

/// What one record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A valid request.
    Request {
        /// Source of the record.
        source: Coordinates,
        /// The request event's `eventId` (the response's is derived from it).
        event_id: String,
        /// The validated request.
        request: GenerationRequest,
        /// Its trace and request time.
        origin: Origin,
    },
    /// A request that can be answered but breaks a rule.
    Invalid(InvalidRequest),
    /// A record nobody can answer: it goes to the DLQ as it came.
    Poison(PoisonRecord),
}

/// A request that can be answered (`failed`, `invalid_request`) but breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    /// Source of the record.
    pub source: Coordinates,
    /// The request event's `eventId`.
    pub event_id: String,
    /// The request's id, which the `failed` response is keyed by.
    pub request_id: String,
    /// The broken rule.
    pub error: ValidationError,
    /// Its trace and request time.
    pub origin: Origin,
}

/// A record nobody can answer: it goes to the DLQ as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonRecord {
    /// Source of the record.
    pub source: Coordinates,
    /// The key as received.
    pub key: Option<Vec<u8>>,
    /// The value as received (the base64 text itself when it was not valid base64).
    pub value: Option<Vec<u8>>,
    /// The headers as received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Why it is poison.
    pub reason: String,
}

impl Decoded {
    /// Where the record came from, whatever it turned out to be.
    pub fn source(&self) -> &Coordinates {
        match self {
            Decoded::Request { source, .. }
            | Decoded::Invalid(InvalidRequest { source, .. })
            | Decoded::Poison(PoisonRecord { source, .. }) => source,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    event_id: String,
    event_type: String,
    // Read leniently: a timestamp of another type costs only the latency metric.
    #[serde(default)]
    timestamp: serde_json::Value,
    event_data: RawRequest,
}

/// Decodes every record of the batch, ordered by topic, partition and offset.
pub fn decode_batch(event: &KafkaEvent, limits: &Limits) -> Vec<Decoded> {
    let mut records: Vec<(&str, &KafkaRecord)> = event
        .records
        .iter()
        .flat_map(|(group, records)| records.iter().map(move |r| (group.as_str(), r)))
        .collect();
    records.sort_by(|(ga, a), (gb, b)| (ga, a.partition, a.offset).cmp(&(gb, b.partition, b.offset)));
    records
        .into_iter()
        .map(|(group, record)| decode_record(group, record, limits))
        .collect()
}

/// Decodes one record. `group` is its `topic-partition` key in the batch, used when the record
/// does not name its topic.
pub fn decode_record(group: &str, record: &KafkaRecord, limits: &Limits) -> Decoded {
    let topic = record.topic.clone().unwrap_or_else(|| {
        group
            .rsplit_once('-')
            .map_or(group, |(topic, _partition)| topic)
            .to_owned()
    });
    let source = Coordinates {
        topic,
        partition: record.partition,
        offset: record.offset,
    };
    let headers = record_headers(record);
    let key = record_key(record).unwrap_or_else(|_| record.key.as_ref().map(|k| k.as_bytes().to_vec()));
    let poison = |value: Option<Vec<u8>>, reason: String| {
        Decoded::Poison(PoisonRecord {
            source: source.clone(),
            key: key.clone(),
            value,
            headers: headers.clone(),
            reason,
        })
    };

    let value = match record_value(record) {
        Ok(Some(value)) => value,
        Ok(None) => return poison(None, "record has no value".into()),
        Err(e) => {
            return poison(
                record.value.as_ref().map(|v| v.as_bytes().to_vec()),
                e.to_string(),
            );
        }
    };
    if value.is_empty() {
        return poison(Some(value), "record value is empty".into());
    }
    if value.len() > MAX_RECORD_BYTES {
        return poison(
            Some(value),
            format!("record value is larger than {MAX_RECORD_BYTES} bytes"),
        );
    }
    let envelope: RawEnvelope = match serde_json::from_slice(&value) {
        Ok(envelope) => envelope,
        Err(e) => return poison(Some(value), format!("not a request envelope: {e}")),
    };
    if envelope.event_type != REQUEST_EVENT_TYPE {
        let reason = format!("unexpected eventType {:?}", envelope.event_type);
        return poison(Some(value), reason);
    }
    if envelope.event_id.is_empty() || envelope.event_id.chars().count() > MAX_EVENT_ID_CHARS {
        return poison(Some(value), "eventId is empty or too long".into());
    }
    let Some(request_id) = envelope.event_data.valid_request_id().map(str::to_owned) else {
        // Without a valid request_id nobody could match a response to this request.
        return poison(Some(value), "eventData.request_id is missing or invalid".into());
    };
    let origin = Origin {
        trace: headers
            .iter()
            .find(|(name, _)| name == TRACEPARENT)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
            .and_then(TraceContext::parse),
        requested_at: envelope
            .timestamp
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(std::time::SystemTime::from),
    };
    match validate(envelope.event_data, limits) {
        Ok(request) => Decoded::Request {
            source,
            event_id: envelope.event_id,
            request,
            origin,
        },
        Err(error) => Decoded::Invalid(InvalidRequest {
            source,
            event_id: envelope.event_id,
            request_id,
            error,
            origin,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_with(value: Option<&[u8]>) -> KafkaEvent {
        use base64::Engine;
        let mut record = json!({
            "topic": "question.request", "partition": 1, "offset": 7,
            "timestamp": 1_700_000_000_000_i64, "timestampType": "CREATE_TIME",
            "key": "cmVxLTE=", "headers": [{"eventType": [97]}]
        });
        if let Some(v) = value {
            record["value"] = base64::engine::general_purpose::STANDARD.encode(v).into();
        }
        serde_json::from_value(
            json!({"eventSource": "aws:kafka", "records": {"question.request-1": [record]}}),
        )
        .unwrap()
    }

    fn decode_one(value: Option<&[u8]>) -> Decoded {
        decode_batch(&event_with(value), &Limits::default()).remove(0)
    }

    fn poison_reason(value: Option<&[u8]>) -> String {
        match decode_one(value) {
            Decoded::Poison(PoisonRecord {
                reason, source, key, ..
            }) => {
                assert_eq!((source.partition, source.offset), (1, 7));
                assert_eq!(key.as_deref(), Some(&b"req-1"[..]));
                reason
            }
            other => panic!("expected poison, got {other:?}"),
        }
    }

    fn envelope(event_type: &str, data: serde_json::Value) -> Vec<u8> {
        json!({"eventId": "evt_1", "eventType": event_type, "timestamp": "t", "userId": "u", "eventData": data})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn decodes_a_valid_request() {
        let value = envelope(
            REQUEST_EVENT_TYPE,
            json!({"request_id": "req-1", "topic": "Loops", "num_questions": 2}),
        );
        match decode_one(Some(&value)) {
            Decoded::Request {
                event_id,
                request,
                source,
                origin,
            } => {
                assert_eq!(event_id, "evt_1");
                assert_eq!(request.request_id, "req-1");
                assert_eq!(request.num_questions, 2);
                assert_eq!(source.topic, "question.request");
                assert_eq!(
                    origin,
                    Origin::default(),
                    "no traceparent, a timestamp that is no time"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    fn origin_of(traceparent: &str, timestamp: serde_json::Value) -> Origin {
        let value = json!({"eventId": "evt_1", "eventType": REQUEST_EVENT_TYPE, "timestamp": timestamp,
            "eventData": {"request_id": "req-1", "topic": "Loops", "num_questions": 2}});
        let mut event = event_with(Some(value.to_string().as_bytes()));
        let record = &mut event.records.get_mut("question.request-1").unwrap()[0];
        let bytes = traceparent.bytes().map(|b| b as i8).collect();
        record
            .headers
            .push(std::collections::HashMap::from([(TRACEPARENT.to_owned(), bytes)]));
        match decode_batch(&event, &Limits::default()).remove(0) {
            Decoded::Request { origin, .. } => origin,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_keeps_its_valid_traceparent_and_request_time() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

        let origin = origin_of(valid, json!("2026-11-27T10:00:00.250Z"));

        assert_eq!(origin.trace.map(|t| t.to_header()).as_deref(), Some(valid));
        assert_eq!(
            origin.requested_at,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_773_600_250))
        );
        let malformed = origin_of(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            json!(17),
        );
        assert_eq!(
            malformed,
            Origin::default(),
            "replaced, never propagated; a number is no time"
        );
    }

    #[test]
    fn an_invalid_field_is_answerable_not_poison() {
        let value = envelope(
            REQUEST_EVENT_TYPE,
            json!({"request_id": "req-1", "topic": "", "num_questions": 2}),
        );
        match decode_one(Some(&value)) {
            Decoded::Invalid(InvalidRequest {
                request_id, error, ..
            }) => {
                assert_eq!(request_id, "req-1");
                assert_eq!(error.field, "topic");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_of_poison_is_named() {
        assert!(poison_reason(None).contains("no value"));
        assert!(poison_reason(Some(b"")).contains("empty"));
        assert!(poison_reason(Some(b"not json")).contains("not a request envelope"));
        assert!(poison_reason(Some(br#"{"hello":"world"}"#)).contains("not a request envelope"));
        let wrong_type = envelope("question.generation.response", json!({"request_id": "r"}));
        assert!(poison_reason(Some(&wrong_type)).contains("eventType"));
        let no_id = envelope(REQUEST_EVENT_TYPE, json!({"topic": "t", "num_questions": 1}));
        assert!(poison_reason(Some(&no_id)).contains("request_id"));
        let huge = vec![b'x'; MAX_RECORD_BYTES + 1];
        assert!(poison_reason(Some(&huge)).contains("larger"));
    }

    #[test]
    fn orders_records_by_partition_and_offset() {
        // Eight partitions, each group's records listed newest first: without the sort the
        // offsets come out descending in every run (the groups' own order, a HashMap's, is
        // sorted by chance once in 8! runs), so a removed or reversed sort always fails here.
        let records: serde_json::Map<String, serde_json::Value> = (0..8)
            .map(|partition| {
                let group: Vec<serde_json::Value> = [12, 11, 10]
                    .map(|offset| {
                        json!({
                            "topic": "question.request", "partition": partition, "offset": offset,
                            "timestamp": 1_700_000_000_000_i64, "timestampType": "CREATE_TIME",
                            "headers": []
                        })
                    })
                    .into();
                (format!("question.request-{partition}"), group.into())
            })
            .collect();
        let event: KafkaEvent =
            serde_json::from_value(json!({"eventSource": "aws:kafka", "records": records})).unwrap();

        let coords: Vec<(i64, i64)> = decode_batch(&event, &Limits::default())
            .iter()
            .map(|d| (d.source().partition, d.source().offset))
            .collect();

        let expected: Vec<(i64, i64)> = (0..8)
            .flat_map(|partition| [10, 11, 12].map(|offset| (partition, offset)))
            .collect();
        assert_eq!(coords, expected);
    }

    fn kind(value: &[u8]) -> &'static str {
        match decode_one(Some(value)) {
            Decoded::Request { .. } => "request",
            Decoded::Invalid(_) => "invalid",
            Decoded::Poison(_) => "poison",
        }
    }

    #[test]
    fn a_record_of_exactly_the_size_limit_decodes_and_one_byte_more_is_poison() {
        let mut value = envelope(
            REQUEST_EVENT_TYPE,
            json!({"request_id": "req-1", "topic": "Loops", "num_questions": 2}),
        );
        // JSON allows trailing whitespace: the request is the same, the record as large as allowed.
        value.resize(MAX_RECORD_BYTES, b' ');

        assert_eq!(kind(&value), "request");
        value.push(b' ');
        assert!(poison_reason(Some(&value)).contains("larger than 262144 bytes"));
    }

    #[test]
    fn an_event_id_of_the_longest_length_is_kept_and_a_longer_or_empty_one_is_poison() {
        let with_id = |id: String| {
            json!({"eventId": id, "eventType": REQUEST_EVENT_TYPE,
                "eventData": {"request_id": "req-1", "topic": "Loops", "num_questions": 1}})
            .to_string()
            .into_bytes()
        };

        assert_eq!(
            kind(&with_id("é".repeat(256))),
            "request",
            "256 characters, 512 bytes"
        );
        assert!(poison_reason(Some(&with_id("e".repeat(257)))).contains("eventId"));
        assert!(poison_reason(Some(&with_id(String::new()))).contains("eventId"));
    }

    #[test]
    fn event_data_that_is_not_an_object_is_poison_saying_what_was_expected() {
        let value = envelope(REQUEST_EVENT_TYPE, json!([1, 2]));
        let reason = poison_reason(Some(&value));
        assert!(reason.contains("expected a JSON object"), "{reason}");
    }

    #[test]
    fn a_request_without_a_valid_request_id_is_poison_nobody_could_answer() {
        for data in [
            json!({"request_id": "bad id!", "topic": "Loops", "num_questions": 1}),
            json!({"request_id": 7, "topic": "Loops", "num_questions": 1}),
        ] {
            let value = envelope(REQUEST_EVENT_TYPE, data);
            assert!(poison_reason(Some(&value)).contains("request_id"));
        }
    }
}

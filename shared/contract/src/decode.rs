//! Decoding an MSK batch (pure: no I/O).
//!
//! Every record ends up as exactly one [`Decoded`]: a request to generate, a request that breaks
//! a rule (answered with a `failed` response), or poison that cannot be answered at all (sent to
//! the DLQ). Nothing in a record can make decoding panic or stop the batch.

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use serde::Deserialize;

use crate::events::{GenerationRequest, REQUEST_EVENT_TYPE};
use crate::msk::{record_headers, record_key, record_value};
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
    },
    /// A request that can be answered but breaks a rule.
    Invalid {
        /// Source of the record.
        source: Coordinates,
        /// The request event's `eventId`.
        event_id: String,
        /// The request's id, which the `failed` response is keyed by.
        request_id: String,
        /// The broken rule.
        error: ValidationError,
    },
    /// A record nobody can answer: it goes to the DLQ as it came.
    Poison {
        /// Source of the record.
        source: Coordinates,
        /// The key as received.
        key: Option<Vec<u8>>,
        /// The value as received (the base64 text itself when it was not valid base64).
        value: Option<Vec<u8>>,
        /// The headers as received.
        headers: Vec<(String, Vec<u8>)>,
        /// Why it is poison.
        reason: String,
    },
}

impl Decoded {
    /// Where the record came from, whatever it turned out to be.
    pub fn source(&self) -> &Coordinates {
        match self {
            Decoded::Request { source, .. }
            | Decoded::Invalid { source, .. }
            | Decoded::Poison { source, .. } => source,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    event_id: String,
    event_type: String,
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
    let poison = |value: Option<Vec<u8>>, reason: String| Decoded::Poison {
        source: source.clone(),
        key: key.clone(),
        value,
        headers: headers.clone(),
        reason,
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
    match validate(envelope.event_data, limits) {
        Ok(request) => Decoded::Request {
            source,
            event_id: envelope.event_id,
            request,
        },
        Err(error) => Decoded::Invalid {
            source,
            event_id: envelope.event_id,
            request_id,
            error,
        },
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
            Decoded::Poison {
                reason, source, key, ..
            } => {
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
            } => {
                assert_eq!(event_id, "evt_1");
                assert_eq!(request.request_id, "req-1");
                assert_eq!(request.num_questions, 2);
                assert_eq!(source.topic, "question.request");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_invalid_field_is_answerable_not_poison() {
        let value = envelope(
            REQUEST_EVENT_TYPE,
            json!({"request_id": "req-1", "topic": "", "num_questions": 2}),
        );
        match decode_one(Some(&value)) {
            Decoded::Invalid {
                request_id, error, ..
            } => {
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
        let json = include_str!("../../../events/msk-batch-two-partitions.json");
        let event: KafkaEvent = serde_json::from_str(json).unwrap();
        let coords: Vec<(i64, i64)> = decode_batch(&event, &Limits::default())
            .iter()
            .map(|d| (d.source().partition, d.source().offset))
            .collect();
        let mut sorted = coords.clone();
        sorted.sort();
        assert_eq!(coords, sorted);
        assert!(coords.len() >= 3);
    }
}

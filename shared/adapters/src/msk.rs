//! One Kafka message as a record of Lambda's MSK event: the JSON the MSK trigger delivers, for
//! the batches the local stack's trigger emulator and the tests build with
//! [`qgen_contract::msk::kafka_event`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rdkafka::{Message, message::Headers};
use serde_json::{Map, Value, json};

/// One record in the JSON form the MSK trigger delivers.
pub fn record_json(message: &impl Message) -> Value {
    let headers: Vec<Value> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    let bytes: Vec<i8> = h.value.unwrap_or_default().iter().map(|&b| b as i8).collect();
                    json!({ h.key: bytes })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut record = Map::new();
    record.insert("topic".into(), message.topic().into());
    record.insert("partition".into(), message.partition().into());
    record.insert("offset".into(), message.offset().into());
    record.insert(
        "timestamp".into(),
        message.timestamp().to_millis().unwrap_or(0).into(),
    );
    record.insert("timestampType".into(), timestamp_type(message.timestamp()).into());
    if let Some(key) = message.key() {
        record.insert("key".into(), BASE64.encode(key).into());
    }
    if let Some(value) = message.payload() {
        record.insert("value".into(), BASE64.encode(value).into());
    }
    record.insert("headers".into(), headers.into());
    Value::Object(record)
}

fn timestamp_type(ts: rdkafka::Timestamp) -> &'static str {
    match ts {
        rdkafka::Timestamp::CreateTime(_) => "CREATE_TIME",
        rdkafka::Timestamp::LogAppendTime(_) => "LOG_APPEND_TIME",
        rdkafka::Timestamp::NotAvailable => "NO_TIMESTAMP_TYPE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_contract::msk::{RecordError, kafka_event, record_headers, record_key, record_value};
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

    fn message(partition: i32, offset: i64, value: &[u8]) -> OwnedMessage {
        let headers = OwnedHeaders::new().insert(Header {
            key: "eventType",
            value: Some(&[0xff_u8, b'a'][..]),
        });
        OwnedMessage::new(
            Some(value.to_vec()),
            Some(b"req-1".to_vec()),
            "question.request".into(),
            rdkafka::Timestamp::CreateTime(1_700_000_000_123),
            partition,
            offset,
            Some(headers),
        )
    }

    #[test]
    fn groups_records_by_topic_partition_and_round_trips_bytes() {
        let event = kafka_event(
            [
                record_json(&message(0, 5, b"{\"a\":1}")),
                record_json(&message(2, 9, b"x")),
                record_json(&message(0, 6, b"y")),
            ],
            "arn:aws:kafka:local",
            "127.0.0.1:9092",
        );
        assert_eq!(event.records["question.request-0"].len(), 2);
        assert_eq!(event.records["question.request-2"].len(), 1);
        let first = &event.records["question.request-0"][0];
        assert_eq!(first.offset, 5);
        assert_eq!(record_value(first).unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(record_key(first).unwrap().unwrap(), b"req-1");
        assert_eq!(
            record_headers(first),
            vec![("eventType".to_string(), vec![0xff, b'a'])]
        );
        // Headers travel as signed bytes, exactly as the MSK trigger sends them.
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json["records"]["question.request-0"][0]["headers"][0]["eventType"],
            json!([-1, 97])
        );
    }

    #[test]
    fn names_the_timestamp_type_as_the_msk_trigger_does() {
        let at = |ts| {
            let record = OwnedMessage::new(None, None, "t".into(), ts, 0, 0, None);
            record_json(&record)["timestampType"].clone()
        };
        assert_eq!(at(rdkafka::Timestamp::CreateTime(1)), "CREATE_TIME");
        assert_eq!(at(rdkafka::Timestamp::LogAppendTime(1)), "LOG_APPEND_TIME");
        assert_eq!(at(rdkafka::Timestamp::NotAvailable), "NO_TIMESTAMP_TYPE");
    }

    #[test]
    fn reports_bad_base64_as_an_error() {
        let mut event = kafka_event([record_json(&message(0, 1, b"v"))], "arn", "b");
        let record = event
            .records
            .get_mut("question.request-0")
            .unwrap()
            .get_mut(0)
            .unwrap();
        record.value = Some("not base64!".into());
        assert!(matches!(
            record_value(record),
            Err(RecordError::Base64 { field: "value", .. })
        ));
    }
}

//! The DLQ copy of a poison record: the record as it came, with headers that say where it came
//! from and why it is poison, so a person (or `qgen replay`) can fix it and send it back.
//! Pure, so the headers (named in [`qgen_contract::headers`], which other tools read) are pinned
//! by a test.

use qgen_contract::decode::Coordinates;
use qgen_contract::headers::{DLQ_ERROR, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC};

/// The headers of the DLQ copy of the record at `source`: its own headers, in order, then its
/// topic, partition and offset and the `reason` it is poison.
pub(super) fn dlq_headers(
    source: &Coordinates,
    original: &[(String, Vec<u8>)],
    reason: &str,
) -> Vec<(String, Vec<u8>)> {
    let mut headers = original.to_vec();
    headers.extend([
        (DLQ_SOURCE_TOPIC.to_owned(), source.topic.as_bytes().to_vec()),
        (
            DLQ_SOURCE_PARTITION.to_owned(),
            source.partition.to_string().into_bytes(),
        ),
        (
            DLQ_SOURCE_OFFSET.to_owned(),
            source.offset.to_string().into_bytes(),
        ),
        (DLQ_ERROR.to_owned(), reason.as_bytes().to_vec()),
    ]);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dlq_copy_keeps_its_headers_and_adds_where_it_came_from_and_why() {
        let source = Coordinates {
            topic: "question.request".into(),
            partition: 3,
            offset: 41,
        };
        let original = vec![("traceparent".to_owned(), b"00-abc-01".to_vec())];

        let headers = dlq_headers(&source, &original, "value is not JSON");

        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("traceparent", "00-abc-01"),
                ("dlq-source-topic", "question.request"),
                ("dlq-source-partition", "3"),
                ("dlq-source-offset", "41"),
                ("dlq-error", "value is not JSON"),
            ]
        );
    }
}

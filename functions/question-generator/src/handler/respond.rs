//! Publishing a response: keyed by its `request_id`, in its request's trace, with the headers of
//! its timeline (the invocation that answered, the Gemini calls made), and the request-to-response
//! latency once the broker has acknowledged it.

use std::time::SystemTime;

use qgen_adapters::kafka::{EventPublisher, PublishError, publish_event};
use qgen_adapters::telemetry::{Metric, Metrics};
use qgen_contract::events::{ResponseEvent, timestamp};
use qgen_contract::headers::{
    HEADER_BATCH_INVOKED_AT, HEADER_GEMINI_CALLS, HEADER_GEMINI_MODEL, HEADER_GEMINI_MS,
};
use qgen_contract::metrics::GENERATOR;
use qgen_contract::trace::TraceContext;

use super::Generator;
use super::report::Outcome;
use crate::idempotency::IdempotencyStore;
use crate::source::{Calls, QuestionSource};

/// What a response record carries besides its event: the request's trace and time, and its
/// timeline (the invocation that answered it, the model calls made).
pub(crate) struct ResponseRecord<'a> {
    /// The request's trace.
    pub(crate) trace: TraceContext,
    /// The request event's `timestamp`.
    pub(crate) requested_at: Option<SystemTime>,
    /// When the answering invocation started.
    pub(crate) invoked_at: SystemTime,
    /// The model calls made for it now (none for a stored answer or an invalid request).
    pub(crate) calls: Option<&'a Calls>,
}

impl ResponseRecord<'_> {
    /// The timeline headers (`qgen_contract::headers::HEADER_*`).
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(HEADER_BATCH_INVOKED_AT, timestamp(self.invoked_at))];
        if let Some(calls) = self.calls {
            headers.push((HEADER_GEMINI_CALLS, calls.count.to_string()));
            headers.push((HEADER_GEMINI_MS, calls.latency.as_millis().to_string()));
            headers.push((HEADER_GEMINI_MODEL, calls.model.clone()));
        }
        headers
    }
}

impl<S: QuestionSource, P: EventPublisher, I: IdempotencyStore> Generator<S, P, I> {
    /// Publishes `response`, keyed by its `request_id`, in the request's trace (with a span of
    /// the generator's own) and with the headers of its timeline, and emits the
    /// request-to-response latency: from the request event's `timestamp` to the broker's
    /// acknowledgement of the response.
    pub(super) async fn publish_response(
        &self,
        response: &ResponseEvent,
        record: &ResponseRecord<'_>,
    ) -> Result<Outcome, PublishError> {
        let data = &response.event_data;
        let trace = record.trace;
        let headers = record.headers();
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let delivered = publish_event(
            &self.publisher,
            &self.response_topic,
            &data.request_id,
            response,
            &trace.child(),
            &headers,
        )
        .await?;
        if let Some(requested_at) = record.requested_at {
            let outcome = data.error.as_ref().map_or("completed", |e| e.code.as_str());
            let latency = delivered
                .acked_at
                .duration_since(requested_at)
                .unwrap_or_default();
            Metrics::new(GENERATOR)
                .dimension("Outcome", outcome)
                .duration(Metric::RequestToResponse, latency)
                .property("request_id", data.request_id.as_str())
                .property("trace_id", trace.trace_id())
                .emit();
        }
        tracing::info!(
            request_id = %data.request_id,
            trace_id = %trace.trace_id(),
            event_id = %response.event_id,
            status = ?data.status,
            partition = delivered.partition,
            offset = delivered.offset,
            "response published"
        );
        Ok(match data.error {
            None => Outcome::Completed,
            Some(_) => Outcome::Failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_timeline_headers_name_the_invocation_and_only_calls_that_were_made() {
        let mut record = ResponseRecord {
            trace: TraceContext::new_root(),
            requested_at: None,
            invoked_at: UNIX_EPOCH + Duration::from_millis(1_795_773_601_000),
            calls: None,
        };
        assert_eq!(
            record.headers(),
            [(HEADER_BATCH_INVOKED_AT, "2026-11-27T10:00:01.000Z".to_owned())]
        );
        let calls = Calls {
            count: 2,
            latency: Duration::from_millis(3_200),
            model: "gemini-3.6-flash".into(),
        };
        record.calls = Some(&calls);
        assert_eq!(
            record.headers()[1..],
            [
                (HEADER_GEMINI_CALLS, "2".to_owned()),
                (HEADER_GEMINI_MS, "3200".to_owned()),
                (HEADER_GEMINI_MODEL, "gemini-3.6-flash".to_owned()),
            ]
        );
    }
}

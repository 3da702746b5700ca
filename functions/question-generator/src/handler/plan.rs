//! Planning a batch: its records as work, with the later records of a `request_id` grouped under
//! the first, so a request delivered twice in one batch is generated once. Pure, so de-duplication
//! is tested without a broker, a store or a model.

use std::collections::HashMap;

use qgen_contract::decode::{Coordinates, Decoded, InvalidRequest, Origin, PoisonRecord};
use qgen_contract::events::{ErrorCode, GenerationRequest, ResponseError, ResponseEvent};

use crate::idempotency::payload_hash;

/// A request of the batch and the later records of the batch with the same `request_id`.
pub(super) struct Job {
    /// Where its record is in the batch.
    pub(super) source: Coordinates,
    /// The request event's id.
    pub(super) event_id: String,
    /// The validated request.
    pub(super) request: GenerationRequest,
    /// Its record's trace and request time.
    pub(super) origin: Origin,
    /// Its [`payload_hash`], the content the idempotency store compares.
    pub(super) hash: String,
    /// The later records with its `request_id`, in batch order.
    pub(super) duplicates: Vec<Duplicate>,
}

/// A later record of the batch with the `request_id` of a [`Job`].
pub(super) struct Duplicate {
    /// Where its record is in the batch.
    pub(super) source: Coordinates,
    /// Its request event's id.
    pub(super) event_id: String,
    /// Its record's trace and request time: its own response continues its own trace.
    pub(super) origin: Origin,
    /// Its content differs from the job's: it gets `idempotency_conflict`.
    pub(super) conflicting: bool,
}

/// What the batch is worked as: requests de-duplicated into jobs, the rest as decoded.
pub(super) enum Work {
    /// A request to answer, with its duplicates.
    Request(Job),
    /// A request that breaks a rule: answered `invalid_request`.
    Invalid(InvalidRequest),
    /// A record nobody can answer: dead-lettered as it came.
    Poison(PoisonRecord),
}

impl Job {
    /// A job for `request` with no duplicates yet.
    pub(super) fn new(
        source: Coordinates,
        event_id: String,
        request: GenerationRequest,
        origin: Origin,
    ) -> Self {
        Job {
            source,
            event_id,
            hash: payload_hash(&request),
            request,
            origin,
            duplicates: Vec::new(),
        }
    }
}

/// Groups the batch's requests by `request_id`, keeping the first of each (pure).
pub(super) fn group(decoded: Vec<Decoded>) -> Vec<Work> {
    let mut work: Vec<Work> = Vec::with_capacity(decoded.len());
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for record in decoded {
        let job = match record {
            Decoded::Request {
                source,
                event_id,
                request,
                origin,
            } => Job::new(source, event_id, request, origin),
            Decoded::Invalid(invalid) => {
                work.push(Work::Invalid(invalid));
                continue;
            }
            Decoded::Poison(poison) => {
                work.push(Work::Poison(poison));
                continue;
            }
        };
        if let Some(Work::Request(first)) = by_id.get(&job.request.request_id).and_then(|&i| work.get_mut(i))
        {
            first.duplicates.push(Duplicate {
                conflicting: first.hash != job.hash,
                source: job.source,
                event_id: job.event_id,
                origin: job.origin,
            });
            continue;
        }
        by_id.insert(job.request.request_id.clone(), work.len());
        work.push(Work::Request(job));
    }
    work
}

/// The `failed` response to a request that reused the `request_id` of other content.
pub(super) fn conflict(event_id: &str, request_id: &str) -> ResponseEvent {
    ResponseEvent::failed(
        event_id,
        request_id,
        ResponseError {
            code: ErrorCode::IdempotencyConflict,
            message: format!("request_id {request_id} was already used for a request with different content"),
            retryable: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_contract::events::Difficulty;

    fn request(offset: i64, request_id: &str, topic: &str) -> Decoded {
        Decoded::Request {
            source: Coordinates {
                topic: "question.request".into(),
                partition: 0,
                offset,
            },
            event_id: format!("evt-{offset}"),
            request: GenerationRequest {
                request_id: request_id.into(),
                topic: topic.into(),
                num_questions: 1,
                difficulty: Difficulty::Easy,
                context: None,
            },
            origin: Origin::default(),
        }
    }

    #[test]
    fn grouping_keeps_the_first_of_each_request_id_and_flags_other_content() {
        let batch = vec![
            request(1, "a", "Loops"),
            request(2, "b", "Joins"),
            request(3, "a", "Loops"),
            request(4, "a", "Closures"),
        ];

        let work = group(batch);

        let jobs: Vec<(&str, Vec<(&str, bool)>)> = work
            .iter()
            .filter_map(|w| match w {
                Work::Request(job) => Some((
                    job.event_id.as_str(),
                    job.duplicates
                        .iter()
                        .map(|d| (d.event_id.as_str(), d.conflicting))
                        .collect(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            jobs,
            [
                ("evt-1", vec![("evt-3", false), ("evt-4", true)]),
                ("evt-2", vec![])
            ]
        );
    }
}

//! Idempotency, as AWS Powertools does it: a record per `request_id` claimed with a conditional
//! write before Gemini is called, and the published response kept once it is `completed`, so a
//! duplicate delivery re-publishes that response instead of paying for a second generation.
//!
//! The table (see `template.yaml`) has one item per request:
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `id` | S, partition key | the `request_id` |
//! | `status` | S | `IN_PROGRESS` or `COMPLETED` |
//! | `payload_hash` | S | SHA-256 of the validated request: the same id with other content is a conflict |
//! | `in_progress_expiration` | N, epoch ms | the claiming invocation's deadline; after it a retry may take over |
//! | `expiration` | N, epoch s | the table's TTL attribute; the record counts as absent after it |
//! | `data` | S | the response event's JSON (`COMPLETED` only) |
//!
//! Keying by `request_id` alone (not id + hash) is what makes a conflict detectable: the same id
//! with different content finds the first request's record and its hash.
//!
//! # Layout
//!
//! - here: the [`IdempotencyStore`] port, the record's attributes, [`Claim`] and the pure pieces
//!   ([`payload_hash`], epoch times). No store is `None`: the generator holds an `Option` of one
//!   (`None` without `IDEMPOTENCY_TABLE`, e.g. the local stack), as [`store_from_env`] gives it.
//! - `dynamodb`: [`DynamoDbStore`], the adapter on the DynamoDB table above.

mod dynamodb;

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use qgen_contract::events::{GenerationRequest, ResponseEvent};
use sha2::{Digest, Sha256};

pub use dynamodb::{DynamoDbStore, store_from_env};

/// Partition key: the `request_id`.
pub const ID: &str = "id";
/// `IN_PROGRESS` or `COMPLETED`.
pub const STATUS: &str = "status";
/// SHA-256 (hex) of the validated request, see [`payload_hash`].
pub const PAYLOAD_HASH: &str = "payload_hash";
/// TTL attribute, epoch seconds.
pub const EXPIRATION: &str = "expiration";
/// Until when an `IN_PROGRESS` claim holds, epoch milliseconds.
pub const IN_PROGRESS_EXPIRATION: &str = "in_progress_expiration";
/// The stored response event (JSON).
pub const DATA: &str = "data";
/// A claim held by a running invocation.
pub const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
/// An answered request.
pub const STATUS_COMPLETED: &str = "COMPLETED";

/// The idempotency store could not be used; the caller generates without it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB did not answer (unreachable, throttled, no permission, no table).
    #[error("dynamodb {operation} failed for request {request_id}")]
    Request {
        /// The DynamoDB operation.
        operation: &'static str,
        /// The request whose record it was.
        request_id: String,
        /// The SDK's error.
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    /// The record is not one this code wrote.
    #[error("idempotency record of request {request_id} is malformed: {reason}")]
    Malformed {
        /// The request whose record it is.
        request_id: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What the store says about a request this invocation is about to generate.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This invocation holds the request: generate, publish, then complete or release it.
    Acquired,
    /// It was answered before: this is the response that was published.
    Completed(Box<ResponseEvent>),
    /// Another invocation holds it until `until`; after that a retry may take over.
    InProgress {
        /// When the other invocation's claim expires.
        until: SystemTime,
    },
    /// The `request_id` belongs to a request with different content.
    Conflict,
}

/// The persistence port of idempotency.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `request_id` (with content `payload_hash`) until `in_progress_until`, or says why not.
    fn claim(
        &self,
        request_id: &str,
        payload_hash: &str,
        in_progress_until: SystemTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records `response` as the answer to a claimed request.
    fn complete(
        &self,
        request_id: &str,
        payload_hash: &str,
        response: &ResponseEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up a claim without an answer worth keeping, so the next delivery generates again.
    fn release(
        &self,
        request_id: &str,
        payload_hash: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: IdempotencyStore> IdempotencyStore for &T {
    fn claim(
        &self,
        request_id: &str,
        hash: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(request_id, hash, until)
    }

    fn complete(
        &self,
        request_id: &str,
        hash: &str,
        response: &ResponseEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).complete(request_id, hash, response)
    }

    fn release(&self, request_id: &str, hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(request_id, hash)
    }
}

/// SHA-256 (hex) of the validated request. serde_json writes a struct's fields in declaration
/// order, so equal requests always hash alike; the topic is already trimmed by validation.
pub fn payload_hash(request: &GenerationRequest) -> String {
    // Serializing strings and numbers cannot fail; an empty hash would only ever conflict.
    let bytes = serde_json::to_vec(request).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seconds since the epoch (DynamoDB TTL's unit).
pub fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Milliseconds since the epoch.
pub fn epoch_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_contract::events::Difficulty;

    fn request(topic: &str) -> GenerationRequest {
        GenerationRequest {
            request_id: "req-1".into(),
            topic: topic.into(),
            num_questions: 3,
            difficulty: Difficulty::Easy,
            context: None,
        }
    }

    #[test]
    fn equal_requests_hash_alike_and_different_content_does_not() {
        let hash = payload_hash(&request("Loops"));

        assert_eq!(hash, payload_hash(&request("Loops")));
        assert_ne!(hash, payload_hash(&request("Closures")));
        assert_eq!(hash.len(), 64);
    }
}

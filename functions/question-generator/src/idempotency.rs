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

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{GeneratorConfig, IdempotencyConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use qgen_contract::events::{GenerationRequest, ResponseEvent};
use sha2::{Digest, Sha256};

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

/// No store: every request is generated (no `IDEMPOTENCY_TABLE`, e.g. the local stack).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

impl IdempotencyStore for NoStore {
    async fn claim(&self, _: &str, _: &str, _: SystemTime) -> Result<Claim, StoreError> {
        Ok(Claim::Acquired)
    }

    async fn complete(&self, _: &str, _: &str, _: &ResponseEvent) -> Result<(), StoreError> {
        Ok(())
    }

    async fn release(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// `None` behaves as [`NoStore`], so `main` can pass the store the configuration asked for.
impl<T: IdempotencyStore> IdempotencyStore for Option<T> {
    async fn claim(&self, request_id: &str, hash: &str, until: SystemTime) -> Result<Claim, StoreError> {
        match self {
            Some(store) => store.claim(request_id, hash, until).await,
            None => Ok(Claim::Acquired),
        }
    }

    async fn complete(
        &self,
        request_id: &str,
        hash: &str,
        response: &ResponseEvent,
    ) -> Result<(), StoreError> {
        match self {
            Some(store) => store.complete(request_id, hash, response).await,
            None => Ok(()),
        }
    }

    async fn release(&self, request_id: &str, hash: &str) -> Result<(), StoreError> {
        match self {
            Some(store) => store.release(request_id, hash).await,
            None => Ok(()),
        }
    }
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

/// The store `config` asks for, with clients configured from the environment, or `None`.
pub async fn store_from_env(config: &GeneratorConfig) -> Option<DynamoDbStore> {
    match &config.idempotency {
        Some(idempotency) => Some(DynamoDbStore::from_env(idempotency).await),
        None => None,
    }
}

/// The store on a DynamoDB table laid out as the module documentation says.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    ttl: Duration,
}

impl DynamoDbStore {
    /// A store on `table` over an SDK client; answers are remembered for `ttl`.
    pub fn new(client: Client, table: impl Into<String>, ttl: Duration) -> Self {
        DynamoDbStore {
            client,
            table: table.into(),
            ttl,
        }
    }

    /// A store configured from the environment (region, credentials, `AWS_ENDPOINT_URL`).
    pub async fn from_env(config: &IdempotencyConfig) -> Self {
        let sdk = aws_config::load_from_env().await;
        // Short timeouts: an unreachable table must not eat the invocation, since generating
        // without it is the fallback anyway.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(Duration::from_secs(1))
            .operation_timeout(Duration::from_secs(3))
            .build();
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .timeout_config(timeouts)
            .build();
        Self::new(Client::from_conf(dynamodb), &config.table, config.ttl)
    }

    async fn put_in_progress(
        &self,
        request_id: &str,
        hash: &str,
        until: SystemTime,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ID, s(request_id))
            .item(STATUS, s(STATUS_IN_PROGRESS))
            .item(PAYLOAD_HASH, s(hash))
            .item(EXPIRATION, n(epoch_secs(now + self.ttl)))
            .item(IN_PROGRESS_EXPIRATION, n(epoch_millis(until)))
            // Free, expired (TTL deletes lazily), or claimed by an invocation whose deadline passed.
            .condition_expression(
                "attribute_not_exists(#id) OR #expiration < :now \
                 OR (#status = :in_progress AND #in_progress_expiration < :now_ms)",
            )
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#expiration", EXPIRATION)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#in_progress_expiration", IN_PROGRESS_EXPIRATION)
            .expression_attribute_values(":now", n(epoch_secs(now)))
            .expression_attribute_values(":now_ms", n(epoch_millis(now)))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(request_error("PutItem", request_id, e)),
        }
    }

    async fn get(&self, request_id: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, s(request_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| request_error("GetItem", request_id, e))?;
        Ok(output.item)
    }
}

impl IdempotencyStore for DynamoDbStore {
    async fn claim(&self, request_id: &str, hash: &str, until: SystemTime) -> Result<Claim, StoreError> {
        // Twice: a record released between the failed put and the read is free again.
        for _ in 0..2 {
            if self.put_in_progress(request_id, hash, until).await? {
                return Ok(Claim::Acquired);
            }
            if let Some(item) = self.get(request_id).await? {
                return existing(request_id, hash, &item);
            }
        }
        Err(StoreError::Malformed {
            request_id: request_id.to_owned(),
            reason: "the record kept changing while it was claimed".into(),
        })
    }

    async fn complete(
        &self,
        request_id: &str,
        hash: &str,
        response: &ResponseEvent,
    ) -> Result<(), StoreError> {
        let data = serde_json::to_string(response).map_err(|e| StoreError::Malformed {
            request_id: request_id.to_owned(),
            reason: e.to_string(),
        })?;
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ID, s(request_id))
            .update_expression(
                "SET #status = :completed, #data = :data, #expiration = :expiration \
                 REMOVE #in_progress_expiration",
            )
            // Never overwrite the record of other content that took over an expired claim.
            .condition_expression("#payload_hash = :hash")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#data", DATA)
            .expression_attribute_names("#expiration", EXPIRATION)
            .expression_attribute_names("#in_progress_expiration", IN_PROGRESS_EXPIRATION)
            .expression_attribute_names("#payload_hash", PAYLOAD_HASH)
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":data", s(&data))
            .expression_attribute_values(":expiration", n(epoch_secs(SystemTime::now() + self.ttl)))
            .expression_attribute_values(":hash", s(hash))
            .send()
            .await
            .map_err(|e| request_error("UpdateItem", request_id, e))?;
        Ok(())
    }

    async fn release(&self, request_id: &str, hash: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ID, s(request_id))
            .condition_expression("#status = :in_progress AND #payload_hash = :hash")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#payload_hash", PAYLOAD_HASH)
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":hash", s(hash))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not our claim any more: nothing to give up.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(request_error("DeleteItem", request_id, e)),
        }
    }
}

/// What a record that could not be claimed means for a request with content `hash`.
fn existing(
    request_id: &str,
    hash: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<Claim, StoreError> {
    let malformed = |reason: &str| StoreError::Malformed {
        request_id: request_id.to_owned(),
        reason: reason.to_owned(),
    };
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    if text(PAYLOAD_HASH).ok_or_else(|| malformed("no payload_hash"))? != hash {
        return Ok(Claim::Conflict);
    }
    match text(STATUS).ok_or_else(|| malformed("no status"))?.as_str() {
        STATUS_COMPLETED => {
            let data = text(DATA).ok_or_else(|| malformed("a completed record without data"))?;
            let event: ResponseEvent = serde_json::from_str(data).map_err(|e| malformed(&e.to_string()))?;
            Ok(Claim::Completed(Box::new(event)))
        }
        STATUS_IN_PROGRESS => {
            let millis = item
                .get(IN_PROGRESS_EXPIRATION)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| malformed("no in_progress_expiration"))?;
            Ok(Claim::InProgress {
                until: UNIX_EPOCH + Duration::from_millis(millis),
            })
        }
        other => Err(malformed(&format!("unknown status {other:?}"))),
    }
}

fn request_error<E>(operation: &'static str, request_id: &str, error: E) -> StoreError
where
    E: Into<aws_sdk_dynamodb::Error>,
{
    StoreError::Request {
        operation,
        request_id: request_id.to_owned(),
        source: Box::new(error.into()),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
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

    #[test]
    fn a_record_with_another_hash_is_a_conflict_whatever_its_status() {
        let item = HashMap::from([
            (PAYLOAD_HASH.to_owned(), s("other")),
            (STATUS.to_owned(), s(STATUS_COMPLETED)),
        ]);

        let claim = existing("req-1", "mine", &item).unwrap();

        assert_eq!(claim, Claim::Conflict);
    }

    #[test]
    fn a_completed_record_without_a_response_is_malformed_not_a_replay() {
        let item = HashMap::from([
            (PAYLOAD_HASH.to_owned(), s("mine")),
            (STATUS.to_owned(), s(STATUS_COMPLETED)),
        ]);

        let error = existing("req-1", "mine", &item).unwrap_err();

        assert!(matches!(error, StoreError::Malformed { .. }), "{error}");
    }
}

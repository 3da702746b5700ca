//! The DynamoDB adapter of the [`IdempotencyStore`] port: a claim is a conditional `PutItem`, so
//! two invocations holding the same request cannot both generate it, and everything it reads is
//! checked, since a record this code did not write must not be replayed to a consumer.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use qgen_contract::events::ResponseEvent;

use super::{
    Claim, DATA, EXPIRATION, ID, IN_PROGRESS_EXPIRATION, IdempotencyStore, PAYLOAD_HASH, STATUS,
    STATUS_COMPLETED, STATUS_IN_PROGRESS, StoreError, epoch_millis, epoch_secs,
};
use crate::config::{GeneratorConfig, IdempotencyConfig};

/// The store `config` asks for, with clients configured from the environment, or `None`.
pub async fn store_from_env(config: &GeneratorConfig) -> Option<DynamoDbStore> {
    match &config.idempotency {
        Some(idempotency) => Some(DynamoDbStore::from_env(idempotency).await),
        None => None,
    }
}

/// The store on a DynamoDB table laid out as the `idempotency` module documentation says.
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

#[cfg(test)]
mod tests {
    use super::*;

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

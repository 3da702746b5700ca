//! Secrets Manager: secrets fetched once per execution environment and cached.
//!
//! Values come back as [`SecretString`], whose `Debug` is redacted, and errors name the secret's ARN,
//! never its value.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use tokio::sync::Mutex;

use secrecy::SecretString;

/// A secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Secrets Manager did not return it (missing, no permission, unreachable).
    #[error("could not read secret {arn}")]
    Fetch {
        /// The secret's ARN or name.
        arn: String,
        /// The SDK's error.
        #[source]
        source: Box<aws_sdk_secretsmanager::Error>,
    },
    /// It has no string value.
    #[error("secret {arn} has no string value")]
    Empty {
        /// The secret's ARN or name.
        arn: String,
    },
}

/// Reads secrets from Secrets Manager, each at most once per execution environment.
pub struct SecretsClient {
    client: Client,
    cache: Mutex<HashMap<String, SecretString>>,
}

impl SecretsClient {
    /// A client configured from the environment (region, credentials, and `AWS_ENDPOINT_URL`
    /// for a local endpoint), as every AWS SDK reads it.
    pub async fn from_env() -> Self {
        let config = aws_config::load_from_env().await;
        Self::new(Client::new(&config))
    }

    /// A client over an SDK client.
    pub fn new(client: Client) -> Self {
        SecretsClient {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The string value of `arn`, from the cache after the first call.
    pub async fn get(&self, arn: &str) -> Result<SecretString, SecretsError> {
        // Held across the fetch so that concurrent first calls make one request, not many.
        let mut cache = self.cache.lock().await;
        if let Some(secret) = cache.get(arn) {
            return Ok(secret.clone());
        }
        let output = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| SecretsError::Fetch {
                arn: arn.to_owned(),
                source: Box::new(e.into()),
            })?;
        let value = output
            .secret_string()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SecretsError::Empty { arn: arn.to_owned() })?;
        let secret = SecretString::from(value);
        cache.insert(arn.to_owned(), secret.clone());
        tracing::info!(arn, "secret fetched");
        Ok(secret)
    }
}

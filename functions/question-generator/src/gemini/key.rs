//! Where the Gemini API key comes from: the environment for local runs, Secrets Manager when
//! deployed. Read once at cold start, so a missing key fails the function's init, not every
//! request.

use std::future::Future;

use qgen_adapters::secrets::SecretsClient;
use secrecy::SecretString;

use super::BuildError;
use crate::config::ApiKeySource;

/// The Gemini API key named by `source`. `secrets` is awaited only when the key is in Secrets
/// Manager, so local runs with `GOOGLE_API_KEY` never build an AWS client. Called once at cold
/// start: a missing key fails the function's init, not every request.
pub async fn api_key(
    source: &ApiKeySource,
    secrets: impl Future<Output = SecretsClient>,
) -> Result<SecretString, BuildError> {
    match source {
        ApiKeySource::Env(key) => Ok(key.clone()),
        ApiKeySource::SecretArn(arn) => secrets.await.get(arn).await.map_err(BuildError::Secret),
        ApiKeySource::None => Err(BuildError::NoKey),
    }
}

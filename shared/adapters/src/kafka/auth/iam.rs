//! MSK IAM: `OAUTHBEARER` tokens (a SigV4-presigned `kafka-cluster:Connect` URL) signed with
//! the credentials of the environment, on demand, from librdkafka's own thread.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::config::{Region, SharedCredentialsProvider};
use rdkafka::client::OAuthToken;
use tokio::runtime::Handle;

use super::AuthError;

/// The longest a token may take to sign; signing is local once credentials are at hand.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Signs MSK IAM `OAUTHBEARER` tokens with the credentials of the environment (in Lambda, the
/// function's role).
#[derive(Clone)]
pub struct MskIamSigner {
    region: Region,
    credentials: SharedCredentialsProvider,
    runtime: Handle,
}

impl std::fmt::Debug for MskIamSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MskIamSigner")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl MskIamSigner {
    /// A signer for `region` with `credentials`; must be called inside a tokio runtime, which
    /// later resolves credentials (refreshing the role's session when it expires).
    pub fn new(region: Region, credentials: SharedCredentialsProvider) -> Result<Self, AuthError> {
        let runtime = Handle::try_current().map_err(|_| AuthError::NoRuntime)?;
        Ok(MskIamSigner {
            region,
            credentials,
            runtime,
        })
    }

    /// A signer from an SDK configuration (region and credentials chain).
    pub fn from_sdk_config(sdk: &SdkConfig) -> Result<Self, AuthError> {
        let region = sdk
            .region()
            .cloned()
            .ok_or(AuthError::AwsEnvironment("a region"))?;
        let credentials = sdk
            .credentials_provider()
            .ok_or(AuthError::AwsEnvironment("credentials"))?;
        Self::new(region, credentials)
    }

    /// A fresh token. Blocking: librdkafka calls this from its own thread, so the signing runs
    /// on a helper thread that may block on the runtime whatever thread the caller is on.
    pub fn token(&self) -> Result<OAuthToken, AuthError> {
        let signer = self.clone();
        let signed = std::thread::spawn(move || {
            signer.runtime.block_on(async {
                tokio::time::timeout(
                    TOKEN_TIMEOUT,
                    aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
                        signer.region.clone(),
                        signer.credentials.clone(),
                    ),
                )
                .await
            })
        })
        .join()
        .map_err(|_| AuthError::Token("the signing thread panicked".into()))?;
        let (token, lifetime_ms) = signed
            .map_err(|_| AuthError::Token(format!("timed out after {TOKEN_TIMEOUT:?}")))?
            .map_err(|e| AuthError::Token(e.to_string()))?;
        Ok(OAuthToken {
            token,
            // MSK takes the principal from the signature; librdkafka wants a non-null name.
            principal_name: String::new(),
            lifetime_ms,
        })
    }
}

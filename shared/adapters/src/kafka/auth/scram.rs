//! SCRAM-SHA-512: the username and password MSK reads from an `AmazonMSK_` secret in Secrets
//! Manager, parsed without ever echoing the secret.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::AuthError;

/// SCRAM username and password, as MSK reads them from an `AmazonMSK_` secret.
#[derive(Clone, Debug)]
pub struct ScramCredentials {
    /// The SCRAM user.
    pub username: String,
    /// Its password, redacted in `Debug` by `SecretString` itself.
    pub password: SecretString,
}

impl ScramCredentials {
    /// Parses the secret's value, `{"username": "...", "password": "..."}`; errors name the
    /// ARN, never the value.
    pub fn from_secret(arn: &str, secret: &SecretString) -> Result<Self, AuthError> {
        #[derive(Deserialize)]
        struct Raw {
            username: String,
            password: String,
        }
        let format = || AuthError::SecretFormat { arn: arn.to_owned() };
        let raw: Raw = serde_json::from_str(secret.expose_secret()).map_err(|_| format())?;
        if raw.username.is_empty() || raw.password.is_empty() {
            return Err(format());
        }
        Ok(ScramCredentials {
            username: raw.username,
            password: SecretString::from(raw.password),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scram_secret_that_is_not_the_msk_json_is_refused_without_echoing_it() {
        for value in [
            "hunter2",
            r#"{"username": "qgen"}"#,
            r#"{"username": "", "password": "x"}"#,
        ] {
            let err = ScramCredentials::from_secret("arn:s:AmazonMSK_qgen", &SecretString::from(value))
                .unwrap_err();
            assert!(matches!(err, AuthError::SecretFormat { .. }), "{value}");
            assert!(!err.to_string().contains("hunter2"));
        }
    }
}

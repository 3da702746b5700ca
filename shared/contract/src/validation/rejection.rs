//! How a refused request is reported: the rule it broke as a stable [`RejectionCode`], and the
//! field at fault, in a [`ValidationError`].

/// Which rule a refused request broke: the stable `code` of its 400 (the API's
/// `ApiErrorCode` has each of them, under the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionCode {
    /// The body is not JSON, or not a JSON object.
    InvalidJson,
    /// A required field is absent (or `null`).
    MissingField,
    /// A field is present but breaks its rule.
    InvalidField,
}

impl RejectionCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::InvalidJson => "invalid_json",
            RejectionCode::MissingField => "missing_field",
            RejectionCode::InvalidField => "invalid_field",
        }
    }
}

/// A request that breaks a rule, naming the field (or `body`) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Which rule: `invalid_json`, `missing_field` or `invalid_field` on the wire.
    pub code: RejectionCode,
    /// The field at fault, or `body` when the document itself is wrong.
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl ValidationError {
    pub(super) fn new(code: RejectionCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    pub(super) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(RejectionCode::InvalidField, field, message)
    }

    pub(super) fn missing(field: &str) -> Self {
        Self::new(RejectionCode::MissingField, field, format!("{field} is required"))
    }
}

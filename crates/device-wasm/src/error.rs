//! The bindings' error: a code the JavaScript side turns into a typed `HazeError`.

use std::fmt;

/// Why a call failed: a stable `code` (the JavaScript `HazeError.code`) and words for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkError {
    /// `invalid` (a malformed argument from the app), `type_mismatch` (the key or field holds
    /// another type), `refused` (the CRDT refused: an overflow, too deep), `protocol` (a server
    /// answer that does not fit), `corrupt` (saved data that does not decode), `storage`.
    pub code: &'static str,
    /// What happened.
    pub message: String,
}

impl SdkError {
    /// Returns an error with `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> SdkError {
        SdkError {
            code,
            message: message.into(),
        }
    }

    /// The error as the JSON object `{"code", "message"}` thrown across the boundary.
    pub fn to_json(&self) -> String {
        serde_json::json!({"code": self.code, "message": self.message}).to_string()
    }
}

impl fmt::Display for SdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SdkError {}

impl From<haze_device::Error> for SdkError {
    fn from(e: haze_device::Error) -> SdkError {
        use haze_device::Error as E;
        let code = match &e {
            E::WrongType { .. } | E::TypeMismatch { .. } => "type_mismatch",
            E::Store(_) => "storage",
            E::Protocol(_) => "protocol",
            _ => "refused",
        };
        SdkError::new(code, e.to_string())
    }
}

/// The result of the bindings' calls.
pub(crate) type Result<T, E = SdkError> = std::result::Result<T, E>;

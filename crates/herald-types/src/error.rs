//! One error type for the whole server.
//!
//! Every failure a client can observe carries an [`ErrorCode`] (a small, stable set modelled on gRPC's codes) and a
//! human-readable message. Front-ends map the code to their protocol exactly once: `herald-server` has one mapping to
//! gRPC status codes and one to HTTP statuses. Message texts follow the compatibility contracts (clients and tests
//! match substrings such as `not found`), so they are part of the interface too.

use std::fmt;

/// Stable error codes. The numeric values are part of Herald's public interface (they appear in logs, metrics and
/// in-band error frames) and must never be renumbered; add new codes at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The request is malformed or a field is out of range.
    InvalidArgument = 1,
    /// The addressed resource, key, job or session does not exist.
    NotFound = 2,
    /// The thing being created exists already.
    AlreadyExists = 3,
    /// The request is valid but the current state forbids it (e.g. a job exhausted its attempts).
    FailedPrecondition = 4,
    /// No credentials, malformed credentials or unknown credentials.
    Unauthenticated = 5,
    /// Valid credentials that are not allowed to do this.
    PermissionDenied = 6,
    /// A limit was hit (payload too large, too many connections, rate limit).
    ResourceExhausted = 7,
    /// The server is starting, stopping or cannot reach its storage right now; retrying may help.
    Unavailable = 8,
    /// The client gave up or went away.
    Cancelled = 9,
    /// A deadline passed before the operation finished.
    DeadlineExceeded = 10,
    /// A bug or an I/O failure inside the server. Never used for bad input.
    Internal = 11,
}

impl ErrorCode {
    /// The stable snake-case name used in JSON error bodies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a client can see: a stable code plus the message text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HeraldError {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T, E = HeraldError> = std::result::Result<T, E>;

impl HeraldError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        HeraldError { code, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message)
    }
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedPrecondition, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
    /// Wraps a storage or I/O failure. The text names what was being done, so the log line is useful on its own.
    pub fn storage(context: &str, err: impl fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, format!("{context}: {err}"))
    }
}

//! The one mapping from Herald's error codes to gRPC status codes.

use herald_types::{ErrorCode, HeraldError};
use tonic::{Code, Status};

pub fn code_of(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Cancelled => Code::Cancelled,
        ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorCode::Internal => Code::Internal,
    }
}

pub fn to_status(e: HeraldError) -> Status {
    if e.code == ErrorCode::Internal {
        tracing::error!(error = %e.message, "internal error answered to a gRPC client");
    }
    Status::new(code_of(e.code), e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_codes_and_keeps_messages() {
        let s = to_status(HeraldError::not_found("stream not found: a/b/stream/c"));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "stream not found: a/b/stream/c");
        assert_eq!(code_of(ErrorCode::FailedPrecondition), Code::FailedPrecondition);
        assert_eq!(code_of(ErrorCode::Unauthenticated), Code::Unauthenticated);
    }
}

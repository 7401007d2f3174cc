//! The one mapping from Herald's error codes to the admin API's HTTP statuses, and the error body every API error
//! carries: `{"status":"error","message":"<FlowMesh's text>","code":<HTTP status>}` (compat/flowmesh.md §5.1, D16).
//! FlowMesh itself mixes plain-text and JSON bodies; the status codes and message texts are FlowMesh's (§3.9).

use super::json::encode;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_types::{ErrorCode, HeraldError};
use serde_json::json;

/// FlowMesh's HTTP status for each condition of the error catalogue (§3.9).
pub fn http_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists => StatusCode::CONFLICT,
        // A NACK that used up the job's attempts (§5.4).
        ErrorCode::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        // FlowMesh never produces it; on this listener only an oversized request body does.
        ErrorCode::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Cancelled | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failed API call. Handlers return `Result<Response, ApiError>` and use `?` on engine calls.
#[derive(Debug)]
pub struct ApiError(pub HeraldError);

impl From<HeraldError> for ApiError {
    fn from(e: HeraldError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError(HeraldError::invalid(message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http_status(self.0.code);
        if self.0.code == ErrorCode::Internal {
            tracing::error!(error = %self.0.message, "internal error answered to an HTTP client");
        }
        encode(status, &json!({"status": "error", "message": self.0.message, "code": status.as_u16()}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_flowmesh() {
        assert_eq!(http_status(ErrorCode::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(ErrorCode::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(ErrorCode::FailedPrecondition), StatusCode::PRECONDITION_FAILED);
        assert_eq!(http_status(ErrorCode::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(http_status(ErrorCode::Internal), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

//! Engine errors in FlowMesh's JSON error form (compat/flowmesh.md §5.1, D16):
//! `{"status":"error","message":"<message>","code":<HTTP status>}`, with the catalogue's HTTP statuses (§3.9).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_types::{ErrorCode, HeraldError};
use serde_json::json;

/// The HTTP status FlowMesh's routes answer for an error of this code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists => StatusCode::CONFLICT,
        ErrorCode::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Cancelled | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A [`HeraldError`] as an HTTP answer.
pub struct ApiError(pub HeraldError);

impl From<HeraldError> for ApiError {
    fn from(e: HeraldError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.code);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.0.message, "admin API request failed");
        }
        (status, Json(json!({"status": "error", "message": self.0.message, "code": status.as_u16()}))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_catalogues_status() {
        assert_eq!(status_of(ErrorCode::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorCode::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(ErrorCode::FailedPrecondition), StatusCode::PRECONDITION_FAILED);
        assert_eq!(status_of(ErrorCode::Internal), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

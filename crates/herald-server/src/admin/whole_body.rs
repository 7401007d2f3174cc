//! Every request body is read in full before the request is routed, so that answering without it — a 404, a
//! route that takes no body (`.../ack`, `.../replay`), a malformed path, a refused token — never costs a keep-alive
//! client its connection. hyper closes a connection whose request body was left unread, and a client that has
//! already sent its next request on it sees "server disconnected" instead of an answer; Go's server, which
//! FlowMesh clients know, reads the rest of the body and keeps the connection.

use super::MAX_BODY_BYTES;
use super::errors::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_types::{ErrorCode, HeraldError};

/// Buffers the body of any request that has one (up to the listener's body limit) and hands the request on with
/// it.
pub async fn read_first(req: Request, next: Next) -> Response {
    if !has_body(&req) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(e) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let error = if too_large {
                HeraldError::new(ErrorCode::ResourceExhausted, "request body too large")
            } else {
                HeraldError::invalid(format!("invalid request body: {e}"))
            };
            ApiError(error).into_response()
        }
    }
}

/// A request announces a body with a non-zero `Content-Length` or any `Transfer-Encoding` (chunked).
fn has_body(req: &Request) -> bool {
    let h = req.headers();
    h.contains_key(TRANSFER_ENCODING)
        || h.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0")
}

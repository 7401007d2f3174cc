//! OIDC sign-in and the device authorization grant (contract §2.11, §2.12). Herald has no OIDC provider support
//! yet, so these routes give the reference's own answers for "OIDC is not enabled": an empty provider list, `OIDC
//! disabled`, `device_authorization_unavailable`, the 503 page. The device-flow client
//! (`RelayDeviceFlowAuthenticator`) therefore fails with a clear `DeviceFlowError` instead of hanging.

use super::Ctx;
use super::auth_routes::form_fields;
use super::caller::ClientIp;
use super::limits::Limited;
use super::validate::err;
use super::wire::{ApiError, ApiResult, json_value};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub async fn oidc_providers() -> Response {
    json_value(StatusCode::OK, &json!([]))
}

pub async fn oidc_login() -> ApiResult<Response> {
    Err(ApiError::not_found("OIDC disabled"))
}

/// The callback checks its query before anything else, so without OIDC it still answers as the reference does: no
/// sign-in was ever started, so every state is unknown.
pub async fn oidc_callback(RawQuery(query): RawQuery) -> ApiResult<Response> {
    let params: Vec<(String, String)> =
        query.as_deref().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    if let Some(error) = get("error") {
        let detail = format!("OIDC error: {error}: {}", get("error_description").unwrap_or(""));
        return Err(ApiError::bad_request(detail.trim()));
    }
    if get("code").is_none() || get("state").is_none() {
        return Err(ApiError::bad_request("Missing code or state"));
    }
    Err(ApiError::bad_request("Invalid or expired state"))
}

pub async fn device_code(State(ctx): State<Ctx>, ClientIp(ip): ClientIp) -> ApiResult<Response> {
    ctx.limiter.hit(Limited::DeviceCode, ip).map_err(ApiError::RateLimited)?;
    Err(ApiError::Raw(
        StatusCode::BAD_REQUEST,
        json!({
            "error": "device_authorization_unavailable",
            "error_description": "No OIDC providers configured; device flow requires at least one.",
        }),
    ))
}

pub async fn device_token(
    State(ctx): State<Ctx>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = form_fields(&headers, &body).await;
    let get = |k: &str| fields.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut errors = Vec::new();
    for f in ["grant_type", "device_code"] {
        if get(f).is_none() {
            errors.push(err("missing", &[json!("body"), json!(f)], "Field required", Value::Null));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    ctx.limiter.hit(Limited::DeviceToken, ip).map_err(ApiError::RateLimited)?;
    let (code, description) = if get("grant_type").as_deref() != Some(DEVICE_GRANT) {
        ("unsupported_grant_type", "Use device_code grant.")
    } else {
        // No device code can exist while the device flow is unavailable.
        ("expired_token", "Unknown device_code")
    };
    Err(ApiError::Raw(StatusCode::BAD_REQUEST, json!({"error": code, "error_description": description})))
}

pub async fn device_page(State(ctx): State<Ctx>, ClientIp(ip): ClientIp) -> ApiResult<Response> {
    ctx.limiter.hit(Limited::DevicePage, ip).map_err(ApiError::RateLimited)?;
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, "<h1>OIDC is not configured on this relay.</h1>").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    Ok(r)
}

pub async fn device_deny() -> ApiResult<Response> {
    Err(ApiError::not_found("Unknown user_code"))
}

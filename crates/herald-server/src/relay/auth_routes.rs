//! `/auth/*` (contract §2.3): login, users, refresh-token rotation and revocation, sessions, logout.

use super::caller::{Caller, ClientIp};
use super::limits::Limited;
use super::tokens;
use super::validate::{self as v, Body, err, err_ctx};
use super::wire::{ApiError, ApiResult, json_value, now_micros, z_form};
use super::{Ctx, RelayCtx};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use herald_engine::relay::api::{NewRelayUser, RefreshRecord, RelayUser, RelayUserPatch, Rotation};
use serde_json::{Value, json};

const PERMISSIONS: [&str; 3] = ["admin", "read", "write"];

/// `UserPublic` (§2.3).
pub async fn user_public(ctx: &RelayCtx, u: &RelayUser) -> ApiResult<Value> {
    let topics: Vec<String> = ctx.relay.topics(&u.user_id).await?.into_iter().map(|t| t.topic_name).collect();
    Ok(json!({
        "user_id": u.user_id,
        "username": u.username,
        "email": u.email,
        "is_active": u.is_active,
        "created_at": z_form(u.created_at),
        "permissions": u.permissions,
        "owned_topics": topics,
    }))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Issues an access token and a new refresh-token chain (or a successor) and builds the token response.
async fn token_response(ctx: &RelayCtx, user: &RelayUser, refresh: String) -> Response {
    let ttl = ctx.settings.access_token_ttl.as_secs() as i64;
    let access = ctx.jwt.issue(&user.user_id, &user.username, &user.permissions, now_micros() / 1_000_000, ttl);
    json_value(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
            "refresh_token_secondary": null,
        }),
    )
}

/// Starts a new refresh-token chain for `user_id`; returns the wire form.
pub async fn new_refresh_chain(ctx: &RelayCtx, user_id: &str, hint: Option<String>) -> ApiResult<String> {
    let (jti, wire, secret_hash) = tokens::new_refresh_token();
    let now = now_micros();
    ctx.relay
        .put_refresh(RefreshRecord {
            jti,
            user_id: user_id.to_string(),
            secret_hash,
            parent_jti: None,
            issued_at: now,
            expires_at: now + ctx.settings.refresh_token_ttl.as_micros() as i64,
            last_used_at: None,
            revoked: None,
            client_hint: hint,
        })
        .await?;
    Ok(wire)
}

/// The fields of an OAuth2-style form body, url-encoded or `multipart/form-data` (file parts are ignored). Any
/// other body has no fields, so its required fields are reported missing, as FastAPI does.
pub async fn form_fields(headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let lower = ctype.to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        return serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default();
    }
    if !lower.starts_with("multipart/form-data") {
        return Vec::new();
    }
    let Ok(boundary) = multer::parse_boundary(ctype) else { return Vec::new() };
    let chunk = body.clone();
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(chunk) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Ok(Some(field)) = parts.next_field().await {
        if field.file_name().is_some() {
            continue;
        }
        let Some(name) = field.name().map(str::to_string) else { continue };
        if let Ok(text) = field.text().await {
            out.push((name, text));
        }
    }
    out
}

fn form_get<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub async fn login(
    State(ctx): State<Ctx>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = form_fields(&headers, &body).await;
    let mut errors = Vec::new();
    let username = form_get(&fields, "username");
    let password = form_get(&fields, "password");
    if username.is_none() {
        errors.push(err("missing", &[json!("body"), json!("username")], "Field required", Value::Null));
    }
    if password.is_none() {
        errors.push(err("missing", &[json!("body"), json!("password")], "Field required", Value::Null));
    }
    if let Some(g) = form_get(&fields, "grant_type")
        && g != "password"
    {
        errors.push(err_ctx(
            "string_pattern_mismatch",
            &[json!("body"), json!("grant_type")],
            "String should match pattern '^password$'",
            json!(g),
            json!({"pattern": "^password$"}),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (username, password) = (username.unwrap_or_default().to_string(), password.unwrap_or_default().to_string());
    ctx.limiter.hit(Limited::Login, ip).map_err(ApiError::RateLimited)?;
    let bad = || ApiError::unauthorized("Incorrect username or password");
    let user = ctx.relay.user_by_name(&username).await?.ok_or_else(bad)?;
    let hash = user.password_hash.clone().ok_or_else(bad)?;
    let ok = tokio::task::spawn_blocking(move || tokens::verify_password(&password, &hash)).await.unwrap_or(false);
    if !ok {
        return Err(bad());
    }
    if !user.is_active {
        return Err(ApiError::forbidden("User account is inactive"));
    }
    let refresh = new_refresh_chain(&ctx, &user.user_id, Some("password-login".into())).await?;
    Ok(token_response(&ctx, &user, refresh).await)
}

fn permissions_field(raw: &serde_json::value::RawValue, errors: &mut Vec<Value>) -> Option<Vec<String>> {
    let loc = [json!("body"), json!("permissions")];
    match v::list(raw, &loc, 0, usize::MAX) {
        Err(e) => {
            errors.push(e);
            None
        }
        Ok(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let val: Value = serde_json::from_str(item.get()).unwrap_or(Value::Null);
                match val.as_str().filter(|s| PERMISSIONS.contains(s)) {
                    Some(p) => out.push(p.to_string()),
                    None => errors.push(err_ctx(
                        "literal_error",
                        &[json!("body"), json!("permissions"), json!(i)],
                        "Input should be 'admin', 'read' or 'write'",
                        val,
                        json!({"expected": "'admin', 'read' or 'write'"}),
                    )),
                }
            }
            Some(out)
        }
    }
}

fn string_len(
    raw: &serde_json::value::RawValue,
    field: &str,
    min: usize,
    max: Option<usize>,
    errors: &mut Vec<Value>,
) -> Option<String> {
    let loc = [json!("body"), json!(field)];
    match v::string(raw, &loc) {
        Err(e) => {
            errors.push(e);
            None
        }
        Ok(s) => {
            let n = s.chars().count();
            if n < min {
                let unit = if min == 1 { "character" } else { "characters" };
                errors.push(err_ctx(
                    "string_too_short",
                    &loc,
                    &format!("String should have at least {min} {unit}"),
                    json!(s),
                    json!({"min_length": min}),
                ));
                None
            } else if let Some(max) = max.filter(|m| n > *m) {
                errors.push(err_ctx(
                    "string_too_long",
                    &loc,
                    &format!("String should have at most {max} characters"),
                    json!(s),
                    json!({"max_length": max}),
                ));
                None
            } else {
                Some(s)
            }
        }
    }
}

fn optional_string(
    raw: Option<&serde_json::value::RawValue>,
    field: &str,
    errors: &mut Vec<Value>,
) -> Option<Option<String>> {
    let raw = raw?;
    if raw.get().trim() == "null" {
        return Some(None);
    }
    match v::string(raw, &[json!("body"), json!(field)]) {
        Ok(s) => Some(Some(s)),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

async fn hash(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || tokens::hash_password(&password)).await.map_err(|_| ApiError::Internal)
}

pub async fn register(State(ctx): State<Ctx>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require("admin")?;
    let b = Body::parse(&body)?;
    let whole = b.whole();
    let mut errors = Vec::new();
    let username = match b.get("username") {
        None => {
            errors.push(v::missing(&[json!("body"), json!("username")], &whole));
            None
        }
        Some(r) => string_len(r, "username", 3, Some(50), &mut errors),
    };
    let email = optional_string(b.get("email"), "email", &mut errors).flatten();
    let password = match b.get("password") {
        None => {
            errors.push(v::missing(&[json!("body"), json!("password")], &whole));
            None
        }
        Some(r) => string_len(r, "password", 8, None, &mut errors),
    };
    let permissions = match b.get("permissions") {
        None => Some(Vec::new()),
        Some(r) => permissions_field(r, &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (Some(username), Some(password), Some(permissions)) = (username, password, permissions) else {
        return Err(ApiError::Internal);
    };
    if ctx.relay.user_by_name(&username).await?.is_some() {
        return Err(ApiError::bad_request(format!("Username '{username}' already exists")));
    }
    let password_hash = Some(hash(password).await?);
    let user = ctx.relay.create_user(NewRelayUser { username, email, password_hash, permissions }).await?;
    Ok(json_value(StatusCode::CREATED, &user_public(&ctx, &user).await?))
}

pub async fn logout(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    if let Some(jti) = &caller.claims.jti {
        ctx.relay.deny_access_token(jti, caller.claims.exp.saturating_mul(1_000_000)).await?;
    }
    Ok(no_content())
}

pub async fn me(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    Ok(json_value(StatusCode::OK, &user_public(&ctx, &caller.user).await?))
}

pub async fn list_users(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    caller.require("admin")?;
    let mut out = Vec::new();
    for u in ctx.relay.users().await? {
        out.push(user_public(&ctx, &u).await?);
    }
    Ok(json_value(StatusCode::OK, &Value::Array(out)))
}

pub async fn user_stats(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    caller.require("admin")?;
    let users = ctx.relay.users().await?;
    let active = users.iter().filter(|u| u.is_active).count();
    Ok(json_value(StatusCode::OK, &json!({"total_users": users.len(), "active_users": active})))
}

fn user_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("User with ID '{id}' not found"))
}

pub async fn update_user(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require("admin")?;
    let b = Body::parse(&body)?;
    let mut errors = Vec::new();
    let mut patch =
        RelayUserPatch { email: optional_string(b.get("email"), "email", &mut errors), ..Default::default() };
    // The plain password rides in `password_hash` until it is hashed below, after validation.
    if let Some(r) = b.get("password").filter(|r| r.get().trim() != "null")
        && let Some(p) = string_len(r, "password", 8, None, &mut errors)
    {
        patch.password_hash = Some(p);
    }
    if let Some(r) = b.get("permissions").filter(|r| r.get().trim() != "null") {
        patch.permissions = permissions_field(r, &mut errors);
    }
    if let Some(r) = b.get("is_active").filter(|r| r.get().trim() != "null") {
        match serde_json::from_str::<Value>(r.get()).unwrap_or(Value::Null) {
            Value::Bool(x) => patch.is_active = Some(x),
            other => errors.push(err(
                "bool_type",
                &[json!("body"), json!("is_active")],
                "Input should be a valid boolean",
                other,
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if ctx.relay.user(&user_id).await?.is_none() {
        return Err(user_not_found(&user_id));
    }
    if let Some(pw) = patch.password_hash.take() {
        patch.password_hash = Some(hash(pw).await?);
    }
    let user = ctx.relay.update_user(&user_id, patch).await?;
    Ok(json_value(StatusCode::OK, &user_public(&ctx, &user).await?))
}

pub async fn delete_user(State(ctx): State<Ctx>, caller: Caller, Path(user_id): Path<String>) -> ApiResult<Response> {
    caller.require("admin")?;
    if user_id == caller.user.user_id {
        return Err(ApiError::bad_request("Cannot delete your own user account"));
    }
    if ctx.relay.user(&user_id).await?.is_none() {
        return Err(user_not_found(&user_id));
    }
    ctx.relay.delete_user(&user_id).await?;
    Ok(no_content())
}

fn refresh_field(body: &Bytes) -> ApiResult<(String, Body<'_>)> {
    let b = Body::parse(body)?;
    let token = match b.get("refresh_token") {
        None => return Err(ApiError::one(v::missing(&[json!("body"), json!("refresh_token")], &b.whole()))),
        Some(r) => v::string(r, &[json!("body"), json!("refresh_token")]).map_err(ApiError::one)?,
    };
    Ok((token, b))
}

pub async fn refresh(State(ctx): State<Ctx>, ClientIp(ip): ClientIp, body: Bytes) -> ApiResult<Response> {
    let (token, _) = refresh_field(&body)?;
    ctx.limiter.hit(Limited::Refresh, ip).map_err(ApiError::RateLimited)?;
    let invalid = || ApiError::unauthorized("invalid refresh token");
    let (jti, secret) = tokens::split_refresh_token(&token).ok_or_else(invalid)?;
    let secret_hash = tokens::sha256_hex(secret);
    let record = ctx.relay.refresh(jti).await?.ok_or_else(invalid)?;
    if record.secret_hash == secret_hash && record.revoked.is_none() {
        let user = ctx.relay.user(&record.user_id).await?;
        if !user.as_ref().is_some_and(|u| u.is_active) {
            ctx.relay.revoke_refresh(jti, "admin", false).await?;
            return Err(ApiError::detail(StatusCode::UNAUTHORIZED, "user not found"));
        }
    }
    let (new_jti, wire, new_hash) = tokens::new_refresh_token();
    let ttl = ctx.settings.refresh_token_ttl.as_micros() as i64;
    match ctx.relay.rotate_refresh(jti, &secret_hash, new_jti, new_hash, ttl).await? {
        Rotation::Rotated(_) => {
            let user = ctx.relay.user(&record.user_id).await?.ok_or_else(invalid)?;
            Ok(token_response(&ctx, &user, wire).await)
        }
        Rotation::Unknown | Rotation::Replayed | Rotation::Expired => Err(invalid()),
    }
}

pub async fn revoke(State(ctx): State<Ctx>, body: Bytes) -> ApiResult<Response> {
    let (token, b) = refresh_field(&body)?;
    let chain = match b.get("revoke_chain") {
        None => false,
        Some(r) => match serde_json::from_str::<Value>(r.get()).unwrap_or(Value::Null) {
            Value::Bool(x) => x,
            other => {
                return Err(ApiError::one(err(
                    "bool_type",
                    &[json!("body"), json!("revoke_chain")],
                    "Input should be a valid boolean",
                    other,
                )));
            }
        },
    };
    let (jti, secret) =
        tokens::split_refresh_token(&token).ok_or_else(|| ApiError::bad_request("malformed refresh token"))?;
    // Always 204: an unknown jti or a wrong secret changes nothing and says nothing (no enumeration oracle).
    if let Some(record) = ctx.relay.refresh(jti).await?
        && record.secret_hash == tokens::sha256_hex(secret)
    {
        ctx.relay.revoke_refresh(jti, "logout", chain).await?;
    }
    Ok(no_content())
}

pub async fn sessions(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    let list: Vec<Value> = ctx
        .relay
        .sessions(caller.id())
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "jti": r.jti,
                "issued_at": z_form(r.issued_at),
                "expires_at": z_form(r.expires_at),
                "last_used_at": r.last_used_at.map(z_form),
                "client_hint": r.client_hint,
            })
        })
        .collect();
    Ok(json_value(StatusCode::OK, &Value::Array(list)))
}

pub async fn delete_session(State(ctx): State<Ctx>, caller: Caller, Path(jti): Path<String>) -> ApiResult<Response> {
    match ctx.relay.refresh(&jti).await? {
        // Revoking one's own session again is a harmless 204, as in the reference.
        Some(r) if r.user_id == caller.user.user_id => {
            ctx.relay.revoke_refresh(&jti, "logout", false).await?;
            Ok(no_content())
        }
        _ => Err(ApiError::not_found("session not found")),
    }
}

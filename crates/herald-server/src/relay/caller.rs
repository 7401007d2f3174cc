//! Who is calling (contract §2.1): the bearer token is checked, then the user is looked up, then `is_active`, then
//! the route's permission — in that order, and all before the body is validated. Effective permissions and
//! `is_active` come from the stored user on every request (the JWT's `permissions` claim is informational), so an
//! admin's change takes effect at once.

use super::tokens::Claims;
use super::wire::{ApiError, ApiResult};
use super::{Ctx, RelayCtx};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use herald_engine::relay::api::RelayUser;
use std::net::{IpAddr, SocketAddr};

pub struct Caller {
    pub user: RelayUser,
    pub claims: Claims,
}

impl Caller {
    /// 403 `Permission 'P' required` unless the user has `perm` (flat flags: admin does not imply read or write).
    pub fn require(&self, perm: &str) -> ApiResult<()> {
        if self.user.permissions.iter().any(|p| p == perm) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("Permission '{perm}' required")))
        }
    }

    pub fn id(&self) -> &str {
        &self.user.user_id
    }
}

/// The bearer token of an `Authorization` header (scheme case-insensitive), if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks an access token and its user: 401 for a bad, expired or revoked token or a missing user, 403 for an
/// inactive user.
pub async fn authenticate(ctx: &RelayCtx, token: &str) -> ApiResult<(RelayUser, Claims)> {
    let claims = ctx.jwt.verify(token).ok_or_else(|| ApiError::unauthorized("Invalid or expired token"))?;
    if let Some(jti) = &claims.jti
        && ctx.relay.is_access_token_denied(jti).await?
    {
        return Err(ApiError::unauthorized("Token has been revoked"));
    }
    let user = ctx.relay.user(&claims.sub).await?.ok_or_else(|| ApiError::unauthorized("User not found"))?;
    if !user.is_active {
        return Err(ApiError::forbidden("User is inactive"));
    }
    Ok((user, claims))
}

impl FromRequestParts<Ctx> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;
        let (user, claims) = authenticate(ctx, token).await?;
        Ok(Caller { user, claims })
    }
}

/// The client's IP address (rate limits are per IP).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        Ok(ClientIp(ip))
    }
}

//! Transport rules every relay route goes through (contract §2.1), in the real server's order: trusted host, then
//! CORS, then the body-size cap; plus request metrics and the framework's own answers (404, 405, the 307 for a
//! trailing slash), and the routes without a caller: `/health`, `/ready`, `/metrics`.

use super::wire::{ApiError, json_value, z_form};
use super::{Ctx, wire};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Instant;

/// The version string the real server reports (it does not track its package version).
const VERSION: &str = "0.1.0";

/// A body announced as too large is still read (and dropped) up to this many bytes, so the client sees the 413.
const DRAIN_MAX: usize = 64 << 20;
/// Bodies without a Content-Length are not capped by the contract; Herald still stops reading at this many bytes.
const CHUNKED_MAX: u64 = 64 << 20;

const CORS_METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "OPTIONS"];
/// Allowed request headers: the configured two plus the CORS-safelisted ones, sorted as Starlette sends them.
const CORS_HEADERS: [&str; 5] = ["Accept", "Accept-Language", "Authorization", "Content-Language", "Content-Type"];

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The `Host` header's host name, lower-cased, without the port.
fn host_name(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    Some(name.to_ascii_lowercase())
}

/// `*` = any host, `*.example.com` = any subdomain of example.com, otherwise an exact (case-insensitive) match.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        if p == "*" {
            true
        } else if let Some(suffix) = p.strip_prefix('*') {
            host.ends_with(suffix)
        } else {
            p == host
        }
    })
}

pub fn is_websocket_handshake(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn origin_allowed(ctx: &Ctx, origin: &str) -> bool {
    ctx.settings.allowed_origins.iter().any(|o| o == origin)
}

/// The middleware stack of §2.1 and the request metrics.
pub async fn transport(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let handler = template_of(req.uri().path());

    // 1. Trusted host. A WebSocket handshake is refused with 403 (the socket is never opened).
    let host_ok = host_name(req.headers()).is_some_and(|h| host_allowed(&ctx.settings.trusted_hosts, &h));
    if !host_ok {
        return if is_websocket_handshake(&req) {
            StatusCode::FORBIDDEN.into_response()
        } else {
            text(StatusCode::BAD_REQUEST, "Invalid host header")
        };
    }

    // 2. CORS.
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
    if method == Method::OPTIONS
        && let Some(origin) = &origin
        && let Some(wanted) = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(&ctx, origin, wanted, req.headers());
    }

    // 3. Body size, from Content-Length only (chunked bodies are not checked, as in the reference).
    let too_large = !is_websocket_handshake(&req)
        && req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > ctx.settings.max_body_bytes);
    // The body is read here, before any handler runs: a route that answers early (401, 403, 413) must not leave
    // unread bytes behind, or the server closes the connection and the client may see it go away without an
    // answer. A body over the cap is read and dropped up to a bound, then the answer is 413.
    let (parts, body) = req.into_parts();
    let limit = if too_large { DRAIN_MAX } else { ctx.settings.max_body_bytes.max(CHUNKED_MAX) as usize };
    let collected = axum::body::to_bytes(body, limit).await;
    let mut resp = match collected {
        Ok(_) if too_large => ApiError::TooLarge.into_response(),
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(_) => {
            let mut r = ApiError::TooLarge.into_response();
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    };

    if let Some(origin) = origin {
        if origin_allowed(&ctx, &origin)
            && let Ok(v) = HeaderValue::from_str(&origin)
        {
            resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }

    let status = resp.status().as_u16();
    let handler = handler.unwrap_or("none");
    let group = match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    let elapsed = started.elapsed().as_secs_f64();
    ctx.metrics.http_requests.with_label_values(&[handler, method.as_str(), group]).inc();
    ctx.metrics.http_duration.with_label_values(&[handler, method.as_str()]).observe(elapsed);
    ctx.metrics.http_duration_highr.observe(elapsed);
    resp
}

fn preflight(ctx: &Ctx, origin: &str, wanted: &HeaderValue, headers: &HeaderMap) -> Response {
    let mut failures = Vec::new();
    if !origin_allowed(ctx, origin) {
        failures.push("origin");
    }
    if !wanted.to_str().is_ok_and(|m| CORS_METHODS.contains(&m)) {
        failures.push("method");
    }
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok()).unwrap_or("");
    let headers_ok = requested
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .all(|h| CORS_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h)));
    if !headers_ok {
        failures.push("headers");
    }
    let mut resp = if failures.is_empty() {
        text(StatusCode::OK, "OK")
    } else {
        let msg = format!("Disallowed CORS {}", failures.join(", "));
        let mut r = (StatusCode::BAD_REQUEST, msg).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        r
    };
    let h = resp.headers_mut();
    if !failures.contains(&"origin")
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Accept, Accept-Language, Authorization, Content-Language, Content-Type"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

// ---------------------------------------------------------------- framework answers

/// Route templates, to tell "no such path" from "this path without its trailing slash exists".
const ROUTES: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/auth/login",
    "/auth/register",
    "/auth/logout",
    "/auth/me",
    "/auth/users",
    "/auth/users/stats",
    "/auth/users/{user_id}",
    "/auth/token/refresh",
    "/auth/token/revoke",
    "/auth/sessions",
    "/auth/sessions/{jti}",
    "/auth/oidc/providers",
    "/auth/oidc/{provider}/login",
    "/auth/oidc/{provider}/callback",
    "/auth/device/code",
    "/auth/device/token",
    "/auth/device/deny",
    "/api/v1/topics",
    "/api/v1/topics/stats",
    "/api/v1/topics/{topic_name}",
    "/api/v1/topics/{topic_name}/messages",
    "/api/v1/messages",
    "/api/v1/messages/bulk",
    "/messages/poll",
    "/messages/poll/stats",
    "/ws",
];

/// The route template a path matches (static segments win, as in the router), for metrics labels. Runs on every
/// request, so it compares segment by segment without allocating.
fn template_of(path: &str) -> Option<&'static str> {
    let matches = |route: &str| {
        let (mut r, mut p) = (route.split('/'), path.split('/'));
        loop {
            match (r.next(), p.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a == b || (a.starts_with('{') && !b.is_empty()) => {}
                _ => return false,
            }
        }
    };
    // A route without parameters matches exactly its own text; those win over parameterised ones.
    ROUTES.iter().find(|r| **r == path).or_else(|| ROUTES.iter().find(|r| matches(r))).copied()
}

fn route_exists(path: &str) -> bool {
    template_of(path).is_some()
}

pub async fn not_found(req: Request<Body>) -> Response {
    let path = req.uri().path();
    if path.len() > 1
        && let Some(trimmed) = path.strip_suffix('/')
        && route_exists(trimmed)
    {
        // Starlette's redirect_slashes: a 307 to the same URL without the slash.
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let location = format!("http://{host}{trimmed}{query}");
        let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    ApiError::not_found("Not Found").into_response()
}

pub async fn method_not_allowed() -> Response {
    ApiError::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response()
}

// ---------------------------------------------------------------- health, readiness, metrics

pub async fn health() -> Response {
    json_value(
        StatusCode::OK,
        &json!({"status": "healthy", "timestamp": z_form(wire::now_micros()), "version": VERSION}),
    )
}

pub async fn ready(State(ctx): State<Ctx>) -> Response {
    let ok = ctx.ready.load(std::sync::atomic::Ordering::SeqCst) && !ctx.shutdown.is_cancelled();
    let storage = if ok { "ok" } else { "not_initialized" };
    json_value(StatusCode::OK, &json!({"ready": ok, "checks": {"storage": storage}}))
}

pub async fn metrics(State(ctx): State<Ctx>) -> Response {
    let mut r = ctx.metrics.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let p = vec!["localhost".to_string(), "*.example.com".to_string()];
        assert!(host_allowed(&p, "localhost"));
        assert!(host_allowed(&p, "a.example.com"));
        assert!(!host_allowed(&p, "example.org"));
        assert!(host_allowed(&["*".to_string()], "anything"));
        assert!(!host_allowed(&[], "localhost"));
    }

    #[test]
    fn trailing_slash_routes() {
        assert!(route_exists("/api/v1/topics"));
        assert!(route_exists("/api/v1/topics/x/messages"));
        assert!(!route_exists("/api/v1/nothing"));
        assert!(!route_exists("/api/v1/topics//messages"));
    }
}

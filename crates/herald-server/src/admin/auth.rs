//! Optional authentication of the admin listener (`[auth] http = true`, `--http-auth`).
//!
//! FlowMesh's HTTP API performs no authentication, so Herald's is open by default (compat/flowmesh.md §4.2). When an
//! operator turns it on, every request except `/health`, `/ready`, `/metrics` and the dashboard's static files must
//! carry `Authorization: Bearer <token>` — the same tokens, scopes and permission map as the gRPC side — and `/ws`
//! also accepts the token as a `token` query parameter, because a browser cannot set headers on a WebSocket. The
//! 401 answers are FlowMesh's (its unmounted HTTP middleware): `{"error":"..."}` sent as `text/plain`. A token whose
//! scope does not cover the resource gets 403 in the API's JSON error form with the gRPC side's message.
//!
//! The check is one middleware in front of every route, so no route can forget it: the resource a request acts on
//! and the permission it needs are read from the method and the path (`scope_of`), mirroring the gRPC permission map.

use super::errors::ApiError;
use crate::auth::{Permission, Principal, TenantAction};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_types::{ErrorCode, ResourceKind, ResourcePath};

/// What a request needs beyond a valid token.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    /// A valid token is enough (listings, session-id calls, the overview).
    Token,
    /// A permission on one resource.
    Resource(Permission, ResourceKind, [String; 3]),
    /// Schema registry calls carry a tenant rather than a path.
    Tenant(TenantAction, Option<String>),
}

/// Paths anyone may read even with HTTP authentication on (§4.2).
fn exempt(path: &str) -> bool {
    matches!(path, "/" | "/health" | "/ready" | "/metrics" | "/ui") || path.starts_with("/ui/")
}

pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if exempt(&path) {
        return next.run(req).await;
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let header = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
    // A browser's WebSocket cannot send headers: `/ws?token=<token>` stands for `Authorization: Bearer <token>`.
    let header = header.or_else(|| {
        (path == "/ws").then(|| query_value(&query, "token")).flatten().map(|t| format!("Bearer {t}").into_bytes())
    });
    let principal = match state.auth.authenticate(header.as_deref()) {
        Ok(p) => p,
        Err(e) => return unauthorized(header.is_none(), e.message.as_str()),
    };
    if let Err(e) = check(&principal, scope_of(req.method(), &path, &query)) {
        return ApiError(e).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// FlowMesh's three 401 bodies, as its middleware sends them (JSON text with a `text/plain` content type).
fn unauthorized(missing: bool, message: &str) -> Response {
    let body = if missing {
        r#"{"error":"missing authorization header"}"#
    } else if message == "invalid authorization header format" {
        r#"{"error":"invalid authorization header format"}"#
    } else {
        r#"{"error":"unauthorized"}"#
    };
    let mut res = (StatusCode::UNAUTHORIZED, format!("{body}\n")).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

fn check(p: &Principal, scope: Scope) -> herald_types::Result<()> {
    match scope {
        Scope::Token => Ok(()),
        Scope::Resource(perm, kind, [t, ns, name]) => match ResourcePath::new(&t, &ns, kind, &name) {
            Ok(path) => p.authorize(perm, &path),
            // An invalid path is the route's to reject, with its own message; it acts on nothing.
            Err(_) => Ok(()),
        },
        Scope::Tenant(action, Some(tenant)) => p.authorize_tenant(action, &tenant),
        // The tenant is in the body: only a token for every tenant may leave it there.
        Scope::Tenant(action, None) => p.authorize_tenant(action, "*").map_err(|_| {
            herald_types::HeraldError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "forbidden: {}: a token scoped to tenants must name the tenant in the path or the query",
                    action.as_str()
                ),
            )
        }),
    }
}

/// The permission a request needs, from its method and path (the gRPC permission map of §4.1 applied to §5's
/// routes).
fn scope_of(method: &Method, path: &str, query: &str) -> Scope {
    let segs: Vec<String> = path.trim_start_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let write = *method != Method::GET && *method != Method::HEAD;
    let resource =
        |perm, kind, s: &[&str]| Scope::Resource(perm, kind, [s[0].to_string(), s[1].to_string(), s[2].to_string()]);
    match segs.as_slice() {
        ["api", "v1", "streams", t, ns, name, rest @ ..] if !rest.is_empty() => {
            let perm = if write { Permission::StreamWrite } else { Permission::StreamRead };
            resource(perm, ResourceKind::Stream, &[t, ns, name])
        }
        ["api", "v1", "queues", t, ns, name, rest @ ..] if !rest.is_empty() => {
            let perm = if write { Permission::QueueWrite } else { Permission::QueueRead };
            resource(perm, ResourceKind::Queue, &[t, ns, name])
        }
        ["api", "v1", "kv", t, ns, name, rest @ ..] if !rest.is_empty() => {
            let perm = if write { Permission::KvWrite } else { Permission::KvRead };
            resource(perm, ResourceKind::Kv, &[t, ns, name])
        }
        ["api", "herald", "kv", t, ns, name, "entries"] => {
            resource(Permission::KvRead, ResourceKind::Kv, &[t, ns, name])
        }
        ["api", "v1", "schemas", ..] => {
            let action = if write { TenantAction::SchemaWrite } else { TenantAction::SchemaRead };
            Scope::Tenant(action, query_value(query, "tenant"))
        }
        ["api", "v1", tenant, "schemas", ..] => {
            let action = if write { TenantAction::SchemaWrite } else { TenantAction::SchemaRead };
            Scope::Tenant(action, Some(tenant.to_string()))
        }
        // Creating a replay session reads the stream (as `CreateReplaySession` does over gRPC).
        ["api", "v1", "replay", "sessions"] | ["api", "v1", "replay", "sessions", ""] if *method == Method::POST => {
            match query_value(query, "stream").as_deref().map(|s| s.split('/').collect::<Vec<_>>()) {
                Some(p) if p.len() == 3 => resource(Permission::StreamRead, ResourceKind::Stream, &p),
                _ => Scope::Token,
            }
        }
        _ => Scope::Token,
    }
}

/// The first value of a query parameter, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(perm: Permission, kind: ResourceKind, p: [&str; 3]) -> Scope {
        Scope::Resource(perm, kind, p.map(String::from))
    }

    #[test]
    fn routes_map_to_the_grpc_permissions() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            scope_of(&post, "/api/v1/streams/t/ns/s/events", ""),
            res(Permission::StreamWrite, ResourceKind::Stream, ["t", "ns", "s"])
        );
        assert_eq!(
            scope_of(&get, "/api/v1/streams/t/ns/s/messages", "offset=0"),
            res(Permission::StreamRead, ResourceKind::Stream, ["t", "ns", "s"])
        );
        assert_eq!(
            scope_of(&post, "/api/v1/queues/t/ns/q/jobs/j/ack", ""),
            res(Permission::QueueWrite, ResourceKind::Queue, ["t", "ns", "q"])
        );
        assert_eq!(
            scope_of(&get, "/api/v1/queues/t/ns/q/dlq/jobs", ""),
            res(Permission::QueueRead, ResourceKind::Queue, ["t", "ns", "q"])
        );
        assert_eq!(
            scope_of(&Method::HEAD, "/api/v1/kv/t/ns/c/keys/a%2Fb", ""),
            res(Permission::KvRead, ResourceKind::Kv, ["t", "ns", "c"])
        );
        assert_eq!(
            scope_of(&Method::DELETE, "/api/v1/kv/t%31/ns/c/keys/k", ""),
            res(Permission::KvWrite, ResourceKind::Kv, ["t1", "ns", "c"])
        );
        assert_eq!(scope_of(&get, "/api/v1/streams", ""), Scope::Token);
        assert_eq!(scope_of(&get, "/api/v1/streams/", ""), Scope::Token);
        assert_eq!(
            scope_of(&post, "/api/v1/t1/schemas", ""),
            Scope::Tenant(TenantAction::SchemaWrite, Some("t1".into()))
        );
        assert_eq!(
            scope_of(&get, "/api/v1/schemas", "tenant=t2"),
            Scope::Tenant(TenantAction::SchemaRead, Some("t2".into()))
        );
        assert_eq!(scope_of(&post, "/api/v1/schemas", ""), Scope::Tenant(TenantAction::SchemaWrite, None));
        assert_eq!(
            scope_of(&post, "/api/v1/replay/sessions", "stream=t%2Fns%2Fs"),
            res(Permission::StreamRead, ResourceKind::Stream, ["t", "ns", "s"])
        );
        assert_eq!(scope_of(&post, "/api/v1/replay/sessions/abc/start", ""), Scope::Token);
        assert_eq!(
            scope_of(&get, "/api/herald/kv/t/ns/c/entries", ""),
            res(Permission::KvRead, ResourceKind::Kv, ["t", "ns", "c"])
        );
    }

    #[test]
    fn exempt_paths() {
        for p in ["/health", "/ready", "/metrics", "/ui", "/ui/", "/ui/app.js", "/"] {
            assert!(exempt(p), "{p}");
        }
        for p in ["/ws", "/api/v1/streams", "/healthz", "/uix"] {
            assert!(!exempt(p), "{p}");
        }
    }
}

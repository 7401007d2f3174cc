//! Principals and bearer-token authentication.
//!
//! One model of principals for every protocol: a principal is scoped to tenants, namespaces and permissions. This
//! module holds the FlowMesh bearer-token credential (compat/flowmesh.md §4.1, decision D20): the gRPC metadata key
//! `authorization` with the value `Bearer <token>`, the three UNAUTHENTICATED outcomes, and PERMISSION_DENIED with
//! the message `forbidden: <permission> on <tenant>/<namespace>: <reason>` when a token is scoped.
//!
//! Development mode: with no token configured and every listener on loopback, authentication is off, and the server
//! says so loudly at start-up.

use herald_types::{HeraldError, ResourcePath, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A permission from FlowMesh's set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    StreamRead,
    StreamWrite,
    QueueRead,
    QueueWrite,
    KvRead,
    KvWrite,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::StreamRead => "stream.read",
            Permission::StreamWrite => "stream.write",
            Permission::QueueRead => "queue.read",
            Permission::QueueWrite => "queue.write",
            Permission::KvRead => "kv.read",
            Permission::KvWrite => "kv.write",
        }
    }
}

/// A token as configured (`[[auth.tokens]]` in herald.toml).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: String,
    /// Tenants this token may use; `["*"]` (the default) means all.
    #[serde(default = "all")]
    pub tenants: Vec<String>,
    /// Namespaces this token may use; empty (the default) means all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Permissions (`stream.read`, `queue.write`, …); empty (the default) means all.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Subjects this principal may publish to over NATS (wildcards allowed); empty (the default) means all.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Subjects it may never publish to, even if `publish` allows them.
    #[serde(default)]
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to; a subscription must lie inside one of them. Empty (the default) means all.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Subjects it may never subscribe to (no subscription may overlap them).
    #[serde(default)]
    pub subscribe_deny: Vec<String>,
}

/// A user with a password (`[[auth.users]]`): NATS `user`/`pass` in CONNECT. Same scoping as a token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub user: String,
    pub password: String,
    #[serde(default = "all")]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub publish_deny: Vec<String>,
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub subscribe_deny: Vec<String>,
}

/// Allowed and denied subject patterns for one direction (publish or subscribe).
#[derive(Clone, Debug, Default)]
struct SubjectRules {
    allow: Vec<Vec<u8>>,
    deny: Vec<Vec<u8>>,
}

impl SubjectRules {
    fn new(allow: &[String], deny: &[String]) -> Self {
        let bytes = |v: &[String]| v.iter().map(|s| s.as_bytes().to_vec()).collect();
        SubjectRules { allow: bytes(allow), deny: bytes(deny) }
    }

    /// A published (literal) subject: allowed by some allow pattern (or no allow list), matched by no deny pattern.
    fn permits_publish(&self, subject: &[u8]) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|p| herald_subject::matches(p, subject)))
            && !self.deny.iter().any(|p| herald_subject::matches(p, subject))
    }

    /// A subscription pattern: everything it can match must be allowed, and it must not overlap a denied pattern.
    fn permits_subscribe(&self, pattern: &[u8]) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|p| herald_subject::is_subset(pattern, p)))
            && !self.deny.iter().any(|p| herald_subject::overlaps(p, pattern))
    }
}

fn all() -> Vec<String> {
    vec!["*".into()]
}

/// An authenticated caller. Cheap to clone: every request carries one.
#[derive(Clone, Debug)]
pub struct Principal(Arc<Scope>);

#[derive(Debug)]
struct Scope {
    name: String,
    tenants: Vec<String>,
    namespaces: Vec<String>,
    permissions: Vec<String>,
    publish: SubjectRules,
    subscribe: SubjectRules,
}

impl Principal {
    fn new(name: String, tenants: Vec<String>, namespaces: Vec<String>, permissions: Vec<String>) -> Self {
        Principal(Arc::new(Scope {
            name,
            tenants,
            namespaces,
            permissions,
            publish: SubjectRules::default(),
            subscribe: SubjectRules::default(),
        }))
    }

    fn from_token(i: usize, t: &TokenConfig) -> Self {
        Principal(Arc::new(Scope {
            name: format!("token#{}", i + 1),
            tenants: if t.tenants.is_empty() { all() } else { t.tenants.clone() },
            namespaces: t.namespaces.clone(),
            permissions: t.permissions.clone(),
            publish: SubjectRules::new(&t.publish, &t.publish_deny),
            subscribe: SubjectRules::new(&t.subscribe, &t.subscribe_deny),
        }))
    }

    fn from_user(u: &UserConfig) -> Self {
        Principal(Arc::new(Scope {
            name: format!("user {}", u.user),
            tenants: if u.tenants.is_empty() { all() } else { u.tenants.clone() },
            namespaces: u.namespaces.clone(),
            permissions: u.permissions.clone(),
            publish: SubjectRules::new(&u.publish, &u.publish_deny),
            subscribe: SubjectRules::new(&u.subscribe, &u.subscribe_deny),
        }))
    }

    /// May this principal publish to `subject` (NATS, relay topics)?
    pub fn may_publish(&self, subject: &[u8]) -> bool {
        self.0.publish.permits_publish(subject)
    }

    /// May this principal subscribe to the pattern `subject`?
    pub fn may_subscribe(&self, subject: &[u8]) -> bool {
        self.0.subscribe.permits_subscribe(subject)
    }

    /// The principal of development mode: everything allowed. One shared instance.
    pub fn anonymous() -> Self {
        static ANONYMOUS: std::sync::OnceLock<Principal> = std::sync::OnceLock::new();
        ANONYMOUS.get_or_init(|| Principal::new("anonymous".into(), all(), Vec::new(), Vec::new())).clone()
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Checks tenant, namespace and permission scope. Unscoped tokens (the default) allow everything.
    pub fn authorize(&self, permission: Permission, path: &ResourcePath) -> Result<()> {
        let deny = |reason: &str| {
            Err(HeraldError::permission_denied(format!(
                "forbidden: {} on {}/{}: {reason}",
                permission.as_str(),
                path.tenant,
                path.namespace
            )))
        };
        let scope = &self.0;
        if !scope.tenants.iter().any(|t| t == "*" || *t == path.tenant) {
            return deny("tenant not allowed");
        }
        if !scope.namespaces.is_empty() && !scope.namespaces.iter().any(|n| n == "*" || *n == path.namespace) {
            return deny("namespace not allowed");
        }
        if !scope.permissions.is_empty() && !scope.permissions.iter().any(|p| p == "*" || p == permission.as_str()) {
            return deny("permission not granted");
        }
        Ok(())
    }

    /// Checks only the tenant scope, for tenant-wide calls (the schema registry): any valid token may make them,
    /// but not for a tenant it is not scoped to. The denial has the §4.1 form, with `*` for the namespace because
    /// schemas belong to the whole tenant: `forbidden: schema.write on t2/*: tenant not allowed`.
    pub fn authorize_tenant(&self, action: TenantAction, tenant: &str) -> Result<()> {
        if self.0.tenants.iter().any(|t| t == "*" || t == tenant) {
            return Ok(());
        }
        Err(HeraldError::permission_denied(format!("forbidden: {} on {tenant}/*: tenant not allowed", action.as_str())))
    }
}

/// What a schema-registry call does, for [`Principal::authorize_tenant`]. FlowMesh's permission set has no schema
/// permissions (§4.1), so these name the action in a denial and are never looked up in a token's permission list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantAction {
    SchemaRead,
    SchemaWrite,
}

impl TenantAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantAction::SchemaRead => "schema.read",
            TenantAction::SchemaWrite => "schema.write",
        }
    }
}

/// Decides who a request comes from.
#[derive(Clone, Debug)]
pub struct Authenticator {
    /// `None` = authentication off (development mode or explicitly disabled).
    tokens: Option<Arc<HashMap<String, Principal>>>,
    /// user name → (password, principal).
    users: Arc<HashMap<String, (String, Principal)>>,
}

/// Compares secrets in time independent of where they first differ.
fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    pub fn disabled() -> Self {
        Authenticator { tokens: None, users: Arc::default() }
    }

    pub fn with_tokens(tokens: &[TokenConfig]) -> Self {
        Self::with_credentials(tokens, &[])
    }

    /// Authentication on, with these tokens and users.
    pub fn with_credentials(tokens: &[TokenConfig], users: &[UserConfig]) -> Self {
        let map = tokens.iter().enumerate().map(|(i, t)| (t.token.clone(), Principal::from_token(i, t))).collect();
        let users = users.iter().map(|u| (u.user.clone(), (u.password.clone(), Principal::from_user(u)))).collect();
        Authenticator { tokens: Some(Arc::new(map)), users: Arc::new(users) }
    }

    /// Authenticates NATS CONNECT credentials: `auth_token` (a Herald token) or `user` + `pass`. With
    /// authentication off, everyone is the anonymous principal. `None`: the credentials are wrong or missing.
    pub fn authenticate_nats(&self, token: Option<&str>, user: Option<&str>, pass: Option<&str>) -> Option<Principal> {
        let Some(tokens) = &self.tokens else { return Some(Principal::anonymous()) };
        if let Some(user) = user {
            let (password, principal) = self.users.get(user)?;
            return secret_eq(password.as_bytes(), pass.unwrap_or("").as_bytes()).then(|| principal.clone());
        }
        let token = token?;
        tokens.iter().find(|(t, _)| secret_eq(t.as_bytes(), token.as_bytes())).map(|(_, p)| p.clone())
    }

    pub fn is_enabled(&self) -> bool {
        self.tokens.is_some()
    }

    /// Authenticates the value of the `authorization` header/metadata entry (absent = `None`).
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal> {
        let Some(tokens) = &self.tokens else { return Ok(Principal::anonymous()) };
        let Some(value) = authorization else {
            return Err(HeraldError::unauthenticated("authentication required"));
        };
        let token = value
            .strip_prefix(b"Bearer ")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| HeraldError::unauthenticated("invalid authorization header format"))?;
        let token = std::str::from_utf8(token).map_err(|_| HeraldError::unauthenticated("invalid or expired token"))?;
        tokens.get(token).cloned().ok_or_else(|| HeraldError::unauthenticated("invalid or expired token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::with_tokens(&[
            TokenConfig { token: "test-token".into(), ..Default::default() },
            TokenConfig {
                token: "scoped".into(),
                tenants: vec!["t1".into()],
                namespaces: vec!["ns1".into()],
                permissions: vec!["stream.read".into()],
                ..Default::default()
            },
        ])
    }

    #[test]
    fn the_three_unauthenticated_outcomes() {
        let a = auth();
        let msg = |v: Option<&[u8]>| a.authenticate(v).unwrap_err().message;
        assert_eq!(msg(None), "authentication required");
        assert_eq!(msg(Some(b"Token test-token")), "invalid authorization header format");
        assert_eq!(msg(Some(b"Bearer ")), "invalid authorization header format");
        assert_eq!(msg(Some(b"bearer test-token")), "invalid authorization header format");
        assert_eq!(msg(Some(b"Bearer wrong")), "invalid or expired token");
        assert!(a.authenticate(Some(b"Bearer test-token")).is_ok());
        assert!(Authenticator::disabled().authenticate(None).is_ok());
    }

    #[test]
    fn scoping_denies_with_the_contract_text() {
        let p = auth().authenticate(Some(b"Bearer scoped")).unwrap();
        let path = ResourcePath::parse_joined("t1/ns1/stream/s").unwrap();
        assert!(p.authorize(Permission::StreamRead, &path).is_ok());
        let e = p.authorize(Permission::StreamWrite, &path).unwrap_err();
        assert_eq!(e.code, herald_types::ErrorCode::PermissionDenied);
        assert_eq!(e.message, "forbidden: stream.write on t1/ns1: permission not granted");
        let other = ResourcePath::parse_joined("t2/ns1/stream/s").unwrap();
        assert_eq!(
            p.authorize(Permission::StreamRead, &other).unwrap_err().message,
            "forbidden: stream.read on t2/ns1: tenant not allowed"
        );
        let unscoped = auth().authenticate(Some(b"Bearer test-token")).unwrap();
        assert!(unscoped.authorize(Permission::KvWrite, &other).is_ok());
    }

    #[test]
    fn tenant_wide_calls_check_the_tenant_only() {
        // Scoped to namespace ns1 and stream.read only, but tenant t1 is enough for the schema registry.
        let p = auth().authenticate(Some(b"Bearer scoped")).unwrap();
        assert!(p.authorize_tenant(TenantAction::SchemaWrite, "t1").is_ok());
        let e = p.authorize_tenant(TenantAction::SchemaRead, "t2").unwrap_err();
        assert_eq!(e.code, herald_types::ErrorCode::PermissionDenied);
        assert_eq!(e.message, "forbidden: schema.read on t2/*: tenant not allowed");
        assert!(Principal::anonymous().authorize_tenant(TenantAction::SchemaWrite, "any").is_ok());
    }
}

//! The realtime listener: Pulsar Relay's HTTP API, `/ws` and long-poll (compat/pulsar-relay.md), on 127.0.0.1:8080
//! by default.
//!
//! - [`settings`]: `[relay]` + `PULSAR_*` settings and the start-up guard;
//! - [`http`]: transport middleware (trusted host, CORS, body size), request metrics, 404/405/307 answers;
//! - [`caller`]: bearer authentication and permission checks, in the contract's order;
//! - [`auth_routes`], [`topics`], [`publish`], [`poll`], [`ws`], [`device`]: the routes;
//! - [`wire`]: timestamps, envelopes and the one error → HTTP mapping; [`validate`]: 422 bodies;
//! - [`tokens`]: JWTs, refresh tokens, Argon2id; [`limits`]: rate limits and per-user caps; [`metrics`].
//!
//! All state is the engine's ([`herald_engine::relay::api::Relay`]); this module keeps only connection state,
//! caps and counters.

pub mod auth_routes;
pub mod caller;
pub mod device;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod poll;
pub mod publish;
pub mod settings;
pub mod tokens;
pub mod topics;
pub mod validate;
pub mod wire;
pub mod ws;

use axum::Router;
use axum::routing::{delete, get, patch, post};
use herald_engine::relay::api::{NewRelayUser, Relay};
use limits::{PerUser, RateLimiter};
use settings::RelaySettings;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every relay handler shares.
pub struct RelayCtx {
    pub relay: Arc<dyn Relay>,
    pub settings: RelaySettings,
    pub jwt: tokens::Jwt,
    pub limiter: RateLimiter,
    pub ws_per_user: Arc<PerUser>,
    pub polls: poll::Waiters,
    pub metrics: metrics::RelayMetrics,
    pub shutdown: CancellationToken,
    /// Storage opened and serving.
    pub ready: std::sync::atomic::AtomicBool,
}

pub type Ctx = Arc<RelayCtx>;

impl RelayCtx {
    pub fn new(relay: Arc<dyn Relay>, settings: RelaySettings, shutdown: CancellationToken) -> Ctx {
        Arc::new(RelayCtx {
            relay,
            jwt: tokens::Jwt::new(&settings.jwt_secret),
            limiter: RateLimiter::new(settings.ratelimit_enabled),
            ws_per_user: PerUser::new(),
            polls: poll::Waiters::default(),
            metrics: metrics::RelayMetrics::new(),
            settings,
            shutdown,
            ready: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Creates the bootstrap admin, or resets its password when the stored one no longer verifies (§1.1).
    /// Failures are logged, not fatal.
    pub async fn bootstrap_admin(&self) {
        let Some(admin) = self.settings.bootstrap_admin.clone() else { return };
        if self.settings.development {
            tracing::warn!(
                username = %admin.username,
                password = %admin.password,
                "relay: nothing configured, running with DEVELOPMENT DEFAULTS (random JWT secret, generated admin password, localhost only). Set PULSAR_JWT_SECRET_KEY, PULSAR_BOOTSTRAP_ADMIN_* , PULSAR_TRUSTED_HOSTS and PULSAR_ALLOWED_ORIGINS for real use."
            );
        }
        let result = async {
            match self.relay.user_by_name(&admin.username).await? {
                None => {
                    let pw = admin.password.clone();
                    let hash = tokio::task::spawn_blocking(move || tokens::hash_password(&pw))
                        .await
                        .map_err(|e| herald_types::HeraldError::internal(e.to_string()))?;
                    self.relay
                        .create_user(NewRelayUser {
                            username: admin.username.clone(),
                            email: Some(admin.email.clone()),
                            password_hash: Some(hash),
                            permissions: vec!["admin".into(), "read".into(), "write".into()],
                        })
                        .await?;
                    tracing::info!(username = %admin.username, "relay: created the bootstrap admin");
                }
                Some(user) => {
                    let pw = admin.password.clone();
                    let stored = user.password_hash.clone().unwrap_or_default();
                    let ok = tokio::task::spawn_blocking(move || tokens::verify_password(&pw, &stored))
                        .await
                        .unwrap_or(false);
                    if !ok {
                        let pw = admin.password.clone();
                        let hash = tokio::task::spawn_blocking(move || tokens::hash_password(&pw))
                            .await
                            .map_err(|e| herald_types::HeraldError::internal(e.to_string()))?;
                        self.relay
                            .update_user(
                                &user.user_id,
                                herald_engine::relay::api::RelayUserPatch {
                                    password_hash: Some(hash),
                                    ..Default::default()
                                },
                            )
                            .await?;
                        tracing::info!(username = %admin.username, "relay: reset the bootstrap admin's password to the configured one");
                    }
                }
            }
            Ok::<_, herald_types::HeraldError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e.message, "relay: bootstrap admin failed");
        }
    }
}

/// The relay's routes (contract §2.2) with its middleware.
pub fn router(ctx: Ctx) -> Router {
    let api = Router::new()
        .route("/health", get(http::health))
        .route("/ready", get(http::ready))
        .route("/metrics", get(http::metrics))
        .route("/auth/login", post(auth_routes::login))
        .route("/auth/register", post(auth_routes::register))
        .route("/auth/logout", post(auth_routes::logout))
        .route("/auth/me", get(auth_routes::me))
        .route("/auth/users", get(auth_routes::list_users))
        .route("/auth/users/stats", get(auth_routes::user_stats))
        .route("/auth/users/{user_id}", patch(auth_routes::update_user).delete(auth_routes::delete_user))
        .route("/auth/token/refresh", post(auth_routes::refresh))
        .route("/auth/token/revoke", post(auth_routes::revoke))
        .route("/auth/sessions", get(auth_routes::sessions))
        .route("/auth/sessions/{jti}", delete(auth_routes::delete_session))
        .route("/auth/oidc/providers", get(device::oidc_providers))
        .route("/auth/oidc/{provider}/login", get(device::oidc_login))
        .route("/auth/oidc/{provider}/callback", get(device::oidc_callback))
        .route("/auth/device/code", post(device::device_code))
        .route("/auth/device/token", post(device::device_token))
        .route("/auth/device", get(device::device_page))
        .route("/auth/device/", get(device::device_page))
        .route("/auth/device/deny", post(device::device_deny))
        .route("/api/v1/topics", post(topics::create).get(topics::list))
        // A topic named `stats` is still reachable with PUT and DELETE (§1.3).
        .route("/api/v1/topics/stats", get(topics::stats).put(topics::update_stats).delete(topics::delete_stats))
        .route("/api/v1/topics/{topic_name}", get(topics::get).put(topics::update).delete(topics::delete))
        .route("/api/v1/topics/{topic_name}/messages", get(topics::history))
        .route("/api/v1/messages", post(publish::single))
        .route("/api/v1/messages/bulk", post(publish::bulk))
        .route("/messages/poll", post(poll::poll))
        .route("/messages/poll/stats", get(poll::stats))
        .route("/ws", get(ws::upgrade))
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed);
    api.layer(axum::middleware::from_fn_with_state(Arc::clone(&ctx), http::transport)).with_state(ctx)
}

//! The gRPC listener: every gRPC service Herald offers, on one port.

mod chunks;
pub mod ensync;
mod fast;
pub mod flowmesh;
pub mod listener;
pub mod status;

use crate::state::AppState;
pub use fast::in_connection_task;
use herald_proto::ensync::en_sync_service_server::EnSyncServiceServer;
use herald_proto::flowmesh::v1::{
    health_service_server::HealthServiceServer, kv_service_server::KvServiceServer,
    queue_service_server::QueueServiceServer, replay_service_server::ReplayServiceServer,
    schema_service_server::SchemaServiceServer, stream_service_server::StreamServiceServer,
};
use status::to_status;
use std::sync::Arc;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// Authenticates every call of the services it wraps (all but HealthService) before any validation (§3.1 step 1),
/// and leaves the caller's `Principal` in the request extensions for the handlers' scope checks.
#[derive(Clone)]
pub struct AuthInterceptor(crate::auth::Authenticator);

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        // Only the first `authorization` value counts.
        let header = req.metadata().get("authorization").map(|v| v.as_bytes().to_vec());
        let principal = self.0.authenticate(header.as_deref()).map_err(to_status)?;
        req.extensions_mut().insert(principal);
        Ok(req)
    }
}

/// The gRPC listener's service: the fast path for the hottest unary RPCs in front of tonic's router for all.
pub fn service(state: &AppState, max_message_bytes: usize) -> fast::FastPath<Routes> {
    let ctx = flowmesh::Ctx { state: state.clone() };
    let handlers = fast::Handlers {
        kv: flowmesh::KvSvc(ctx.clone()),
        queue: flowmesh::QueueSvc(ctx.clone()),
        stream: flowmesh::StreamSvc(ctx),
        events: ensync_svc(state),
        auth: state.auth.clone(),
        max_message_bytes,
    };
    fast::FastPath::new(routes(state, max_message_bytes), handlers)
}

fn ensync_svc(state: &AppState) -> ensync::EnSyncSvc {
    ensync::EnSyncSvc { events: Arc::clone(&state.engine.events), shutdown: state.shutdown.clone() }
}

/// The routes of the gRPC listener.
pub fn routes(state: &AppState, max_message_bytes: usize) -> Routes {
    let ctx = flowmesh::Ctx { state: state.clone() };
    let auth = AuthInterceptor(state.auth.clone());
    macro_rules! limits {
        ($svc:expr) => {
            $svc.max_decoding_message_size(max_message_bytes).max_encoding_message_size(usize::MAX)
        };
    }
    let mut routes = Routes::default();
    routes = routes.add_service(HealthServiceServer::new(flowmesh::HealthSvc(state.clone())));
    routes = routes.add_service(InterceptedService::new(
        limits!(StreamServiceServer::new(flowmesh::StreamSvc(ctx.clone()))),
        auth.clone(),
    ));
    routes = routes.add_service(InterceptedService::new(
        limits!(QueueServiceServer::new(flowmesh::QueueSvc(ctx.clone()))),
        auth.clone(),
    ));
    routes = routes.add_service(InterceptedService::new(
        limits!(SchemaServiceServer::new(flowmesh::SchemaSvc(ctx.clone()))),
        auth.clone(),
    ));
    routes = routes.add_service(InterceptedService::new(
        limits!(ReplayServiceServer::new(flowmesh::ReplaySvc(ctx.clone()))),
        auth.clone(),
    ));
    routes = routes.add_service(InterceptedService::new(limits!(KvServiceServer::new(flowmesh::KvSvc(ctx))), auth));
    // EnSync authenticates with the access key in `Connect` and the session id afterwards, not with metadata.
    routes = routes.add_service(limits!(EnSyncServiceServer::new(ensync_svc(state))));
    routes
}

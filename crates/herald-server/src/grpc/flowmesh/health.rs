//! `flowmesh.v1.HealthService`: never authenticated (§4.1).

use super::ok;
use crate::state::AppState;
use herald_proto::flowmesh::v1 as pb;
use pb::health_service_server::HealthService;
use tonic::{Request, Response, Status};

pub struct HealthSvc(pub AppState);

#[tonic::async_trait]
impl HealthService for HealthSvc {
    async fn health_check(
        &self,
        _: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        Ok(Response::new(pb::HealthCheckResponse { status: ok("healthy") }))
    }

    async fn readiness_check(
        &self,
        _: Request<pb::ReadinessCheckRequest>,
    ) -> Result<Response<pb::ReadinessCheckResponse>, Status> {
        let ready = self.0.is_ready();
        let status = if ready {
            ok("ready")
        } else {
            // FlowMesh puts the HTTP-style 503 in-band here (§3.2).
            Some(pb::Status { code: 503, message: "not ready".into(), details: String::new() })
        };
        Ok(Response::new(pb::ReadinessCheckResponse { status, ready }))
    }
}

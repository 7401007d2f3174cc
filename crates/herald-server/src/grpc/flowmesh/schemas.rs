//! `flowmesh.v1.SchemaService` (§3.6): the schema registry and attaching schemas to streams and queues.
//!
//! Registry calls name a tenant rather than a resource path, and FlowMesh's permission set has no schema permission
//! (§4.1): any valid token may use them, for a tenant it is scoped to. `SetResourceSchema` changes what a resource
//! accepts, so it needs the resource's write permission (`stream.write` or `queue.write`).

use super::{Ctx, authorize, convert, ok, parse_path, principal, required_path};
use crate::auth::{Permission, Principal, TenantAction};
use crate::grpc::status::to_status;
use herald_engine::schemas::checks;
use herald_proto::flowmesh::v1 as pb;
use herald_types::{ResourceKind, Result as HeraldResult};
use pb::schema_service_server::SchemaService;
use tonic::{Request, Response, Status};

pub struct SchemaSvc(pub(crate) Ctx);

/// The request's own checks (in the contract's order), then the caller's tenant scope.
fn admit(who: &Principal, checks: HeraldResult<()>, action: TenantAction, tenant: &str) -> Result<(), Status> {
    checks.map_err(to_status)?;
    who.authorize_tenant(action, tenant).map_err(to_status)
}

#[tonic::async_trait]
impl SchemaService for SchemaSvc {
    async fn register_schema(
        &self,
        req: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::RegisterSchemaResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let fields = checks::register(&r.tenant, &r.schema_id, &r.schema_type, r.version, &r.definition);
        admit(&who, fields, TenantAction::SchemaWrite, &r.tenant)?;
        self.0
            .engine()
            .schemas
            .register(&r.tenant, &r.schema_id, &r.schema_type, r.version, r.definition)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RegisterSchemaResponse { status: ok("schema registered successfully") }))
    }

    async fn get_schema(&self, req: Request<pb::GetSchemaRequest>) -> Result<Response<pb::GetSchemaResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        admit(&who, checks::get(&r.tenant, &r.schema_id), TenantAction::SchemaRead, &r.tenant)?;
        let schema = self.0.engine().schemas.get(&r.tenant, &r.schema_id, r.version).await.map_err(to_status)?;
        Ok(Response::new(pb::GetSchemaResponse {
            status: ok("schema retrieved successfully"),
            schema: Some(convert::schema(schema)),
        }))
    }

    async fn list_schemas(
        &self,
        req: Request<pb::ListSchemasRequest>,
    ) -> Result<Response<pb::ListSchemasResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        admit(&who, checks::tenant(&r.tenant), TenantAction::SchemaRead, &r.tenant)?;
        // proto3 cannot tell an unset filter from an empty one: empty means "every schema id".
        let filter = Some(r.schema_id.as_str()).filter(|id| !id.is_empty());
        let schemas = self.0.engine().schemas.list(&r.tenant, filter).await.map_err(to_status)?;
        Ok(Response::new(pb::ListSchemasResponse {
            status: ok("schemas listed successfully"),
            schemas: schemas.into_iter().map(convert::schema).collect(),
        }))
    }

    async fn delete_schema(
        &self,
        req: Request<pb::DeleteSchemaRequest>,
    ) -> Result<Response<pb::DeleteSchemaResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        admit(&who, checks::delete(&r.tenant, &r.schema_id, r.version), TenantAction::SchemaWrite, &r.tenant)?;
        self.0.engine().schemas.delete(&r.tenant, &r.schema_id, r.version).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteSchemaResponse { status: ok("schema deleted successfully") }))
    }

    async fn set_resource_schema(
        &self,
        req: Request<pb::SetResourceSchemaRequest>,
    ) -> Result<Response<pb::SetResourceSchemaResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        // §3.6 order: resource_path, schema_id, the path components, then the type (stream or queue).
        let rp = required_path(r.resource_path)?;
        checks::schema_id(&r.schema_id).map_err(to_status)?;
        let path = parse_path(&rp, None)?;
        checks::attach_kind(&path).map_err(to_status)?;
        let perm = if path.kind == ResourceKind::Queue { Permission::QueueWrite } else { Permission::StreamWrite };
        authorize(&who, perm, &path)?;
        self.0.engine().schemas.attach(&path, &r.schema_id, r.version).await.map_err(to_status)?;
        Ok(Response::new(pb::SetResourceSchemaResponse { status: ok("schema attached to resource successfully") }))
    }
}

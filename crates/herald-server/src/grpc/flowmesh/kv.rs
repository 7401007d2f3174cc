//! `flowmesh.v1.KVService` (§3.5).

use super::{Ctx, authorize, ok, parse_path, principal, required_path};
use crate::auth::Permission;
use crate::grpc::status::to_status;
use herald_proto::flowmesh::v1 as pb;
use herald_types::{ResourceKind, ResourcePath};
use pb::kv_service_server::KvService;
use tonic::{Request, Response, Status};

const KV: Option<ResourceKind> = Some(ResourceKind::Kv);

pub struct KvSvc(pub(crate) Ctx);

fn key(k: &str) -> Result<(), Status> {
    if k.is_empty() {
        return Err(Status::invalid_argument("key cannot be empty"));
    }
    Ok(())
}

/// The common prologue of Get/Delete/Exists: path present, key non-empty, components, type, permission.
fn keyed(
    who: &crate::auth::Principal,
    rp: Option<pb::ResourcePath>,
    k: &str,
    perm: Permission,
) -> Result<ResourcePath, Status> {
    let rp = required_path(rp)?;
    key(k)?;
    let path = parse_path(&rp, KV)?;
    authorize(who, perm, &path)?;
    Ok(path)
}

#[tonic::async_trait]
impl KvService for KvSvc {
    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let rp = required_path(r.resource_path)?;
        key(&r.key)?;
        if r.value.is_empty() {
            return Err(Status::invalid_argument("value cannot be empty"));
        }
        let path = parse_path(&rp, KV)?;
        authorize(&who, Permission::KvWrite, &path)?;
        self.0.engine().kv.set(&path, &r.key, r.value, r.ttl_seconds).await.map_err(to_status)?;
        Ok(Response::new(pb::SetResponse { status: ok("key-value pair set successfully") }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = keyed(&who, r.resource_path, &r.key, Permission::KvRead)?;
        let value = self.0.engine().kv.get(&path, &r.key).await.map_err(to_status)?;
        Ok(Response::new(pb::GetResponse { status: ok("value retrieved successfully"), value }))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = keyed(&who, r.resource_path, &r.key, Permission::KvWrite)?;
        self.0.engine().kv.delete(&path, &r.key).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteResponse { status: ok("key deleted successfully") }))
    }

    async fn exists(&self, req: Request<pb::ExistsRequest>) -> Result<Response<pb::ExistsResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = keyed(&who, r.resource_path, &r.key, Permission::KvRead)?;
        let exists = self.0.engine().kv.exists(&path, &r.key).await.map_err(to_status)?;
        Ok(Response::new(pb::ExistsResponse { status: ok("existence check completed"), exists }))
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let rp = required_path(r.resource_path)?;
        let path = parse_path(&rp, KV)?;
        authorize(&who, Permission::KvRead, &path)?;
        let keys = self.0.engine().kv.list_keys(&path, &r.prefix).await.map_err(to_status)?;
        Ok(Response::new(pb::ListKeysResponse { status: ok("keys listed successfully"), keys }))
    }
}

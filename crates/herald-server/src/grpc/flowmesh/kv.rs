//! `flowmesh.v1.KVService` (§3.5).

use super::{Ctx, no_fields, ok, principal, resolve};
use crate::auth::Permission;
use crate::grpc::status::to_status;
use crate::observe;
use herald_proto::flowmesh::v1 as pb;
use herald_types::ResourceKind;
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

#[tonic::async_trait]
impl KvService for KvSvc {
    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(
            &who,
            r.resource_path,
            || {
                key(&r.key)?;
                if r.value.is_empty() {
                    return Err(Status::invalid_argument("value cannot be empty"));
                }
                Ok(())
            },
            KV,
            Permission::KvWrite,
        )?;
        self.0.engine().kv.set(&path, &r.key, r.value, r.ttl_seconds).await.map_err(to_status)?;
        observe::kv_set(&self.0.state, &path, &r.key);
        Ok(Response::new(pb::SetResponse { status: ok("key-value pair set successfully") }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || key(&r.key), KV, Permission::KvRead)?;
        let value = self.0.engine().kv.get(&path, &r.key).await.map_err(to_status)?;
        Ok(Response::new(pb::GetResponse { status: ok("value retrieved successfully"), value }))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || key(&r.key), KV, Permission::KvWrite)?;
        self.0.engine().kv.delete(&path, &r.key).await.map_err(to_status)?;
        observe::kv_deleted(&self.0.state, &path, &r.key);
        Ok(Response::new(pb::DeleteResponse { status: ok("key deleted successfully") }))
    }

    async fn exists(&self, req: Request<pb::ExistsRequest>) -> Result<Response<pb::ExistsResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || key(&r.key), KV, Permission::KvRead)?;
        let exists = self.0.engine().kv.exists(&path, &r.key).await.map_err(to_status)?;
        Ok(Response::new(pb::ExistsResponse { status: ok("existence check completed"), exists }))
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, no_fields, KV, Permission::KvRead)?;
        let keys = self.0.engine().kv.list_keys(&path, &r.prefix).await.map_err(to_status)?;
        Ok(Response::new(pb::ListKeysResponse { status: ok("keys listed successfully"), keys }))
    }
}

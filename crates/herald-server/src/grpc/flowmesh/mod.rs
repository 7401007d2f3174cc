//! The FlowMesh gRPC contract (`flowmesh.v1`, compat/flowmesh.md §2–§4) as a thin adapter over the engine.
//!
//! Each handler checks the wire message's shape in the contract's order (§3.1: presence of `resource_path`, the
//! RPC's own fields, the path components, the resource type), authorizes the caller for the resource, calls the
//! engine, and encodes the answer with the contract's fixed success texts. Semantics live in the engine.

mod convert;
mod health;
mod kv;
mod queues;
mod replay;
mod schemas;
mod streams;

pub use health::HealthSvc;
pub use kv::KvSvc;
pub use queues::QueueSvc;
pub(crate) use queues::{long_poll, receive_until_shutdown};
pub use replay::ReplaySvc;
pub use schemas::SchemaSvc;
pub use streams::StreamSvc;

use crate::auth::{Permission, Principal};
use crate::grpc::status::to_status;
use crate::state::AppState;
use herald_proto::flowmesh::v1 as pb;
use herald_types::{ResourceKind, ResourcePath};
use tonic::{Request, Status};

/// `Status {0, message}` for a successful response.
pub(crate) fn ok(message: &str) -> Option<pb::Status> {
    Some(pb::Status { code: 0, message: message.to_owned(), details: String::new() })
}

/// Step 2 of §3.1: the `resource_path` message must be present.
pub(crate) fn required_path(rp: Option<pb::ResourcePath>) -> Result<pb::ResourcePath, Status> {
    rp.ok_or_else(|| Status::invalid_argument("resource_path is required"))
}

/// Steps 4 and 5 of §3.1: the components, then the resource type the service expects (`None`: any type).
pub(crate) fn parse_path(rp: &pb::ResourcePath, kind: Option<ResourceKind>) -> Result<ResourcePath, Status> {
    let path =
        ResourcePath::parse_components(&rp.tenant, &rp.namespace, &rp.resource_type, &rp.name).map_err(to_status)?;
    if let Some(kind) = kind {
        path.expect_kind(kind).map_err(to_status)?;
    }
    Ok(path)
}

/// The contract's prologue (§3.1 steps 2–5) followed by authorization: `resource_path` must be present, then the
/// RPC's own field checks run (`fields`, in the order the contract lists them), then the path components and the
/// resource type are validated, then the caller's scope is checked.
pub(crate) fn resolve(
    who: &Principal,
    rp: Option<pb::ResourcePath>,
    fields: impl FnOnce() -> Result<(), Status>,
    kind: Option<ResourceKind>,
    perm: Permission,
) -> Result<ResourcePath, Status> {
    let rp = required_path(rp)?;
    fields()?;
    let path = parse_path(&rp, kind)?;
    authorize(who, perm, &path)?;
    Ok(path)
}

/// For [`resolve`]: an RPC with no fields of its own to check.
pub(crate) fn no_fields() -> Result<(), Status> {
    Ok(())
}

/// The caller, as the auth interceptor recorded it.
pub(crate) fn principal<T>(req: &Request<T>) -> Principal {
    req.extensions().get::<Principal>().cloned().unwrap_or_else(Principal::anonymous)
}

pub(crate) fn authorize(p: &Principal, perm: Permission, path: &ResourcePath) -> Result<(), Status> {
    p.authorize(perm, path).map_err(to_status)
}

/// What every FlowMesh service holds.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub state: AppState,
}

impl Ctx {
    pub fn engine(&self) -> &herald_engine::Engine {
        &self.state.engine
    }
}

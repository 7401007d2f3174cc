//! Generated gRPC code. Nothing hand-written lives here except the module tree: conversions between these wire
//! types and the engine's types are the job of the front-end adapters in `herald-server`, which is the only crate
//! that knows the wire.

#![allow(clippy::all, clippy::pedantic, rust_2018_idioms)]

pub mod flowmesh {
    pub mod v1 {
        tonic::include_proto!("flowmesh.v1");
    }
}

/// EnSync's `ensync.EnSyncService` (compat/ensync.md §2).
pub mod ensync {
    tonic::include_proto!("ensync");
}

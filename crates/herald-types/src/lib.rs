//! Herald's shared vocabulary.
//!
//! Everything here is plain data and pure functions: the error type with stable codes that every front-end maps
//! exactly once ([`error`]), resource addressing and name validation ([`resource`]), generated ids ([`id`]) and the
//! injected clock ([`clock`]). This crate does no I/O and knows nothing about tokio, gRPC, HTTP or the disk.

pub mod clock;
pub mod error;
pub mod id;
pub mod resource;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorCode, HeraldError, Result};
pub use resource::{ResourceKind, ResourcePath};

//! The one error type of the crate.
//!
//! Small and matchable: the engine maps `Corrupt` to a data-loss status, `EmptyBatch`/`BatchTooLarge` to bad
//! requests and everything else to an internal/unavailable error. The variants say what went wrong with the log;
//! low-level detail (which decode check failed) travels in `reason` as text, because no caller acts on it.

use std::path::PathBuf;

use crate::codec::{EncodeError, MAX_FRAME_BYTES};

#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum LogError {
    #[error("log I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error("cannot append an empty batch")]
    EmptyBatch,

    #[error("batch encodes to {bytes} bytes, above the {limit}-byte frame limit")]
    BatchTooLarge { bytes: u64, limit: u64 },

    #[error("offsets exhausted: the log cannot grow past u64::MAX records")]
    OffsetOverflow,

    /// Stored data failed its checksum or structure checks. Returned by reads that reach damaged bytes in a sealed
    /// segment; recovery never returns it for the active segment, which it truncates instead.
    #[error("corrupt log data in {} at byte {position}: {reason}", path.display())]
    Corrupt { path: PathBuf, position: u64, reason: String },

    /// A file was written by a newer format version. The log refuses to open rather than risk "repairing" it.
    #[error("{} uses segment format version {version}, which this build cannot read", path.display())]
    UnsupportedVersion { path: PathBuf, version: u32 },

    #[error("invalid log options: {0}")]
    InvalidOptions(String),

    /// An earlier write or fsync failed in a way that leaves the in-memory state unsure of what is on disk (after
    /// a failed fsync the kernel may already have dropped the dirty pages). Appends and syncs fail from then on;
    /// reopening the log runs recovery, which establishes the truth from the files.
    #[error("log unusable after an earlier failure ({0}); reopen it to recover")]
    Poisoned(String),
}

impl From<EncodeError> for LogError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::Empty => LogError::EmptyBatch,
            EncodeError::TooLarge { bytes } => LogError::BatchTooLarge { bytes, limit: MAX_FRAME_BYTES as u64 },
            EncodeError::OffsetOverflow { .. } => LogError::OffsetOverflow,
        }
    }
}

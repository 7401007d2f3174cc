//! When acknowledged writes reach the disk.
//!
//! The fsync policy applies to both stores (the segmented logs and fjall):
//! - `always`: a write is acknowledged only after an fsync that covers it. Concurrent writers share fsyncs (group
//!   commit), so throughput grows with concurrency instead of being one fsync per request.
//! - `interval:<ms>` (default, 50 ms): writes are acknowledged once they are in the OS page cache; a background task
//!   fsyncs every interval. A process crash loses nothing (the page cache survives it); a power loss or kernel crash
//!   can lose up to one interval of acknowledged writes.
//! - `never`: Herald never fsyncs; the OS writes back when it likes. Only for throwaway data.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    Interval(Duration),
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_millis(50))
    }
}

impl FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            "interval" => Ok(FsyncPolicy::default()),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.trim().trim_end_matches("ms").parse::<u64>().ok())
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        format!("invalid fsync policy {s:?}: use always, never or interval:<ms> (ms > 0)")
                    })?;
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

/// Group commit for a store whose fsync covers everything written before it started.
///
/// Writers take a ticket after their write is in the store's buffer; `sync_to(ticket)` returns once an fsync that
/// started after that point has finished. Only one fsync runs at a time; writers that queue behind it usually find
/// their ticket covered when they get the lock, and return without an fsync of their own.
#[derive(Debug, Default)]
pub struct GroupSync {
    written: AtomicU64,
    synced: AtomicU64,
    lock: parking_lot::Mutex<()>,
}

impl GroupSync {
    /// Call after the write is in the store's buffer.
    pub fn ticket(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn is_dirty(&self) -> bool {
        self.synced.load(Ordering::SeqCst) < self.written.load(Ordering::SeqCst)
    }

    /// Blocks until `ticket` is durable, running `fsync` if no finished fsync covers it.
    pub fn sync_to<E>(&self, ticket: u64, fsync: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        if self.synced.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let _guard = self.lock.lock();
        if self.synced.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let target = self.written.load(Ordering::SeqCst);
        fsync()?;
        self.synced.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn sync_all<E>(&self, fsync: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let ticket = self.written.load(Ordering::SeqCst);
        self.sync_to(ticket, fsync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies() {
        assert_eq!("always".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Always);
        assert_eq!("never".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Never);
        assert_eq!("interval:200".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Interval(Duration::from_millis(200)));
        assert_eq!("interval".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::default());
        assert!("interval:0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
        assert_eq!(FsyncPolicy::Interval(Duration::from_millis(7)).to_string(), "interval:7");
    }

    #[test]
    fn covered_tickets_skip_the_fsync() {
        let g = GroupSync::default();
        let t1 = g.ticket();
        let t2 = g.ticket();
        let mut calls = 0;
        g.sync_to::<()>(t1, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        // The fsync for t1 started after t2 was written, so it covers t2 too.
        g.sync_to::<()>(t2, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 1);
        assert!(!g.is_dirty());
    }
}

//! Time is injected.
//!
//! Visibility timeouts, TTLs, backoffs and retention all read the time through [`Clock`], so tests can move time
//! forward with a [`ManualClock`] instead of sleeping. Times are Unix epoch nanoseconds (`i64`), the unit of the
//! FlowMesh wire contract.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

pub trait Clock: Send + Sync + 'static {
    /// Now, in Unix nanoseconds.
    fn now_ns(&self) -> i64;
}

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ns: i64) -> Self {
        ManualClock(AtomicI64::new(start_ns))
    }
    pub fn advance_ns(&self, ns: i64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
    pub fn advance_secs(&self, secs: i64) {
        self.advance_ns(secs * NANOS_PER_SEC);
    }
    pub fn set_ns(&self, ns: i64) {
        self.0.store(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

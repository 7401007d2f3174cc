//! Rate limits (contract §2.1): fixed one-minute windows per (route, client IP), counted only for requests that got
//! past authentication and validation. Also the per-user caps on WebSockets and poll waiters.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Routes with a limit, and their budget per minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limited {
    Login,
    Refresh,
    DeviceCode,
    DeviceToken,
    DevicePage,
    Publish,
    Bulk,
}

impl Limited {
    pub fn per_minute(self) -> u32 {
        match self {
            Limited::Login => 5,
            Limited::Refresh => 10,
            Limited::DeviceCode => 10,
            Limited::DeviceToken => 30,
            Limited::DevicePage => 20,
            Limited::Publish => 120,
            Limited::Bulk => 30,
        }
    }
}

const WINDOW: Duration = Duration::from_secs(60);

pub struct RateLimiter {
    enabled: bool,
    windows: Mutex<HashMap<(Limited, IpAddr), (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(enabled: bool) -> Self {
        RateLimiter { enabled, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one request; `Err(limit)` when the window's budget is spent.
    pub fn hit(&self, route: Limited, ip: IpAddr) -> Result<(), u32> {
        if !self.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let limit = route.per_minute();
        let mut w = self.windows.lock();
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = w.entry((route, ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return Err(limit);
        }
        entry.1 += 1;
        Ok(())
    }
}

/// Counts things per user up to a cap (open WebSockets, waiting polls). `acquire` returns a guard that gives the
/// slot back when dropped.
pub struct PerUser {
    counts: Mutex<HashMap<String, usize>>,
}

impl PerUser {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(PerUser { counts: Mutex::new(HashMap::new()) })
    }

    pub fn acquire(self: &std::sync::Arc<Self>, user: &str, cap: usize) -> Option<Slot> {
        let mut c = self.counts.lock();
        let n = c.entry(user.to_string()).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot { owner: std::sync::Arc::clone(self), user: user.to_string() })
    }

    pub fn total(&self) -> usize {
        self.counts.lock().values().sum()
    }
}

pub struct Slot {
    owner: std::sync::Arc<PerUser>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock();
        if let Some(n) = c.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_route_and_ip() {
        let r = RateLimiter::new(true);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            r.hit(Limited::Login, ip).unwrap();
        }
        assert_eq!(r.hit(Limited::Login, ip), Err(5));
        r.hit(Limited::Refresh, ip).unwrap();
        r.hit(Limited::Login, "10.0.0.1".parse().unwrap()).unwrap();
        assert!(RateLimiter::new(false).hit(Limited::Login, ip).is_ok());
    }

    #[test]
    fn slots_are_returned_on_drop() {
        let p = PerUser::new();
        let a = p.acquire("u", 2).unwrap();
        let _b = p.acquire("u", 2).unwrap();
        assert!(p.acquire("u", 2).is_none());
        drop(a);
        assert!(p.acquire("u", 2).is_some());
        assert_eq!(p.total(), 1);
    }
}

//! Idempotency keys for the publish endpoints (contract §1.7, §4.4).
//!
//! A key (user, key) is claimed with an in-flight marker for 600 s; the response body then replaces the marker with
//! a fresh 600 s window. Records are in fjall, so a replay after a restart still gets the stored body, and a marker
//! left by a crash expires like the real server's. Claims and completions are check-and-set under one lock.
//! Waiters for an in-flight claim are woken by a `Notify` on every completion or abandonment and re-read the record.

use super::api::{IdemClaim, IdemEndpoint, Micros};
use super::records::{ExpiryKind, IdemRecord, expiry_key, pair_key};
use crate::store::{SharedStore, fjall_err};
use bytes::Bytes;
use fjall::OwnedWriteBatch;
use herald_types::{Clock, HeraldError, Result};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The claim and result window.
pub(crate) const IDEM_WINDOW: Micros = 600_000_000;

pub(crate) struct Idem {
    store: SharedStore,
    clock: Arc<dyn Clock>,
    lock: Mutex<()>,
    changed: Notify,
}

impl Idem {
    pub fn new(store: SharedStore, clock: Arc<dyn Clock>) -> Self {
        Idem { store, clock, lock: Mutex::new(()), changed: Notify::new() }
    }

    fn now(&self) -> Micros {
        self.clock.now_ns().div_euclid(1000)
    }

    fn get(&self, key: &[u8]) -> Result<Option<IdemRecord>> {
        let v = self.store.relay.idem.get(key).map_err(fjall_err("reading an idempotency key"))?;
        match v {
            None => Ok(None),
            Some(v) => {
                IdemRecord::decode(&v).map(Some).ok_or_else(|| HeraldError::internal("corrupt idempotency record"))
            }
        }
    }

    /// Replaces (`old` → `new`) the record at `key` and its expiry entry.
    fn put(&self, batch: &mut OwnedWriteBatch, key: &[u8], old: Option<&IdemRecord>, new: Option<&IdemRecord>) {
        let ks = &self.store.relay;
        if let Some(old) = old {
            batch.remove(&ks.expiry, expiry_key(ExpiryKind::Idem, old.expires_at, key));
        }
        match new {
            Some(new) => {
                batch.insert(&ks.idem, key, new.encode());
                batch.insert(&ks.expiry, expiry_key(ExpiryKind::Idem, new.expires_at, key), []);
            }
            None => batch.remove(&ks.idem, key),
        }
    }

    pub async fn claim(&self, user_id: &str, key: &str, endpoint: IdemEndpoint) -> Result<IdemClaim> {
        super::records::check_key_part("user id", user_id)?;
        let k = pair_key(user_id, key);
        let ticket = {
            let _guard = self.lock.lock();
            let now = self.now();
            let old = self.get(&k)?;
            match &old {
                Some(r) if r.expires_at > now => {
                    return Ok(match &r.body {
                        Some(body) => IdemClaim::Done { endpoint: r.endpoint, body: body.clone() },
                        None => IdemClaim::InFlight { endpoint: r.endpoint },
                    });
                }
                _ => {}
            }
            let new = IdemRecord { endpoint, expires_at: now.saturating_add(IDEM_WINDOW), body: None };
            let mut batch = self.store.batch();
            self.put(&mut batch, &k, old.as_ref(), Some(&new));
            self.store.commit(batch)?
        };
        self.store.durable(ticket).await?;
        Ok(IdemClaim::Claimed)
    }

    /// Stores the response. A claim that has vanished altogether (reaped after its window) is not recreated: its
    /// endpoint is unknown, and a retry that late is outside the window anyway.
    pub async fn complete(&self, user_id: &str, key: &str, body: Bytes) -> Result<()> {
        let k = pair_key(user_id, key);
        let ticket = {
            let _guard = self.lock.lock();
            let Some(old) = self.get(&k)? else { return Ok(()) };
            let new = IdemRecord {
                endpoint: old.endpoint,
                expires_at: self.now().saturating_add(IDEM_WINDOW),
                body: Some(body),
            };
            let mut batch = self.store.batch();
            self.put(&mut batch, &k, Some(&old), Some(&new));
            self.store.commit(batch)?
        };
        self.changed.notify_waiters();
        self.store.durable(ticket).await
    }

    /// Drops an in-flight claim (a stored response is kept).
    pub async fn abandon(&self, user_id: &str, key: &str) -> Result<()> {
        let k = pair_key(user_id, key);
        let ticket = {
            let _guard = self.lock.lock();
            let Some(old) = self.get(&k)? else { return Ok(()) };
            if old.body.is_some() {
                return Ok(());
            }
            let mut batch = self.store.batch();
            self.put(&mut batch, &k, Some(&old), None);
            self.store.commit(batch)?
        };
        self.changed.notify_waiters();
        self.store.durable(ticket).await
    }

    pub async fn wait(&self, user_id: &str, key: &str, timeout: Duration) -> Result<Option<Bytes>> {
        let k = pair_key(user_id, key);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before reading, so a completion between the read and the wait still wakes us.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.get(&k)? {
                Some(IdemRecord { body: Some(body), expires_at, .. }) if expires_at > self.now() => {
                    return Ok(Some(body));
                }
                Some(IdemRecord { body: None, expires_at, .. }) if expires_at > self.now() => {}
                _ => return Ok(None),
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Removes records past their window. Returns how many.
    pub fn reap(&self) -> Result<usize> {
        let ks = &self.store.relay;
        let _guard = self.lock.lock();
        let now = self.now();
        super::reap_due(&self.store, ExpiryKind::Idem, now, "reaping idempotency keys", |batch, key| {
            let due = self.get(key)?.is_some_and(|r| r.expires_at <= now);
            if due {
                batch.remove(&ks.idem, key);
            }
            Ok(due)
        })
    }
}

//! Refresh tokens (contract §1.2, Appendix A) and the access-token deny-list.
//!
//! Rotation is a compare-and-set: every refresh-token change runs its check and commits its batch under one lock,
//! so of two concurrent rotations of one token exactly one sees it valid; the other sees it revoked and revokes the
//! chain. A chain is the connected component of `parent_jti` links: walk up to the root, then down through the
//! `relay_refresh_children` index.
//!
//! Deny-list entries and refresh tokens carry an entry in `relay_expiry`, which the reaper uses to reclaim them.
//! Expired deny-list entries are ignored by reads before they are reclaimed.

use super::api::{Micros, RefreshRecord, Rotation};
use super::records::{
    ExpiryKind, RefreshRecordJson, check_key_part, expiry_key, from_json, pair_key, pair_prefix, pair_second, to_json,
};
use crate::store::{SharedStore, fjall_err, read_i64};
use fjall::OwnedWriteBatch;
use herald_types::{HeraldError, Result};
use parking_lot::Mutex;
use std::collections::HashSet;

/// Refresh-token records are kept this long after they expire (the real server's Valkey TTL adds one hour).
const REFRESH_GRACE: Micros = 3_600_000_000;

pub(crate) struct Tokens {
    store: SharedStore,
    refresh_lock: Mutex<()>,
    deny_lock: Mutex<()>,
}

/// Compares two secret hashes in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    pub fn new(store: SharedStore) -> Self {
        Tokens { store, refresh_lock: Mutex::new(()), deny_lock: Mutex::new(()) }
    }

    pub fn get(&self, jti: &str) -> Result<Option<RefreshRecord>> {
        let v = self.store.relay.refresh.get(jti).map_err(fjall_err("reading a refresh token"))?;
        v.map(|v| from_json::<RefreshRecordJson>("refresh token", &v).map(RefreshRecord::from)).transpose()
    }

    fn write(&self, batch: &mut OwnedWriteBatch, r: &RefreshRecord) {
        batch.insert(&self.store.relay.refresh, r.jti.as_bytes(), to_json(&RefreshRecordJson::from(r)));
    }

    /// Writes a new token with its indexes.
    fn insert_new(&self, batch: &mut OwnedWriteBatch, r: &RefreshRecord) {
        let ks = &self.store.relay;
        self.write(batch, r);
        batch.insert(&ks.refresh_by_user, pair_key(&r.user_id, &r.jti), []);
        if let Some(parent) = &r.parent_jti {
            batch.insert(&ks.refresh_children, pair_key(parent, &r.jti), []);
        }
        let reclaim_at = r.expires_at.saturating_add(REFRESH_GRACE);
        batch.insert(&ks.expiry, expiry_key(ExpiryKind::Refresh, reclaim_at, r.jti.as_bytes()), []);
    }

    pub async fn put(&self, record: RefreshRecord) -> Result<()> {
        check_key_part("jti", &record.jti)?;
        check_key_part("user id", &record.user_id)?;
        let ticket = {
            let _guard = self.refresh_lock.lock();
            if self.get(&record.jti)?.is_some() {
                return Err(HeraldError::already_exists(format!("refresh token {} already exists", record.jti)));
            }
            let mut batch = self.store.batch();
            self.insert_new(&mut batch, &record);
            self.store.commit(batch)?
        };
        self.store.durable(ticket).await
    }

    /// Every token connected to `start` by `parent_jti` links (including `start`).
    fn chain(&self, start: RefreshRecord) -> Result<Vec<RefreshRecord>> {
        let mut seen = HashSet::from([start.jti.clone()]);
        let mut root = start;
        while let Some(parent) = root.parent_jti.clone() {
            // A parent reclaimed after expiry ends the walk up, as in the real server.
            match self.get(&parent)? {
                Some(p) if seen.insert(p.jti.clone()) => root = p,
                _ => break,
            }
        }
        let mut out = Vec::new();
        let mut todo = vec![root];
        seen.clear();
        while let Some(r) = todo.pop() {
            if !seen.insert(r.jti.clone()) {
                continue;
            }
            for item in self.store.relay.refresh_children.prefix(pair_prefix(&r.jti)) {
                let k = item.key().map_err(fjall_err("walking a refresh-token chain"))?;
                if let Some(child) = pair_second(&k).map(str::to_owned)
                    && let Some(c) = self.get(&child)?
                {
                    todo.push(c);
                }
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Marks every still-valid token of `records` revoked with `reason`.
    fn revoke_all(&self, batch: &mut OwnedWriteBatch, records: Vec<RefreshRecord>, reason: &str) {
        for mut r in records {
            if r.revoked.is_none() {
                r.revoked = Some(reason.to_owned());
                self.write(batch, &r);
            }
        }
    }

    pub async fn rotate(
        &self,
        jti: &str,
        secret_hash: &str,
        new_jti: String,
        new_secret_hash: String,
        ttl: Micros,
        now: Micros,
    ) -> Result<Rotation> {
        check_key_part("jti", &new_jti)?;
        let (outcome, ticket) = {
            let _guard = self.refresh_lock.lock();
            let Some(mut presented) = self.get(jti)? else { return Ok(Rotation::Unknown) };
            if !same_secret(&presented.secret_hash, secret_hash) {
                return Ok(Rotation::Unknown);
            }
            let mut batch = self.store.batch();
            let outcome = if presented.revoked.is_some() {
                let chain = self.chain(presented)?;
                self.revoke_all(&mut batch, chain, "replay");
                Rotation::Replayed
            } else if presented.expires_at <= now {
                presented.revoked = Some("expired".to_owned());
                self.write(&mut batch, &presented);
                Rotation::Expired
            } else {
                if self.get(&new_jti)?.is_some() {
                    return Err(HeraldError::already_exists(format!("refresh token {new_jti} already exists")));
                }
                let successor = RefreshRecord {
                    jti: new_jti,
                    user_id: presented.user_id.clone(),
                    secret_hash: new_secret_hash,
                    parent_jti: Some(presented.jti.clone()),
                    issued_at: now,
                    expires_at: now.saturating_add(ttl),
                    last_used_at: None,
                    revoked: None,
                    client_hint: presented.client_hint.clone(),
                };
                presented.revoked = Some("rotated".to_owned());
                presented.last_used_at = Some(now);
                self.write(&mut batch, &presented);
                self.insert_new(&mut batch, &successor);
                Rotation::Rotated(successor)
            };
            (outcome, self.store.commit(batch)?)
        };
        self.store.durable(ticket).await?;
        Ok(outcome)
    }

    pub async fn revoke(&self, jti: &str, reason: &str, chain: bool) -> Result<()> {
        let ticket = {
            let _guard = self.refresh_lock.lock();
            let Some(record) = self.get(jti)? else { return Ok(()) };
            let targets = if chain { self.chain(record)? } else { vec![record] };
            let mut batch = self.store.batch();
            self.revoke_all(&mut batch, targets, reason);
            if batch.is_empty() {
                return Ok(());
            }
            self.store.commit(batch)?
        };
        self.store.durable(ticket).await
    }

    /// The user's tokens that are neither revoked nor expired, oldest first.
    pub fn sessions(&self, user_id: &str, now: Micros) -> Result<Vec<RefreshRecord>> {
        let mut out = Vec::new();
        for item in self.store.relay.refresh_by_user.prefix(pair_prefix(user_id)) {
            let k = item.key().map_err(fjall_err("listing refresh tokens"))?;
            let Some(jti) = pair_second(&k) else { continue };
            if let Some(r) = self.get(jti)?
                && r.revoked.is_none()
                && r.expires_at > now
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.issued_at.cmp(&b.issued_at).then_with(|| a.jti.cmp(&b.jti)));
        Ok(out)
    }

    // ------------------------------------------------------------ deny-list

    pub async fn deny(&self, jti: &str, until: Micros) -> Result<()> {
        let ks = &self.store.relay;
        let ticket = {
            let _guard = self.deny_lock.lock();
            let mut batch = self.store.batch();
            let old = ks.deny.get(jti).map_err(fjall_err("reading the deny-list"))?.and_then(|v| read_i64(&v));
            let until = old.map_or(until, |old| old.max(until));
            if let Some(old) = old {
                batch.remove(&ks.expiry, expiry_key(ExpiryKind::Deny, old, jti.as_bytes()));
            }
            batch.insert(&ks.deny, jti.as_bytes(), until.to_be_bytes());
            batch.insert(&ks.expiry, expiry_key(ExpiryKind::Deny, until, jti.as_bytes()), []);
            self.store.commit(batch)?
        };
        self.store.durable(ticket).await
    }

    pub fn is_denied(&self, jti: &str, now: Micros) -> Result<bool> {
        let v = self.store.relay.deny.get(jti).map_err(fjall_err("reading the deny-list"))?;
        Ok(v.and_then(|v| read_i64(&v)).is_some_and(|until| until > now))
    }

    // ------------------------------------------------------------ reclaiming

    /// Removes deny-list entries past their time and refresh tokens an hour past their expiry. Returns how many.
    pub fn reap(&self, now: Micros) -> Result<usize> {
        let ks = &self.store.relay;
        let denied = {
            let _guard = self.deny_lock.lock();
            super::reap_due(&self.store, ExpiryKind::Deny, now, "reaping the deny-list", |batch, jti| {
                let until = ks.deny.get(jti).map_err(fjall_err("reaping the deny-list"))?.and_then(|v| read_i64(&v));
                let due = until.is_some_and(|u| u <= now);
                if due {
                    batch.remove(&ks.deny, jti);
                }
                Ok(due)
            })?
        };
        let _guard = self.refresh_lock.lock();
        let refreshed =
            super::reap_due(&self.store, ExpiryKind::Refresh, now, "reaping refresh tokens", |batch, key| {
                let Some(jti) = std::str::from_utf8(key).ok() else { return Ok(false) };
                let Some(r) = self.get(jti)?.filter(|r| r.expires_at.saturating_add(REFRESH_GRACE) <= now) else {
                    return Ok(false);
                };
                batch.remove(&ks.refresh, jti.as_bytes());
                batch.remove(&ks.refresh_by_user, pair_key(&r.user_id, jti));
                if let Some(parent) = &r.parent_jti {
                    batch.remove(&ks.refresh_children, pair_key(parent, jti));
                }
                for child in ks.refresh_children.prefix(pair_prefix(jti)) {
                    let ck = child.key().map_err(fjall_err("reaping refresh tokens"))?;
                    batch.remove(&ks.refresh_children, ck.to_vec());
                }
                Ok(true)
            })?;
        Ok(denied + refreshed)
    }
}

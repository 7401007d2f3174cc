//! Key-value stores with TTL (compat/flowmesh.md §1.6, §3.5, decision D9).
//!
//! Entries live in fjall under `rid | key`, the value prefixed by its expiry time (0 = never). A second keyspace,
//! `kv_ttl`, indexes entries by expiry so the reaper finds expired keys in time order without a scan. Expiry is
//! checked on every read, so an expired key is invisible to `get`, `exists` and `list_keys` the moment it expires,
//! whatever the reaper has done (D9); the reaper only reclaims space. `set` replaces value *and* expiry (D9).

use crate::api::{Kv, KvEntryInfo};
use crate::resources::Registry;
use crate::store::{SharedStore, fjall_err, key2, read_i64, read_u64};
use async_trait::async_trait;
use bytes::Bytes;
use herald_types::clock::NANOS_PER_SEC;
use herald_types::{Clock, HeraldError, ResourceKind, ResourcePath, Result};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const MAX_TTL_SECS: i64 = 31_536_000;

pub(crate) struct EmbeddedKv {
    registry: Arc<Registry>,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    /// Serialises writers per process so the TTL index and the entry stay in step (read-modify-write of the expiry).
    /// It is an async lock: a writer that finds it taken yields its worker to other tasks instead of spinning while
    /// the holder's commit writes the journal (on two cores the spinning cost more than the wait), and the holder
    /// wakes it when done. It guards the set of stores (by rid) that have, or may have, entries in the TTL index: a
    /// `set` in any other store cannot be replacing an entry with an expiry, so it skips reading the old entry.
    /// Rebuilt from `kv_ttl` at open.
    writer: tokio::sync::Mutex<HashSet<u64>>,
}

/// How many due entries of the TTL index the reaper handles per commit (and per hold of the write lock).
const REAP_CHUNK: usize = 1024;

fn ttl_key(expires_at: i64, entry_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + entry_key.len());
    k.extend_from_slice(&expires_at.to_be_bytes());
    k.extend_from_slice(entry_key);
    k
}

impl EmbeddedKv {
    pub fn open(registry: Arc<Registry>, store: SharedStore, clock: Arc<dyn Clock>) -> Result<Self> {
        let mut ttl_stores = HashSet::new();
        for item in store.kv_ttl.iter() {
            let k = item.key().map_err(fjall_err("loading the TTL index"))?;
            if let Some(rid) = k.get(8..16).and_then(crate::store::read_u64) {
                ttl_stores.insert(rid);
            }
        }
        Ok(EmbeddedKv { registry, store, clock, writer: tokio::sync::Mutex::new(ttl_stores) })
    }

    fn rid(&self, store: &ResourcePath) -> Result<u64> {
        store.expect_kind(ResourceKind::Kv)?;
        Ok(self.registry.require(store)?.rid)
    }

    /// The stored (expires_at, value) of an entry, if present.
    fn load(&self, entry_key: &[u8]) -> Result<Option<(i64, fjall::Slice)>> {
        let v = self.store.kv.get(entry_key).map_err(fjall_err("reading key"))?;
        Ok(v.and_then(|v| read_i64(&v).map(|exp| (exp, v))))
    }

    fn is_expired(&self, expires_at: i64) -> bool {
        expires_at != 0 && expires_at <= self.clock.now_ns()
    }

    /// Reclaims every entry whose TTL has passed and returns them as (store, key), once the removal is committed.
    /// Due entries are handled in chunks; each chunk is checked and committed under the write lock, so a `set` that
    /// gives a key a new value and expiry cannot land between the check and the commit and then be deleted.
    pub async fn reap(&self) -> Result<Vec<(ResourcePath, String)>> {
        let now = self.clock.now_ns();
        let mut removed = Vec::new();
        // rid → store path, built only when something expired (most runs find nothing).
        let mut paths: Option<HashMap<u64, ResourcePath>> = None;
        loop {
            let due = self
                .store
                .kv_ttl
                .range(0i64.to_be_bytes()..=now.to_be_bytes())
                .take(REAP_CHUNK)
                .map(|item| item.key().map_err(fjall_err("reaping keys")))
                .collect::<Result<Vec<_>>>()?;
            if due.is_empty() {
                break;
            }
            let _writer = self.writer.lock().await;
            let mut batch = self.store.batch();
            for k in &due {
                let Some(expires_at) = read_i64(k) else { continue };
                let entry_key = &k[8..];
                // Only delete the entry if it still has this expiry (it may have been overwritten since).
                if let Some((exp, _)) = self.load(entry_key)?
                    && exp == expires_at
                {
                    batch.remove(&self.store.kv, entry_key.to_vec());
                    let paths = paths.get_or_insert_with(|| {
                        self.registry.all(ResourceKind::Kv).iter().map(|r| (r.rid, r.path.clone())).collect()
                    });
                    if let Some(rid) = read_u64(entry_key)
                        && let Some(path) = paths.get(&rid)
                    {
                        removed.push((path.clone(), String::from_utf8_lossy(&entry_key[8..]).into_owned()));
                    }
                }
                batch.remove(&self.store.kv_ttl, k.to_vec());
            }
            self.store.commit(batch)?;
            if due.len() < REAP_CHUNK {
                break;
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl Kv for EmbeddedKv {
    async fn set(&self, store: &ResourcePath, key: &str, value: Bytes, ttl_seconds: i64) -> Result<()> {
        if key.is_empty() {
            return Err(HeraldError::invalid("key cannot be empty"));
        }
        if value.is_empty() {
            return Err(HeraldError::invalid("value cannot be empty"));
        }
        store.expect_kind(ResourceKind::Kv)?;
        if ttl_seconds > MAX_TTL_SECS {
            return Err(HeraldError::invalid("ttl_seconds cannot exceed 31536000 (1 year)"));
        }
        let rid = self.registry.require_or_create(store)?.rid;
        let entry_key = key2(rid, key.as_bytes());
        let expires_at = if ttl_seconds > 0 { self.clock.now_ns() + ttl_seconds * NANOS_PER_SEC } else { 0 };
        let mut stored = Vec::with_capacity(8 + value.len());
        stored.extend_from_slice(&expires_at.to_be_bytes());
        stored.extend_from_slice(&value);
        let ticket = {
            let mut ttl_stores = self.writer.lock().await;
            let mut batch = self.store.batch();
            if expires_at != 0 {
                ttl_stores.insert(rid);
            }
            // Only a store that uses TTLs can have an old expiry to unindex; elsewhere the read is skipped.
            if ttl_stores.contains(&rid)
                && let Some((old_exp, _)) = self.load(&entry_key)?
                && old_exp != 0
                && old_exp != expires_at
            {
                batch.remove(&self.store.kv_ttl, ttl_key(old_exp, &entry_key));
            }
            if expires_at != 0 {
                batch.insert(&self.store.kv_ttl, ttl_key(expires_at, &entry_key), Vec::new());
            }
            batch.insert(&self.store.kv, entry_key, stored);
            // Flushed to the OS in `durable`, together with other connections' writes (see `Store::durable`).
            self.store.commit_grouped(batch)?
        };
        self.store.durable(ticket).await
    }

    async fn get(&self, store: &ResourcePath, key: &str) -> Result<Bytes> {
        let rid = self.rid(store)?;
        let entry_key = key2(rid, key.as_bytes());
        match self.load(&entry_key)? {
            None => Err(HeraldError::not_found(format!("key {key} not found in KV store {store}"))),
            Some((exp, _)) if self.is_expired(exp) => {
                Err(HeraldError::not_found(format!("key {key} in KV store {store} has expired")))
            }
            Some((_, v)) => Ok(Bytes::copy_from_slice(&v[8..])),
        }
    }

    async fn delete(&self, store: &ResourcePath, key: &str) -> Result<()> {
        let rid = self.rid(store)?;
        let entry_key = key2(rid, key.as_bytes());
        let ticket = {
            let _writer = self.writer.lock().await;
            let Some((exp, _)) = self.load(&entry_key)? else { return Ok(()) };
            let mut batch = self.store.batch();
            if exp != 0 {
                batch.remove(&self.store.kv_ttl, ttl_key(exp, &entry_key));
            }
            batch.remove(&self.store.kv, entry_key);
            self.store.commit_grouped(batch)?
        };
        self.store.durable(ticket).await
    }

    async fn exists(&self, store: &ResourcePath, key: &str) -> Result<bool> {
        let rid = self.rid(store)?;
        Ok(self.load(&key2(rid, key.as_bytes()))?.is_some_and(|(exp, _)| !self.is_expired(exp)))
    }

    async fn list_keys(&self, store: &ResourcePath, prefix: &str) -> Result<Vec<String>> {
        let rid = self.rid(store)?;
        let now = self.clock.now_ns();
        let mut keys = Vec::new();
        for item in self.store.kv.prefix(key2(rid, prefix.as_bytes())) {
            let (k, v) = item.into_inner().map_err(fjall_err("listing keys"))?;
            let exp = read_i64(&v).unwrap_or(0);
            if exp != 0 && exp <= now {
                continue;
            }
            keys.push(String::from_utf8_lossy(&k[8..]).into_owned());
        }
        Ok(keys)
    }

    async fn list_entries(&self, store: &ResourcePath, prefix: &str, limit: usize) -> Result<Vec<KvEntryInfo>> {
        let rid = self.rid(store)?;
        let now = self.clock.now_ns();
        let mut entries = Vec::new();
        for item in self.store.kv.prefix(key2(rid, prefix.as_bytes())) {
            if entries.len() >= limit {
                break;
            }
            // The value is only measured: fjall hands out a shared slice, nothing is copied out of it.
            let (k, v) = item.into_inner().map_err(fjall_err("listing entries"))?;
            let exp = read_i64(&v).unwrap_or(0);
            if exp != 0 && exp <= now {
                continue;
            }
            entries.push(KvEntryInfo {
                key: String::from_utf8_lossy(&k[8..]).into_owned(),
                size: v.len().saturating_sub(8) as u64,
                expires_at: (exp != 0).then_some(exp),
            });
        }
        Ok(entries)
    }
}

//! Relay topic records (contract §1.3), keyed by (owner, name) in fjall.
//!
//! A topic record is only metadata: its history lives under a separate, permanent stream id (see `messages`), which
//! is why deleting a record and creating it again shows the old messages (§1.6). Check-and-insert runs under one
//! lock, which makes creation atomic per (owner, name); the lock also keeps the in-memory topic count exact.
//!
//! Every publish looks its topic up, so records are cached in memory, written through under the same lock (a miss
//! fills the cache under it too, so a fill never restores a record a concurrent change has just replaced).

use super::api::{Micros, RelayTopic};
use super::records::{TopicRecord, check_key_part, from_json, pair_key, pair_prefix, to_json};
use crate::store::{SharedStore, fjall_err};
use herald_types::{HeraldError, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;

/// Topic records kept in memory at most; past this the cache starts over (a miss costs one fjall read).
const CACHE_MAX: usize = 10_000;

pub(crate) struct Topics {
    store: SharedStore,
    /// Guards check-and-set on `relay_topics`, `count` and writes to `cache`.
    lock: Mutex<u64>,
    /// `pair_key(owner, name)` → record, for topics that exist.
    cache: RwLock<HashMap<Vec<u8>, RelayTopic>>,
}

fn not_found(name: &str) -> HeraldError {
    HeraldError::not_found(format!("Topic '{name}' not found"))
}

impl Topics {
    pub fn open(store: SharedStore) -> Result<Self> {
        let count = store.relay.topics.len().map_err(fjall_err("counting relay topics"))? as u64;
        Ok(Topics { store, lock: Mutex::new(count), cache: RwLock::new(HashMap::new()) })
    }

    pub fn get(&self, owner_id: &str, name: &str) -> Result<Option<RelayTopic>> {
        let key = pair_key(owner_id, name);
        if let Some(t) = self.cache.read().get(&key) {
            return Ok(Some(t.clone()));
        }
        let _guard = self.lock.lock();
        let topic = self.load(&key)?;
        if let Some(t) = &topic {
            self.cache_put(key, t);
        }
        Ok(topic)
    }

    /// The stored record, bypassing the cache.
    fn load(&self, key: &[u8]) -> Result<Option<RelayTopic>> {
        let v = self.store.relay.topics.get(key).map_err(fjall_err("reading a relay topic"))?;
        v.map(|v| from_json::<TopicRecord>("topic", &v).map(RelayTopic::from)).transpose()
    }

    /// Records `topic` as current in the cache. Call with `lock` held.
    fn cache_put(&self, key: Vec<u8>, topic: &RelayTopic) {
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_MAX && !cache.contains_key(&key) {
            cache.clear();
        }
        cache.insert(key, topic.clone());
    }

    /// Creates the topic; with `existing_ok`, returns the existing record instead of failing.
    pub async fn create(
        &self,
        owner_id: &str,
        name: &str,
        description: Option<String>,
        existing_ok: bool,
        now: Micros,
    ) -> Result<RelayTopic> {
        check_key_part("owner id", owner_id)?;
        let key = pair_key(owner_id, name);
        let (topic, ticket) = {
            let mut count = self.lock.lock();
            if let Some(existing) = self.load(&key)? {
                if existing_ok {
                    return Ok(existing);
                }
                return Err(HeraldError::already_exists(format!("Topic '{name}' already exists for owner {owner_id}")));
            }
            let topic = RelayTopic {
                topic_id: super::uuid_v4(),
                topic_name: name.to_owned(),
                owner_id: owner_id.to_owned(),
                created_at: now,
                description,
            };
            let mut batch = self.store.batch();
            batch.insert(&self.store.relay.topics, key.as_slice(), to_json(&TopicRecord::from(&topic)));
            let ticket = self.store.commit(batch)?;
            self.cache_put(key, &topic);
            *count += 1;
            (topic, ticket)
        };
        self.store.durable(ticket).await?;
        Ok(topic)
    }

    /// The owner's topics sorted by name (keys sort by name bytes, which for UTF-8 is code-point order).
    pub fn list(&self, owner_id: &str) -> Result<Vec<RelayTopic>> {
        let mut out = Vec::new();
        for item in self.store.relay.topics.prefix(pair_prefix(owner_id)) {
            let (_, v) = item.into_inner().map_err(fjall_err("listing relay topics"))?;
            out.push(RelayTopic::from(from_json::<TopicRecord>("topic", &v)?));
        }
        Ok(out)
    }

    /// Every owner's topics, sorted by (owner id, name): the keys' order.
    pub fn all(&self) -> Result<Vec<RelayTopic>> {
        let mut out = Vec::new();
        for item in self.store.relay.topics.iter() {
            let (_, v) = item.into_inner().map_err(fjall_err("listing relay topics"))?;
            out.push(RelayTopic::from(from_json::<TopicRecord>("topic", &v)?));
        }
        Ok(out)
    }

    pub fn count(&self) -> u64 {
        *self.lock.lock()
    }

    pub async fn update(&self, owner_id: &str, name: &str, description: Option<String>) -> Result<RelayTopic> {
        let (topic, ticket) = {
            let _guard = self.lock.lock();
            let key = pair_key(owner_id, name);
            let mut topic = self.load(&key)?.ok_or_else(|| not_found(name))?;
            let Some(description) = description else { return Ok(topic) };
            topic.description = Some(description);
            let mut batch = self.store.batch();
            batch.insert(&self.store.relay.topics, key.as_slice(), to_json(&TopicRecord::from(&topic)));
            let ticket = self.store.commit(batch)?;
            self.cache_put(key, &topic);
            (topic, ticket)
        };
        self.store.durable(ticket).await?;
        Ok(topic)
    }

    pub async fn delete(&self, owner_id: &str, name: &str) -> Result<bool> {
        let key = pair_key(owner_id, name);
        let ticket = {
            let mut count = self.lock.lock();
            if !self.store.relay.topics.contains_key(&key).map_err(fjall_err("reading a relay topic"))? {
                return Ok(false);
            }
            let mut batch = self.store.batch();
            batch.remove(&self.store.relay.topics, key.as_slice());
            let ticket = self.store.commit(batch)?;
            self.cache.write().remove(&key);
            *count -= 1;
            ticket
        };
        self.store.durable(ticket).await?;
        Ok(true)
    }
}

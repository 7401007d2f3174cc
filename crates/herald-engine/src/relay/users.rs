//! Relay users (contract §1.1): records keyed by user id plus a username index, in fjall.
//!
//! Changes are made under one lock and committed as one batch (record and index together) while it is held, so a
//! username is claimed at most once and a reader never sees a user without its index entry or the reverse.
//!
//! Every authenticated request looks its user up, so users are cached in memory by id. The cache is written
//! through: every change updates it while the lock is held, and a miss fills it under the same lock, so a fill can
//! never put back a record that a concurrent change has just replaced.

use super::api::{Micros, NewRelayUser, RelayUser, RelayUserPatch};
use super::records::{UserRecord, from_json, to_json};
use crate::store::{SharedStore, fjall_err};
use herald_types::{HeraldError, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;

/// Users kept in memory at most; past this the cache starts over (a miss costs one fjall read).
const CACHE_MAX: usize = 10_000;

pub(crate) struct Users {
    store: SharedStore,
    lock: Mutex<()>,
    /// user id → record, for users that exist. Written only with `lock` held.
    cache: RwLock<HashMap<String, RelayUser>>,
}

fn not_found(user_id: &str) -> HeraldError {
    HeraldError::not_found(format!("User with ID '{user_id}' not found"))
}

impl Users {
    pub fn new(store: SharedStore) -> Self {
        Users { store, lock: Mutex::new(()), cache: RwLock::new(HashMap::new()) }
    }

    /// Records `user` as current in the cache. Call with `lock` held.
    fn cache_put(&self, user: &RelayUser) {
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_MAX && !cache.contains_key(&user.user_id) {
            cache.clear();
        }
        cache.insert(user.user_id.clone(), user.clone());
    }

    pub async fn create(&self, user: NewRelayUser, now: Micros) -> Result<RelayUser> {
        let ks = &self.store.relay;
        let record = RelayUser {
            user_id: super::uuid_v4(),
            username: user.username,
            email: user.email,
            password_hash: user.password_hash,
            is_active: true,
            created_at: now,
            permissions: user.permissions,
        };
        let ticket = {
            let _guard = self.lock.lock();
            if ks.usernames.contains_key(&record.username).map_err(fjall_err("reading the username index"))? {
                return Err(HeraldError::already_exists(format!("Username '{}' already exists", record.username)));
            }
            let mut batch = self.store.batch();
            batch.insert(&ks.users, record.user_id.as_bytes(), to_json(&UserRecord::from(&record)));
            batch.insert(&ks.usernames, record.username.as_bytes(), record.user_id.as_bytes());
            let ticket = self.store.commit(batch)?;
            self.cache_put(&record);
            ticket
        };
        self.store.durable(ticket).await?;
        Ok(record)
    }

    pub fn get(&self, user_id: &str) -> Result<Option<RelayUser>> {
        if let Some(u) = self.cache.read().get(user_id) {
            return Ok(Some(u.clone()));
        }
        let _guard = self.lock.lock();
        let user = self.load(user_id)?;
        if let Some(u) = &user {
            self.cache_put(u);
        }
        Ok(user)
    }

    /// The stored record, bypassing the cache.
    fn load(&self, user_id: &str) -> Result<Option<RelayUser>> {
        let v = self.store.relay.users.get(user_id).map_err(fjall_err("reading a relay user"))?;
        v.map(|v| from_json::<UserRecord>("user", &v).map(RelayUser::from)).transpose()
    }

    pub fn by_name(&self, username: &str) -> Result<Option<RelayUser>> {
        let id = self.store.relay.usernames.get(username).map_err(fjall_err("reading the username index"))?;
        match id {
            Some(id) => self.get(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Every user, oldest first.
    pub fn all(&self) -> Result<Vec<RelayUser>> {
        let mut out = Vec::new();
        for item in self.store.relay.users.iter() {
            let (_, v) = item.into_inner().map_err(fjall_err("listing relay users"))?;
            out.push(RelayUser::from(from_json::<UserRecord>("user", &v)?));
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.username.cmp(&b.username)));
        Ok(out)
    }

    pub async fn update(&self, user_id: &str, patch: RelayUserPatch) -> Result<RelayUser> {
        let (user, ticket) = {
            let _guard = self.lock.lock();
            let mut user = self.load(user_id)?.ok_or_else(|| not_found(user_id))?;
            if let Some(email) = patch.email {
                user.email = email;
            }
            if let Some(hash) = patch.password_hash {
                user.password_hash = Some(hash);
            }
            if let Some(permissions) = patch.permissions {
                user.permissions = permissions;
            }
            if let Some(active) = patch.is_active {
                user.is_active = active;
            }
            let mut batch = self.store.batch();
            batch.insert(&self.store.relay.users, user.user_id.as_bytes(), to_json(&UserRecord::from(&user)));
            let ticket = self.store.commit(batch)?;
            self.cache_put(&user);
            (user, ticket)
        };
        self.store.durable(ticket).await?;
        Ok(user)
    }

    pub async fn delete(&self, user_id: &str) -> Result<()> {
        let ks = &self.store.relay;
        let ticket = {
            let _guard = self.lock.lock();
            let user = self.load(user_id)?.ok_or_else(|| not_found(user_id))?;
            let mut batch = self.store.batch();
            batch.remove(&ks.users, user_id.as_bytes());
            // The index entry is this user's unless something wrote it behind our back; never drop another's.
            let owner = ks.usernames.get(&user.username).map_err(fjall_err("reading the username index"))?;
            if owner.is_some_and(|o| &*o == user_id.as_bytes()) {
                batch.remove(&ks.usernames, user.username.as_bytes());
            }
            let ticket = self.store.commit(batch)?;
            self.cache.write().remove(user_id);
            ticket
        };
        self.store.durable(ticket).await
    }
}

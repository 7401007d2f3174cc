//! The resource registry: which streams, queues and KV stores exist.
//!
//! FlowMesh has no API to create resources; they are provisioned from a `resources.json` file (or, in Herald, with
//! opt-in `auto_create`). Every data call looks its resource up here first, so the registry is an in-memory map
//! (read-mostly, behind an `RwLock`) backed by the `resources` keyspace. Each resource gets a numeric id (`rid`) at
//! creation; the id, not the name, keys its records in the other keyspaces and names its log directory, so names
//! never need escaping on disk.

use crate::api::{ResourceConfig, Resources};
use crate::store::{SharedStore, fjall_err};
use crate::timefmt::rfc3339_nanos;
use async_trait::async_trait;
use herald_types::{Clock, HeraldError, ResourceKind, ResourcePath, Result};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

const NEXT_RID_KEY: &[u8] = b"\0next_rid";

#[derive(Serialize, Deserialize)]
struct ResourceRecord {
    rid: u64,
    config: ResourceConfig,
}

/// One existing resource.
#[derive(Debug)]
pub(crate) struct Resource {
    pub rid: u64,
    pub path: ResourcePath,
    pub config: RwLock<ResourceConfig>,
}

pub(crate) struct Registry {
    store: SharedStore,
    clock: Arc<dyn Clock>,
    auto_create: bool,
    map: RwLock<HashMap<ResourcePath, Arc<Resource>>>,
    /// Serialises creations so two racing auto-creates of one name get one rid.
    create_lock: parking_lot::Mutex<u64>,
}

impl Registry {
    pub fn open(store: SharedStore, clock: Arc<dyn Clock>, auto_create: bool) -> Result<Registry> {
        let mut map = HashMap::new();
        let mut next_rid = 1u64;
        for item in store.resources.iter() {
            let (k, v) = item.into_inner().map_err(fjall_err("loading resources"))?;
            if &*k == NEXT_RID_KEY {
                next_rid = next_rid.max(crate::store::read_u64(&v).unwrap_or(1));
                continue;
            }
            let rec: ResourceRecord = serde_json::from_slice(&v).map_err(|e| {
                HeraldError::internal(format!("corrupt resource record {:?}: {e}", String::from_utf8_lossy(&k)))
            })?;
            let path = rec.config.path()?;
            next_rid = next_rid.max(rec.rid + 1);
            map.insert(path.clone(), Arc::new(Resource { rid: rec.rid, path, config: RwLock::new(rec.config) }));
        }
        Ok(Registry {
            store,
            clock,
            auto_create,
            map: RwLock::new(map),
            create_lock: parking_lot::Mutex::new(next_rid),
        })
    }

    pub fn lookup(&self, path: &ResourcePath) -> Option<Arc<Resource>> {
        self.map.read().get(path).cloned()
    }

    /// The resource, or the contract's NOT_FOUND (`stream not found: <path>` …).
    pub fn require(&self, path: &ResourcePath) -> Result<Arc<Resource>> {
        self.lookup(path).ok_or_else(|| path.not_found())
    }

    /// For writes that may create (`WriteEvents`, `Enqueue`, KV `Set`): creates the resource when `auto_create` is on.
    pub fn require_or_create(&self, path: &ResourcePath) -> Result<Arc<Resource>> {
        if let Some(r) = self.lookup(path) {
            return Ok(r);
        }
        if !self.auto_create {
            return Err(path.not_found());
        }
        let (res, _) = self.create(self.default_config(path))?;
        Ok(res)
    }

    pub fn all(&self, kind: ResourceKind) -> Vec<Arc<Resource>> {
        self.map.read().values().filter(|r| r.path.kind == kind).cloned().collect()
    }

    pub fn default_config(&self, path: &ResourcePath) -> ResourceConfig {
        ResourceConfig {
            tenant: path.tenant.clone(),
            namespace: path.namespace.clone(),
            name: path.name.clone(),
            kind: path.kind,
            partitions: 1,
            retention: Default::default(),
            dlq: None,
            retry_policy: None,
            schema: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    /// Creates the resource if it does not exist. Returns it and whether it was created now.
    pub fn create(&self, mut config: ResourceConfig) -> Result<(Arc<Resource>, bool)> {
        let path = config.path()?;
        let mut next_rid = self.create_lock.lock();
        if let Some(r) = self.lookup(&path) {
            return Ok((r, false));
        }
        let now = rfc3339_nanos(self.clock.now_ns());
        if config.created_at.is_empty() {
            config.created_at = now.clone();
        }
        if config.updated_at.is_empty() {
            config.updated_at = now;
        }
        if config.partitions <= 0 {
            config.partitions = 1;
        }
        let rid = *next_rid;
        let rec = ResourceRecord { rid, config };
        let mut batch = self.store.batch();
        batch.insert(&self.store.resources, path.to_string(), serde_json::to_vec(&rec).expect("resource serialises"));
        batch.insert(&self.store.resources, NEXT_RID_KEY, (rid + 1).to_be_bytes().to_vec());
        self.store.commit(batch)?;
        // Creation is rare: make it durable whatever the policy, so a resource never vanishes after a crash while
        // data written to it survives.
        self.store.sync_now()?;
        *next_rid = rid + 1;
        let res = Arc::new(Resource { rid, path: path.clone(), config: RwLock::new(rec.config) });
        self.map.write().insert(path, Arc::clone(&res));
        Ok((res, true))
    }

    /// Rewrites a resource's configuration (retry policy, DLQ link, retention) and persists it.
    pub fn update(&self, res: &Resource, f: impl FnOnce(&mut ResourceConfig)) -> Result<ResourceConfig> {
        let mut cfg = res.config.write();
        let mut next = cfg.clone();
        f(&mut next);
        next.updated_at = rfc3339_nanos(self.clock.now_ns());
        let rec = ResourceRecord { rid: res.rid, config: next.clone() };
        let mut batch = self.store.batch();
        batch.insert(
            &self.store.resources,
            res.path.to_string(),
            serde_json::to_vec(&rec).expect("resource serialises"),
        );
        self.store.commit(batch)?;
        self.store.sync_now()?;
        *cfg = next.clone();
        Ok(next)
    }

    /// Loads a FlowMesh-format provisioning file: a JSON object mapping resource paths to configurations.
    /// Returns how many resources were created.
    pub fn load_provisioning_file(&self, file: &Path) -> Result<usize> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| HeraldError::invalid(format!("cannot read provisioning file {}: {e}", file.display())))?;
        let entries: BTreeMap<String, ResourceConfig> = serde_json::from_str(&text)
            .map_err(|e| HeraldError::invalid(format!("invalid provisioning file {}: {e}", file.display())))?;
        let mut created = 0;
        for (key, config) in entries {
            let path = config.path().map_err(|e| {
                HeraldError::invalid(format!("provisioning file {}: entry {key:?}: {}", file.display(), e.message))
            })?;
            if path.to_string() != key {
                return Err(HeraldError::invalid(format!(
                    "provisioning file {}: key {key:?} does not match its configuration ({path})",
                    file.display()
                )));
            }
            if self.provision_sync(config)? {
                created += 1;
            }
        }
        Ok(created)
    }

    fn provision_sync(&self, config: ResourceConfig) -> Result<bool> {
        let (res, created) = self.create(config.clone())?;
        if !created {
            // Apply the parts of the file an operator may change on an existing resource.
            let differs = {
                let cur = res.config.read();
                cur.retention != config.retention
                    || (config.retry_policy.is_some() && cur.retry_policy != config.retry_policy)
            };
            if differs {
                self.update(&res, |c| {
                    c.retention = config.retention.clone();
                    if config.retry_policy.is_some() {
                        c.retry_policy = config.retry_policy.clone();
                    }
                })?;
            }
        }
        Ok(created)
    }
}

/// The `Resources` service over the registry.
pub(crate) struct RegistryService(pub Arc<Registry>);

#[async_trait]
impl Resources for RegistryService {
    async fn provision(&self, config: ResourceConfig) -> Result<bool> {
        self.0.provision_sync(config)
    }

    async fn get(&self, path: &ResourcePath) -> Result<Option<ResourceConfig>> {
        Ok(self.0.lookup(path).map(|r| r.config.read().clone()))
    }

    async fn list(&self, kind: Option<ResourceKind>) -> Result<Vec<ResourceConfig>> {
        let map = self.0.map.read();
        let mut out: Vec<(ResourcePath, ResourceConfig)> = map
            .values()
            .filter(|r| kind.is_none_or(|k| r.path.kind == k))
            .map(|r| (r.path.clone(), r.config.read().clone()))
            .collect();
        out.sort_by_key(|a| a.0.to_string());
        Ok(out.into_iter().map(|(_, c)| c).collect())
    }
}

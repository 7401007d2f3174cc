//! The schema registry (compat/flowmesh.md §1.7, §3.6): per-tenant JSON Schema documents identified by
//! `(schema_id, version)`, attachable to a stream or a queue, whose writes are then validated against them.
//!
//! Schemas are few and small, so the whole registry lives in memory (a map per tenant, ordered by schema id then
//! version, which is the listing order the contract asks for) and every change is written through to the `schemas`
//! keyspace. Each entry keeps its compiled validator, built on first use, so a `(tenant, id, version)` is compiled
//! once; deleting the entry drops the validator with it.
//!
//! An attachment is stored in the resource's own configuration (`schema: {"id","type","version"}`, §1.2), so it
//! persists with the resource and shows in resource listings. The write paths (`streams.rs`, `queues/`) ask
//! [`SchemaRegistry::attached`] for it; a resource without one costs a single `Option` check.

use crate::codec::{Reader, VERSION, put_bytes};
use crate::resources::{Registry, Resource};
use crate::store::{SharedStore, fjall_err};
use async_trait::async_trait;
use bytes::Bytes;
use herald_types::{Clock, HeraldError, ResourcePath, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// The one schema type that is checked at registration; every attachment is validated as this type (§3.6).
pub const JSON_SCHEMA: &str = "jsonschema";

/// A registered schema document.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub id: String,
    pub schema_type: String,
    pub version: i32,
    pub definition: Bytes,
    /// Unix nanoseconds.
    pub created_at: i64,
}

#[async_trait]
pub trait Schemas: Send + Sync {
    /// Registers a new version. A `jsonschema` definition must be valid JSON and compile; other types are stored
    /// unchecked. An existing `(tenant, schema_id, version)` is ALREADY_EXISTS (D13).
    async fn register(
        &self,
        tenant: &str,
        schema_id: &str,
        schema_type: &str,
        version: i32,
        definition: Bytes,
    ) -> Result<()>;
    /// `version > 0`: that version; `version <= 0`: the highest registered version.
    async fn get(&self, tenant: &str, schema_id: &str, version: i32) -> Result<Schema>;
    /// The tenant's schemas (only those with `schema_id` if given), sorted by schema id, then version.
    async fn list(&self, tenant: &str, schema_id: Option<&str>) -> Result<Vec<Schema>>;
    /// Removes one version. Resources attached to it keep the reference; their writes then fail (INTERNAL).
    async fn delete(&self, tenant: &str, schema_id: &str, version: i32) -> Result<()>;
    /// Attaches a schema to a stream or queue, replacing any previous attachment. `version <= 0` is resolved now
    /// to the latest registered version (NOT_FOUND if there is none); an explicit version is not checked.
    async fn attach(&self, resource: &ResourcePath, schema_id: &str, version: i32) -> Result<()>;
}

// ---------------------------------------------------------------- request checks

/// The checks of §3.6 on a request's own fields, in the contract's order. Front-ends run these before they
/// authorize (§3.1), and the engine runs them again so that every front-end gets the same answers.
pub mod checks {
    use herald_types::{HeraldError, ResourceKind, ResourcePath, Result};

    pub fn tenant(tenant: &str) -> Result<()> {
        required(tenant, "tenant is required")
    }

    pub fn schema_id(schema_id: &str) -> Result<()> {
        required(schema_id, "schema_id is required")
    }

    pub fn version(version: i32) -> Result<()> {
        if version <= 0 {
            return Err(HeraldError::invalid("version must be positive"));
        }
        Ok(())
    }

    /// `RegisterSchema` (everything but the definition's content).
    pub fn register(tenant: &str, schema_id: &str, schema_type: &str, version: i32, definition: &[u8]) -> Result<()> {
        self::tenant(tenant)?;
        self::schema_id(schema_id)?;
        required(schema_type, "schema_type is required")?;
        self::version(version)?;
        if definition.is_empty() {
            return Err(HeraldError::invalid("definition cannot be empty"));
        }
        Ok(())
    }

    /// `GetSchema` (any version: `<= 0` means latest).
    pub fn get(tenant: &str, schema_id: &str) -> Result<()> {
        self::tenant(tenant)?;
        self::schema_id(schema_id)
    }

    /// `DeleteSchema`.
    pub fn delete(tenant: &str, schema_id: &str, version: i32) -> Result<()> {
        get(tenant, schema_id)?;
        self::version(version)
    }

    /// `SetResourceSchema`: schemas attach to streams and queues only.
    pub fn attach_kind(resource: &ResourcePath) -> Result<()> {
        match resource.kind {
            ResourceKind::Stream | ResourceKind::Queue => Ok(()),
            _ => Err(HeraldError::invalid("resource_type must be 'stream' or 'queue'")),
        }
    }

    fn required(value: &str, message: &str) -> Result<()> {
        if value.is_empty() {
            return Err(HeraldError::invalid(message));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the embedded registry

/// A stored version, with its validator compiled on first use (`Err` holds why it does not compile).
struct Entry {
    schema_type: String,
    definition: Bytes,
    created_at: i64,
    compiled: OnceLock<std::result::Result<Arc<jsonschema::Validator>, String>>,
}

impl Entry {
    fn validator(&self) -> std::result::Result<Arc<jsonschema::Validator>, String> {
        self.compiled.get_or_init(|| compile(&self.definition)).clone()
    }
}

/// `(schema_id, version)` → entry. BTreeMap order is the listing order (§3.6).
type TenantSchemas = BTreeMap<(String, i32), Arc<Entry>>;

pub(crate) struct SchemaRegistry {
    store: SharedStore,
    clock: Arc<dyn Clock>,
    resources: Arc<Registry>,
    tenants: RwLock<HashMap<String, TenantSchemas>>,
    /// Serialises changes, so the order on disk is the order in memory.
    write_lock: Mutex<()>,
}

/// The schema attached to a resource, ready to validate payloads.
pub(crate) struct Attached {
    pub id: String,
    pub version: i32,
    validator: Arc<jsonschema::Validator>,
}

impl Attached {
    /// Why `payload` is not acceptable, if it is not: it must parse as JSON and validate against the schema.
    pub fn check(&self, payload: &[u8]) -> std::result::Result<(), String> {
        let doc: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| format!("payload is not valid JSON: {e}"))?;
        self.validator
            .validate(&doc)
            .map_err(|e| format!("payload does not match schema {} v{}: {}", self.id, self.version, describe(&e)))
    }
}

/// A validation error with where it is, when that is not the document's root: `5 is not of type "string" (at /id)`.
fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    match e.instance_path().as_str() {
        "" => e.to_string(),
        at => format!("{e} (at {at})"),
    }
}

/// Compiles a JSON Schema document: draft 2020-12 unless its `$schema` names another draft (the crate's own
/// detection, which is FlowMesh's rule). Remote references are never fetched: the crate is built without network or
/// file retrieval, and `offline` says so explicitly.
fn compile(definition: &[u8]) -> std::result::Result<Arc<jsonschema::Validator>, String> {
    let doc: serde_json::Value = serde_json::from_slice(definition).map_err(|e| e.to_string())?;
    // A schema that fails its meta-schema reports the place in the schema document, e.g. `(at /type)`.
    let validator = jsonschema::options().offline().build(&doc).map_err(|e| describe(&e))?;
    Ok(Arc::new(validator))
}

/// `tenant` · `schema_id` (each u32-length-prefixed) · version (i32 BE). See docs/storage-format.md.
fn key(tenant: &str, schema_id: &str, version: i32) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + tenant.len() + schema_id.len());
    put_bytes(&mut k, tenant.as_bytes());
    put_bytes(&mut k, schema_id.as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn decode_key(k: &[u8]) -> Option<(String, String, i32)> {
    let mut r = Reader::new(k);
    let tenant = r.string()?;
    let id = r.string()?;
    let version = r.i32()?;
    r.rest().is_empty().then_some((tenant, id, version))
}

/// `1` · created_at (i64 BE) · schema_type (u32-length-prefixed) · definition.
fn encode_value(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 8 + 4 + e.schema_type.len() + e.definition.len());
    out.push(VERSION);
    out.extend_from_slice(&e.created_at.to_be_bytes());
    put_bytes(&mut out, e.schema_type.as_bytes());
    out.extend_from_slice(&e.definition);
    out
}

fn decode_value(v: &[u8]) -> Option<Entry> {
    let mut r = Reader::new(v);
    if r.u8()? != VERSION {
        return None;
    }
    let created_at = r.i64()?;
    let schema_type = r.string()?;
    Some(Entry { schema_type, definition: Bytes::copy_from_slice(r.rest()), created_at, compiled: OnceLock::new() })
}

fn not_found(schema_id: &str, version: i32) -> HeraldError {
    if version > 0 {
        HeraldError::not_found(format!("schema not found: {schema_id} (version {version})"))
    } else {
        HeraldError::not_found(format!("schema not found: {schema_id}"))
    }
}

fn to_schema(id: &str, version: i32, e: &Entry) -> Schema {
    Schema {
        id: id.to_owned(),
        schema_type: e.schema_type.clone(),
        version,
        definition: e.definition.clone(),
        created_at: e.created_at,
    }
}

impl SchemaRegistry {
    pub fn open(store: SharedStore, clock: Arc<dyn Clock>, resources: Arc<Registry>) -> Result<SchemaRegistry> {
        let mut tenants: HashMap<String, TenantSchemas> = HashMap::new();
        for item in store.schemas.iter() {
            let (k, v) = item.into_inner().map_err(fjall_err("loading schemas"))?;
            let ((tenant, id, version), entry) = decode_key(&k).zip(decode_value(&v)).ok_or_else(|| {
                HeraldError::internal(format!("corrupt schema record {:?}", String::from_utf8_lossy(&k)))
            })?;
            tenants.entry(tenant).or_default().insert((id, version), Arc::new(entry));
        }
        Ok(SchemaRegistry { store, clock, resources, tenants: RwLock::new(tenants), write_lock: Mutex::new(()) })
    }

    /// Exactly `(tenant, schema_id, version)`.
    fn entry(&self, tenant: &str, schema_id: &str, version: i32) -> Option<Arc<Entry>> {
        self.tenants.read().get(tenant)?.get(&(schema_id.to_owned(), version)).cloned()
    }

    /// The version `version` resolves to (`<= 0`: the latest) and its entry.
    fn resolve(&self, tenant: &str, schema_id: &str, version: i32) -> Option<(i32, Arc<Entry>)> {
        if version > 0 {
            return self.entry(tenant, schema_id, version).map(|e| (version, e));
        }
        let tenants = self.tenants.read();
        let id = schema_id.to_owned();
        tenants
            .get(tenant)?
            .range((id.clone(), i32::MIN)..=(id, i32::MAX))
            .next_back()
            .map(|((_, v), e)| (*v, Arc::clone(e)))
    }

    /// The schema attached to `res`, or `None` when it has none (the common case, answered without a lookup).
    /// An attachment whose version is gone (or whose definition does not compile) is the contract's INTERNAL
    /// `failed to get schema: …`; the caller prefixes what it was doing.
    pub fn attached(&self, res: &Resource) -> Result<Option<Attached>> {
        let (id, version) = {
            let cfg = res.config.read();
            let Some(schema) = cfg.schema.as_ref() else { return Ok(None) };
            let Some(id) = schema.get("id").and_then(|v| v.as_str()).filter(|id| !id.is_empty()) else {
                // A configuration without a schema id names nothing to validate against.
                return Ok(None);
            };
            let version = schema.get("version").and_then(|v| v.as_i64()).unwrap_or(0);
            (id.to_owned(), i32::try_from(version).unwrap_or(i32::MAX))
        };
        // A provisioned attachment may say "latest" (version 0): it is resolved at every write (§3.3).
        let (version, entry) = self.resolve(&res.path.tenant, &id, version).ok_or_else(|| {
            HeraldError::internal(format!("failed to get schema: {}", not_found(&id, version).message))
        })?;
        let validator = entry.validator().map_err(|detail| {
            HeraldError::internal(format!(
                "failed to get schema: schema {id} version {version} does not compile: {detail}"
            ))
        })?;
        Ok(Some(Attached { id, version, validator }))
    }
}

#[async_trait]
impl Schemas for SchemaRegistry {
    async fn register(
        &self,
        tenant: &str,
        schema_id: &str,
        schema_type: &str,
        version: i32,
        definition: Bytes,
    ) -> Result<()> {
        checks::register(tenant, schema_id, schema_type, version, &definition)?;
        let compiled = OnceLock::new();
        if schema_type == JSON_SCHEMA {
            let validator =
                compile(&definition).map_err(|e| HeraldError::invalid(format!("invalid schema definition: {e}")))?;
            // Compiled once here, kept for every write validated against this version.
            let _ = compiled.set(Ok(validator));
        }
        let entry = Arc::new(Entry {
            schema_type: schema_type.to_owned(),
            definition,
            created_at: self.clock.now_ns(),
            compiled,
        });
        {
            let _w = self.write_lock.lock();
            if self.entry(tenant, schema_id, version).is_some() {
                return Err(HeraldError::already_exists(format!(
                    "schema {schema_id} version {version} already exists"
                )));
            }
            let mut batch = self.store.batch();
            batch.insert(&self.store.schemas, key(tenant, schema_id, version), encode_value(&entry));
            self.store.commit(batch)?;
            self.tenants.write().entry(tenant.to_owned()).or_default().insert((schema_id.to_owned(), version), entry);
        }
        self.persist_pending().await
    }

    async fn get(&self, tenant: &str, schema_id: &str, version: i32) -> Result<Schema> {
        checks::get(tenant, schema_id)?;
        let (version, entry) = self.resolve(tenant, schema_id, version).ok_or_else(|| not_found(schema_id, version))?;
        Ok(to_schema(schema_id, version, &entry))
    }

    async fn list(&self, tenant: &str, schema_id: Option<&str>) -> Result<Vec<Schema>> {
        checks::tenant(tenant)?;
        let tenants = self.tenants.read();
        let Some(schemas) = tenants.get(tenant) else { return Ok(Vec::new()) };
        Ok(schemas
            .iter()
            .filter(|((id, _), _)| schema_id.is_none_or(|want| want == id))
            .map(|((id, v), e)| to_schema(id, *v, e))
            .collect())
    }

    async fn delete(&self, tenant: &str, schema_id: &str, version: i32) -> Result<()> {
        checks::delete(tenant, schema_id, version)?;
        {
            let _w = self.write_lock.lock();
            if self.entry(tenant, schema_id, version).is_none() {
                return Err(not_found(schema_id, version));
            }
            let mut batch = self.store.batch();
            batch.remove(&self.store.schemas, key(tenant, schema_id, version));
            self.store.commit(batch)?;
            let mut tenants = self.tenants.write();
            if let Some(schemas) = tenants.get_mut(tenant) {
                // Dropping the entry drops its compiled validator: a later registration of the same version is
                // compiled afresh.
                schemas.remove(&(schema_id.to_owned(), version));
                if schemas.is_empty() {
                    tenants.remove(tenant);
                }
            }
        }
        self.persist_pending().await
    }

    async fn attach(&self, resource: &ResourcePath, schema_id: &str, version: i32) -> Result<()> {
        checks::schema_id(schema_id)?;
        checks::attach_kind(resource)?;
        let res = self
            .resources
            .lookup(resource)
            .ok_or_else(|| HeraldError::not_found(format!("resource not found: {resource}")))?;
        let (version, schema_type) = if version <= 0 {
            let (v, e) = self.resolve(&resource.tenant, schema_id, 0).ok_or_else(|| not_found(schema_id, 0))?;
            (v, e.schema_type.clone())
        } else {
            // An explicit version is not checked (§3.6); it is validated as JSON Schema whatever its type.
            let t = self.entry(&resource.tenant, schema_id, version).map(|e| e.schema_type.clone());
            (version, t.unwrap_or_else(|| JSON_SCHEMA.to_owned()))
        };
        let reference = serde_json::json!({ "id": schema_id, "type": schema_type, "version": version });
        self.resources.update(&res, |c| c.schema = Some(reference))?;
        Ok(())
    }
}

impl SchemaRegistry {
    /// Fsyncs the change just committed, whatever the fsync policy: an attachment (fsynced by the resource registry)
    /// must never outlive the schema version it names after a crash. Schema changes are rare.
    async fn persist_pending(&self) -> Result<()> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.sync_now())
            .await
            .map_err(|e| HeraldError::internal(format!("fsync task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_keep_tenants_apart() {
        let k = key("t1", "order", 7);
        assert_eq!(decode_key(&k), Some(("t1".into(), "order".into(), 7)));
        // Length prefixes: ("ab", "c") and ("a", "bc") never share a key.
        assert_ne!(key("ab", "c", 1), key("a", "bc", 1));
        assert!(decode_key(&k[..k.len() - 1]).is_none());
    }

    #[test]
    fn values_round_trip() {
        let e = Entry {
            schema_type: "jsonschema".into(),
            definition: Bytes::from_static(br#"{"type":"object"}"#),
            created_at: 42,
            compiled: OnceLock::new(),
        };
        let d = decode_value(&encode_value(&e)).unwrap();
        assert_eq!((d.schema_type.as_str(), &d.definition[..], d.created_at), ("jsonschema", &e.definition[..], 42));
        assert!(decode_value(&[9]).is_none());
    }

    #[test]
    fn drafts_follow_dollar_schema() {
        // Draft 4's exclusiveMaximum is a boolean modifier of maximum.
        let draft4 = br#"{"$schema":"http://json-schema.org/draft-04/schema#","maximum":5,"exclusiveMaximum":true}"#;
        let v = compile(draft4).unwrap();
        assert!(v.is_valid(&serde_json::json!(4)));
        assert!(!v.is_valid(&serde_json::json!(5)));
        // Without `$schema`: 2020-12, where `prefixItems` exists (draft 7 would ignore it).
        let v = compile(br#"{"prefixItems":[{"type":"string"}]}"#).unwrap();
        assert!(!v.is_valid(&serde_json::json!([1])));
        assert!(compile(b"{").is_err());
        assert!(compile(br#"{"type":"no-such-type"}"#).is_err());
    }
}

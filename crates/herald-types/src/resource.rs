//! Resource addressing.
//!
//! Streams, queues and KV stores are addressed by four components, `tenant/namespace/resource_type/name`
//! (compat/flowmesh.md §1.1). The joined string is what clients see in `resource_path` fields and error messages.
//!
//! Names may contain any characters and have any length (FlowMesh parity), except that a component must not be blank
//! after trimming and must not contain `/` (decision D22: such names make the joined path ambiguous).

use crate::error::{HeraldError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Stream,
    Queue,
    Kv,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Stream => "stream",
            ResourceKind::Queue => "queue",
            ResourceKind::Kv => "kv",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stream" => Some(ResourceKind::Stream),
            "queue" => Some(ResourceKind::Queue),
            "kv" => Some(ResourceKind::Kv),
            _ => None,
        }
    }
    /// The noun used in NOT_FOUND messages: `stream not found: …`, `queue not found: …`, `KV store not found: …`.
    pub fn not_found_noun(self) -> &'static str {
        match self {
            ResourceKind::Stream => "stream",
            ResourceKind::Queue => "queue",
            ResourceKind::Kv => "KV store",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated resource address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePath {
    pub tenant: String,
    pub namespace: String,
    pub kind: ResourceKind,
    pub name: String,
}

impl ResourcePath {
    /// Validates the four wire components in the contract's order (§3.1 step 4) and builds the path.
    /// Components are kept verbatim (not trimmed); only the blank test trims.
    pub fn parse_components(tenant: &str, namespace: &str, resource_type: &str, name: &str) -> Result<Self> {
        check_component("tenant", tenant)?;
        check_component("namespace", namespace)?;
        if resource_type.trim().is_empty() {
            return Err(HeraldError::invalid("resource_type cannot be empty"));
        }
        let kind = ResourceKind::parse(resource_type).ok_or_else(|| {
            HeraldError::invalid(format!("invalid resource type: {resource_type} (must be stream, queue, or kv)"))
        })?;
        check_component("name", name)?;
        Ok(ResourcePath { tenant: tenant.to_owned(), namespace: namespace.to_owned(), kind, name: name.to_owned() })
    }

    pub fn new(tenant: &str, namespace: &str, kind: ResourceKind, name: &str) -> Result<Self> {
        Self::parse_components(tenant, namespace, kind.as_str(), name)
    }

    /// Parses the joined form `tenant/namespace/type/name`.
    pub fn parse_joined(path: &str) -> Result<Self> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != 4 {
            return Err(HeraldError::invalid(format!(
                "invalid resource path: {path} (expected tenant/namespace/type/name)"
            )));
        }
        Self::parse_components(parts[0], parts[1], parts[2], parts[3])
    }

    /// The same tenant and namespace, another kind and name.
    pub fn sibling(&self, kind: ResourceKind, name: String) -> ResourcePath {
        ResourcePath { tenant: self.tenant.clone(), namespace: self.namespace.clone(), kind, name }
    }

    /// Fails with the contract's text when the path is of another kind than the service expects.
    pub fn expect_kind(&self, kind: ResourceKind) -> Result<()> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(HeraldError::invalid(format!("resource_type must be '{}'", kind.as_str())))
        }
    }

    /// `stream not found: t/ns/stream/x` and the like.
    pub fn not_found(&self) -> HeraldError {
        HeraldError::not_found(format!("{} not found: {self}", self.kind.not_found_noun()))
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.tenant, self.namespace, self.kind.as_str(), self.name)
    }
}

fn check_component(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(HeraldError::invalid(format!("{field} cannot be empty")));
    }
    if value.contains('/') {
        return Err(HeraldError::invalid(format!("{field} cannot contain '/'")));
    }
    Ok(())
}

/// Consumer-group names: non-empty, no `/` (D22). Any other character is allowed (FlowMesh parity).
pub fn check_consumer_group(group: &str) -> Result<()> {
    if group.is_empty() {
        return Err(HeraldError::invalid("consumer_group is required"));
    }
    if group.contains('/') {
        return Err(HeraldError::invalid("consumer_group cannot contain '/'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_parses() {
        let p = ResourcePath::parse_components("t1", "ns1", "stream", "orders").unwrap();
        assert_eq!(p.to_string(), "t1/ns1/stream/orders");
        assert_eq!(ResourcePath::parse_joined("t1/ns1/stream/orders").unwrap(), p);
        assert_eq!(p.not_found().message, "stream not found: t1/ns1/stream/orders");
        let kv = p.sibling(ResourceKind::Kv, "c".into());
        assert_eq!(kv.not_found().message, "KV store not found: t1/ns1/kv/c");
    }

    #[test]
    fn validation_messages_follow_the_contract_order() {
        let e = |t, n, r, m| ResourcePath::parse_components(t, n, r, m).unwrap_err().message;
        assert_eq!(e("  ", "", "", ""), "tenant cannot be empty");
        assert_eq!(e("t", "", "", ""), "namespace cannot be empty");
        assert_eq!(e("t", "n", " ", ""), "resource_type cannot be empty");
        assert_eq!(e("t", "n", "topic", ""), "invalid resource type: topic (must be stream, queue, or kv)");
        assert_eq!(e("t", "n", "kv", ""), "name cannot be empty");
        assert_eq!(e("t/x", "n", "kv", "a"), "tenant cannot contain '/'");
        assert_eq!(e("t", "n", "kv", "a/b"), "name cannot contain '/'");
    }

    #[test]
    fn kind_mismatch_and_groups() {
        let p = ResourcePath::parse_components("t", "n", "queue", "q").unwrap();
        assert_eq!(p.expect_kind(ResourceKind::Stream).unwrap_err().message, "resource_type must be 'stream'");
        assert!(check_consumer_group("").is_err());
        assert!(check_consumer_group("a/b").is_err());
        assert!(check_consumer_group("g 1 ü").is_ok());
    }
}

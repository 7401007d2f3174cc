//! `GET /api/herald/kv/{tenant}/{namespace}/{name}/entries?prefix=<p>&limit=<n>`: the live keys of a KV store that
//! start with `prefix`, ascending, with their value sizes and expiry times (Unix nanoseconds, `null` for none).
//!
//! `limit` defaults to 100 and is clamped to 1,000, as FlowMesh clamps `max_messages`; a value that is not a
//! positive integer is a 400 (`invalid limit parameter`), as FlowMesh answers a bad `max_messages`.

use super::LIST_CAP;
use crate::admin::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use herald_types::{HeraldError, ResourceKind, ResourcePath};
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
pub(super) struct EntriesQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<String>,
}

#[derive(Serialize)]
pub(super) struct Entry {
    key: String,
    size: u64,
    expires_at: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct Entries {
    entries: Vec<Entry>,
}

fn parse_limit(limit: Option<&str>) -> Result<usize, HeraldError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => Ok((n as u64).min(LIST_CAP as u64) as usize),
            _ => Err(HeraldError::invalid("invalid limit parameter")),
        },
    }
}

pub(super) async fn entries(
    State(state): State<AppState>,
    Path((tenant, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<EntriesQuery>,
) -> Result<Json<Entries>, ApiError> {
    let store = ResourcePath::new(&tenant, &namespace, ResourceKind::Kv, &name)?;
    let limit = parse_limit(q.limit.as_deref())?;
    let entries = state.engine.kv.list_entries(&store, &q.prefix, limit).await?;
    Ok(Json(Entries {
        entries: entries.into_iter().map(|e| Entry { key: e.key, size: e.size, expires_at: e.expires_at }).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_clamp_and_reject() {
        assert_eq!(parse_limit(None).unwrap(), 100);
        assert_eq!(parse_limit(Some("5")).unwrap(), 5);
        assert_eq!(parse_limit(Some("5000")).unwrap(), 1000);
        for bad in ["0", "-1", "x", ""] {
            assert_eq!(parse_limit(Some(bad)).unwrap_err().message, "invalid limit parameter", "{bad:?}");
        }
    }
}

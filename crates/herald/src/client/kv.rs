//! `herald kv get|set|delete|list`.

use super::{GrpcArgs, payload_json, print_json, resource_path, status_error};
use clap::{Args, Subcommand};
use herald_proto::flowmesh::v1 as pb;
use pb::kv_service_client::KvServiceClient;
use std::io::Write;

#[derive(Subcommand)]
pub enum KvCommand {
    /// Print a key's value (raw bytes on standard output; `--json` gives base64 and, for UTF-8, text).
    Get(KeyArgs),
    /// Set a key, optionally with a time to live.
    Set(SetArgs),
    /// Delete a key (succeeds when it does not exist).
    Delete(KeyArgs),
    /// List live keys in byte order.
    List(ListArgs),
}

#[derive(Args)]
pub struct KeyArgs {
    /// KV store: `<tenant>/<namespace>/<name>`.
    pub store: String,
    pub key: String,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

#[derive(Args)]
pub struct SetArgs {
    pub store: String,
    pub key: String,
    pub value: String,
    /// Seconds until the key expires (0: never).
    #[arg(long, default_value_t = 0)]
    pub ttl: i64,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

#[derive(Args)]
pub struct ListArgs {
    pub store: String,
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

pub fn main(cmd: KvCommand) -> anyhow::Result<()> {
    super::run(async move {
        match cmd {
            KvCommand::Get(a) => get(a).await,
            KvCommand::Set(a) => set(a).await,
            KvCommand::Delete(a) => delete(a).await,
            KvCommand::List(a) => list(a).await,
        }
    })
}

async fn get(a: KeyArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.store, "kv")?;
    let conn = a.grpc.connect().await?;
    let req = pb::GetRequest { resource_path: Some(path), key: a.key.clone() };
    let value = KvServiceClient::new(conn.channel.clone())
        .get(conn.request(req))
        .await
        .map_err(status_error)?
        .into_inner()
        .value;
    if conn.json {
        let mut o = serde_json::Map::new();
        o.insert("key".into(), a.key.into());
        payload_json(&value, &mut o);
        print_json(&serde_json::Value::Object(o));
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(&value)?;
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !value.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

async fn set(a: SetArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.store, "kv")?;
    let conn = a.grpc.connect().await?;
    let req = pb::SetRequest {
        resource_path: Some(path),
        key: a.key.clone(),
        value: a.value.into_bytes().into(),
        ttl_seconds: a.ttl,
    };
    KvServiceClient::new(conn.channel.clone()).set(conn.request(req)).await.map_err(status_error)?;
    if conn.json {
        print_json(&serde_json::json!({"key": a.key, "ttl_seconds": a.ttl.max(0)}));
    } else if a.ttl > 0 {
        println!("set {} (expires in {} s)", a.key, a.ttl);
    } else {
        println!("set {}", a.key);
    }
    Ok(())
}

async fn delete(a: KeyArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.store, "kv")?;
    let conn = a.grpc.connect().await?;
    let req = pb::DeleteRequest { resource_path: Some(path), key: a.key.clone() };
    KvServiceClient::new(conn.channel.clone()).delete(conn.request(req)).await.map_err(status_error)?;
    if conn.json {
        print_json(&serde_json::json!({"key": a.key, "deleted": true}));
    } else {
        println!("deleted {}", a.key);
    }
    Ok(())
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.store, "kv")?;
    let conn = a.grpc.connect().await?;
    let req = pb::ListKeysRequest { resource_path: Some(path), prefix: a.prefix };
    let keys = KvServiceClient::new(conn.channel.clone())
        .list_keys(conn.request(req))
        .await
        .map_err(status_error)?
        .into_inner()
        .keys;
    if conn.json {
        print_json(&serde_json::json!({"keys": keys}));
    } else {
        for k in keys {
            println!("{k}");
        }
    }
    Ok(())
}

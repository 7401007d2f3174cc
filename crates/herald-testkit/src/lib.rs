//! A whole Herald server for tests: port 0, a temporary data directory, optional tokens and provisioned resources,
//! and connected gRPC clients. Tests talk to it over the network exactly as users do.

use herald_proto::flowmesh::v1 as pb;
use herald_server::auth::TokenConfig;
use herald_server::config::Config;
use herald_server::RunningServer;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

pub use herald_proto::flowmesh::v1;

/// Options for [`TestServer::start`].
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    pub tokens: Vec<String>,
    /// Resource paths to provision, e.g. `t1/ns1/stream/orders`.
    pub resources: Vec<String>,
    pub auto_create: bool,
    /// `always`, `never` or `interval:<ms>`; default `always` (tests want durability, not speed).
    pub fsync: Option<String>,
    /// Reuse a data directory (restart tests).
    pub data_dir: Option<PathBuf>,
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub options: TestOptions,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Writes a FlowMesh-format provisioning file for `paths`.
pub fn write_provisioning_file(file: &Path, paths: &[String]) -> anyhow::Result<()> {
    let mut map = serde_json::Map::new();
    for p in paths {
        let parts: Vec<&str> = p.split('/').collect();
        anyhow::ensure!(parts.len() == 4, "bad resource path {p}");
        map.insert(
            p.clone(),
            serde_json::json!({"tenant": parts[0], "namespace": parts[1], "type": parts[2], "name": parts[3], "partitions": 1, "retention": {}}),
        );
    }
    std::fs::write(file, serde_json::to_vec_pretty(&map)?)?;
    Ok(())
}

impl TestServer {
    pub async fn start(options: TestOptions) -> anyhow::Result<TestServer> {
        let (tmp, data_dir) = match &options.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir()?;
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let mut config = Config::default();
        config.data_dir = data_dir.clone();
        config.listeners.grpc = "127.0.0.1:0".into();
        config.listeners.admin = "127.0.0.1:0".into();
        config.storage.fsync = options.fsync.clone().unwrap_or_else(|| "always".into());
        config.storage.auto_create = options.auto_create;
        config.auth.tokens =
            options.tokens.iter().map(|t| TokenConfig { token: t.clone(), tenants: vec!["*".into()], ..Default::default() }).collect();
        if !options.resources.is_empty() {
            std::fs::create_dir_all(&data_dir)?;
            let file = data_dir.parent().unwrap_or(&data_dir).join("resources.json");
            write_provisioning_file(&file, &options.resources)?;
            config.storage.resources_file = Some(file);
        }
        let validated = config.validate().map_err(|e| anyhow::anyhow!(e.join("; ")))?;
        let server = herald_server::start(validated).await?;
        Ok(TestServer { server: Some(server), options, data_dir, _tmp: tmp })
    }

    fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.running().grpc_addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.running().admin_addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url()).expect("valid url").connect().await.expect("connect")
    }

    /// Stops gracefully and starts again on the same data directory (new ports).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.server.take() {
            s.shutdown().await?;
        }
        let mut opts = self.options.clone();
        opts.data_dir = Some(self.data_dir.clone());
        opts.resources.clear();
        let next = TestServer::start(opts).await?;
        self.server = next.server;
        Ok(())
    }

    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.server.take() {
            s.shutdown().await?;
        }
        Ok(())
    }
}

/// A `flowmesh.v1.ResourcePath` from `tenant/namespace/type/name`.
pub fn path(p: &str) -> Option<pb::ResourcePath> {
    let parts: Vec<&str> = p.split('/').collect();
    Some(pb::ResourcePath {
        tenant: parts[0].into(),
        namespace: parts[1].into(),
        resource_type: parts[2].into(),
        name: parts[3].into(),
    })
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    r
}

//! A whole Herald server for tests: port 0, a temporary data directory, optional tokens and provisioned resources,
//! and connected gRPC clients. Tests talk to it over the network exactly as users do.

use herald_proto::flowmesh::v1 as pb;
use herald_server::RunningServer;
use herald_server::auth::{TokenConfig, UserConfig};
use herald_server::config::{Config, NatsConfig};
pub use herald_server::events::settings::{EventsConfig, IdentityEntry};
pub use herald_server::relay::settings::RelayConfig;

pub mod ensync;
pub mod http1;
pub mod relay_http;
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
    /// Tokens with scopes or subject permissions, in addition to `tokens`.
    pub token_configs: Vec<TokenConfig>,
    /// Users with passwords (NATS `user`/`pass`).
    pub users: Vec<UserConfig>,
    /// NATS limits and timers (default: the shipped defaults).
    pub nats: Option<NatsConfig>,
    /// Turns the relay listener on with these settings ([`relay_test_config`] is a ready-made one).
    pub relay: Option<RelayConfig>,
    /// Require tokens on the admin listener too (`[auth] http`).
    pub http_auth: bool,
    /// The `[events]` table (identities and delivery tuning); default: no identities.
    pub events: Option<EventsConfig>,
}

/// Relay settings for tests: the contract's defaults plus what it needs to start (fixed JWT secret, bootstrap admin
/// `admin`/`12345678`, localhost as trusted host), with rate limits off.
pub fn relay_test_config() -> RelayConfig {
    RelayConfig {
        jwt_secret_key: Some("herald-test-secret-0123456789abcdef".into()),
        bootstrap_admin_username: Some("admin".into()),
        bootstrap_admin_password: Some("12345678".into()),
        trusted_hosts: Some(vec!["localhost".into(), "127.0.0.1".into()]),
        allowed_origins: Some(vec!["http://localhost:8080".into()]),
        ratelimit_enabled: Some(false),
        ..RelayConfig::default()
    }
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
        let mut config = Config { data_dir: data_dir.clone(), ..Config::default() };
        config.listeners.grpc = "127.0.0.1:0".into();
        config.listeners.admin = "127.0.0.1:0".into();
        config.listeners.nats = "127.0.0.1:0".into();
        // Never the default 9090: parallel tests would fight over it.
        config.metrics.addr = "127.0.0.1:0".into();
        // The relay hashes its bootstrap admin's password (Argon2id) at start-up: only on when a test asks.
        config.listeners.relay = String::new();
        if let Some(r) = &options.relay {
            config.listeners.relay = "127.0.0.1:0".into();
            config.relay = r.clone();
        }
        if let Some(n) = &options.nats {
            config.nats = n.clone();
        }
        if let Some(e) = &options.events {
            config.events = e.clone();
        }
        config.auth.users = options.users.clone();
        config.auth.http = options.http_auth;
        config.storage.fsync = options.fsync.clone().unwrap_or_else(|| "always".into());
        config.storage.auto_create = options.auto_create;
        config.auth.tokens = options
            .tokens
            .iter()
            .map(|t| TokenConfig { token: t.clone(), tenants: vec!["*".into()], ..Default::default() })
            .chain(options.token_configs.iter().cloned())
            .collect();
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

    /// The admin HTTP listener's address (health, readiness, the FlowMesh REST API).
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.running().admin_addr
    }

    /// The NATS listener's `host:port`.
    /// `http://host:port` of the dedicated metrics listener.
    pub fn metrics_url(&self) -> String {
        format!("http://{}", self.running().metrics_addr.expect("the metrics listener is on"))
    }

    pub fn nats_addr(&self) -> std::net::SocketAddr {
        self.running().nats_addr.expect("the NATS listener is on")
    }

    /// The relay listener's address.
    pub fn relay_addr(&self) -> std::net::SocketAddr {
        self.running().relay_addr.expect("the relay listener is on")
    }

    /// `nats://host:port`, for NATS clients.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.nats_addr())
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

/// The real `herald` binary as a child process, for tests that must crash it (SIGKILL) or read its log.
pub struct BinaryServer {
    pub child: std::process::Child,
    pub grpc_addr: String,
    pub admin_addr: String,
    pub nats_addr: String,
    pub relay_addr: String,
    pub data_dir: PathBuf,
    pub stderr_path: PathBuf,
}

impl BinaryServer {
    /// Starts `bin serve` on port 0 with `data_dir` and `extra` flags; waits for the port file.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<BinaryServer> {
        let work = data_dir.parent().unwrap_or(data_dir).to_path_buf();
        let port_file = work.join(format!("port-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&port_file);
        let stderr_path = work.join("server.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&stderr_path)?;
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
                "--nats-addr",
                "127.0.0.1:0",
                "--relay-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--port-file",
            ])
            .arg(&port_file)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()?;
        let mut server = BinaryServer {
            child,
            grpc_addr: String::new(),
            admin_addr: String::new(),
            nats_addr: String::new(),
            relay_addr: String::new(),
            data_dir: data_dir.into(),
            stderr_path,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let v: serde_json::Value = serde_json::from_str(&text)?;
                server.grpc_addr = v["grpc"].as_str().unwrap_or_default().to_owned();
                server.admin_addr = v["admin"].as_str().unwrap_or_default().to_owned();
                server.nats_addr = v["nats"].as_str().unwrap_or_default().to_owned();
                server.relay_addr = v["relay"].as_str().unwrap_or_default().to_owned();
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("herald exited with {status} before listening:\n{}", server.log());
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "herald did not start in 30 s:\n{}", server.log());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url()).expect("valid url").connect().await.expect("connect")
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

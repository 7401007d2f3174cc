//! `herald serve`: configuration file, then `HERALD_*` environment, then flags (flags win).

use anyhow::Context;
use clap::Args;
use herald_server::auth::TokenConfig;
use herald_server::config::Config;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML; see herald.toml in the repository for every key).
    #[arg(long, short = 'c', env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./herald-data].
    #[arg(long, env = "HERALD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC listener address [default: 127.0.0.1:50051]; port 0 picks a free port.
    #[arg(long, env = "HERALD_GRPC_ADDR")]
    grpc_addr: Option<String>,
    /// Admin HTTP listener address [default: 127.0.0.1:8090].
    #[arg(long, env = "HERALD_ADMIN_ADDR")]
    admin_addr: Option<String>,
    /// NATS client-protocol listener address [default: 127.0.0.1:4222]; empty turns it off.
    #[arg(long, env = "HERALD_NATS_ADDR")]
    nats_addr: Option<String>,
    /// Realtime listener (Pulsar Relay HTTP, /ws, long-poll) [default: 127.0.0.1:8080, or PULSAR_HTTP_HOST and
    /// PULSAR_HTTP_PORT]; empty turns it off. The relay's own settings come from `[relay]` in the configuration
    /// file and the PULSAR_* environment variables.
    #[arg(long, env = "HERALD_RELAY_ADDR")]
    relay_addr: Option<String>,
    /// Dedicated Prometheus listener for GET /metrics [default: 127.0.0.1:9090]; empty turns it off (/metrics stays
    /// on the admin listener).
    #[arg(long, env = "HERALD_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// When acknowledged writes reach the disk: always | interval:<ms> | never [default: interval:50].
    #[arg(long, env = "HERALD_FSYNC")]
    fsync: Option<String>,
    /// A bearer token that may use every tenant (repeatable; HERALD_TOKENS takes a comma-separated list).
    /// Any token turns authentication on.
    #[arg(long = "token", env = "HERALD_TOKENS", value_delimiter = ',')]
    tokens: Vec<String>,
    /// Turn authentication off even if tokens are configured (development only).
    #[arg(long, env = "HERALD_NO_AUTH")]
    no_auth: bool,
    /// Require the tokens on the admin listener's API and `/ws` too (FlowMesh's HTTP API is open by default).
    #[arg(long, env = "HERALD_HTTP_AUTH")]
    http_auth: bool,
    /// Create missing streams, queues and KV stores on first write.
    #[arg(long, env = "HERALD_AUTO_CREATE")]
    auto_create: bool,
    /// A FlowMesh-format resources.json provisioning file, applied at start-up.
    #[arg(long, env = "HERALD_RESOURCES")]
    resources: Option<PathBuf>,
    /// Allow non-loopback listeners without credentials.
    #[arg(long, env = "HERALD_INSECURE")]
    insecure: bool,
    /// After binding, write the listeners' addresses as JSON to this file (for scripts and tests using port 0).
    #[arg(long, env = "HERALD_PORT_FILE")]
    port_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `herald_engine=debug` (RUST_LOG also works).
    #[arg(long, env = "HERALD_LOG", default_value = "info")]
    log: String,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<(Config, Option<PathBuf>)> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.grpc_addr {
            c.listeners.grpc = v;
        }
        if let Some(v) = self.admin_addr {
            c.listeners.admin = v;
        }
        if let Some(v) = self.nats_addr {
            c.listeners.nats = v;
        }
        // The relay's PULSAR_* variables (the contract's names) override [relay]; the listener flag wins over
        // PULSAR_HTTP_HOST/PORT.
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let env_errors = c.relay.apply_env(&vars);
        if !env_errors.is_empty() {
            anyhow::bail!("invalid relay environment:\n  - {}", env_errors.join("\n  - "));
        }
        if let Some(addr) = herald_server::relay::settings::listener_from_env(&vars, &c.listeners.relay) {
            c.listeners.relay = addr;
        }
        if let Some(v) = self.relay_addr {
            c.listeners.relay = v;
        }
        if let Some(v) = self.metrics_addr {
            c.metrics.addr = v;
        }
        if let Some(v) = self.fsync {
            c.storage.fsync = v;
        }
        for t in self.tokens.into_iter().filter(|t| !t.is_empty()) {
            c.auth.tokens.push(TokenConfig { token: t, tenants: vec!["*".into()], ..Default::default() });
        }
        if self.no_auth {
            c.auth.enabled = Some(false);
        }
        if self.http_auth {
            c.auth.http = true;
        }
        if self.auto_create {
            c.storage.auto_create = true;
        }
        if let Some(v) = self.resources {
            c.storage.resources_file = Some(v);
        }
        if self.insecure {
            c.insecure = true;
        }
        Ok((c, self.port_file))
    }
}

pub fn main(args: ServeArgs) -> anyhow::Result<()> {
    // fjall and its LSM tree log every flush at info; keep them at warn unless asked.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("fjall=warn,lsm_tree=warn,{}", args.log)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();

    raise_open_file_limit();
    let (config, port_file) = args.into_config()?;
    let validated =
        config.validate().map_err(|errors| anyhow::anyhow!("invalid configuration:\n  - {}", errors.join("\n  - ")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("herald").build()?;
    runtime.block_on(async move {
        let server = herald_server::start(validated).await?;
        if let Some(path) = port_file {
            write_port_file(&path, &server).with_context(|| format!("writing port file {}", path.display()))?;
        }
        wait_for_signal(&server).await;
        tracing::info!("shutting down");
        server.shutdown().await
    })
}

fn write_port_file(path: &std::path::Path, server: &herald_server::RunningServer) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "grpc": server.grpc_addr.to_string(),
        "admin": server.admin_addr.to_string(),
        "nats": server.nats_addr.map(|a| a.to_string()),
        "relay": server.relay_addr.map(|a| a.to_string()),
        "metrics": server.metrics_addr.map(|a| a.to_string()),
        "pid": std::process::id(),
    });
    // Write then rename, so a reader never sees a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&body)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Waits for SIGINT or SIGTERM (shut down now) or SIGUSR2 (NATS lame-duck mode first, as `nats-server --signal
/// ldm` does, then shut down).
async fn wait_for_signal(server: &herald_server::RunningServer) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut usr2 = signal(SignalKind::user_defined2()).expect("SIGUSR2 handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = usr2.recv() => {
            tracing::info!("SIGUSR2: lame-duck mode");
            tokio::select! {
                _ = server.nats_lame_duck() => {}
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
    }
}

/// Every connection (a WebSocket, a NATS client, a long poll) is a file descriptor, and the usual soft limit of
/// 1,024 is far below what one server holds; raise the soft limit to the hard one, as nats-server does.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::debug!(limit = ?limit.maximum, "raised the open-file limit"),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
    }
}

//! Server configuration: the `herald.toml` file, then `HERALD_*` environment variables and command-line flags (the
//! binary applies those two on top), then [`Config::validate`], which reports every problem at once.
//!
//! Every field has a default, so an empty file (or none) is a working development configuration. The shipped
//! `herald.toml` at the repository root documents each key.

use crate::auth::{TokenConfig, UserConfig};
use herald_engine::FsyncPolicy;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where all data lives.
    pub data_dir: PathBuf,
    pub listeners: ListenersConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub grpc: GrpcConfig,
    pub nats: NatsConfig,
    /// The relay's settings with the contract's key names (`PULSAR_*` variables override them).
    pub relay: crate::relay::settings::RelayConfig,
    /// Addressed events (EnSync): identities and delivery tuning.
    pub events: crate::events::settings::EventsConfig,
    /// The dedicated Prometheus listener (FlowMesh's `:9090/metrics`, D23).
    pub metrics: MetricsConfig,
    /// Allow binding a non-loopback address with authentication off.
    pub insecure: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenersConfig {
    pub grpc: String,
    pub admin: String,
    /// The NATS client-protocol listener; empty turns it off.
    pub nats: String,
    /// The realtime listener (Pulsar Relay HTTP, `/ws`, long-poll); empty turns it off.
    pub relay: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served besides the admin listener; empty turns this listener off.
    pub addr: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { addr: "127.0.0.1:9090".into() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `always`, `interval:<ms>` or `never`.
    pub fsync: String,
    pub segment_max_bytes: u64,
    pub auto_create: bool,
    pub resources_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Unset: on exactly when tokens are configured. `false`: off (development). `true` with no tokens: a random
    /// development token is generated and logged.
    pub enabled: Option<bool>,
    pub tokens: Vec<TokenConfig>,
    /// Users with passwords (NATS `user`/`pass`).
    pub users: Vec<UserConfig>,
    /// Require the same tokens on the admin listener's API and `/ws` (FlowMesh's HTTP API is open: off by default).
    pub http: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Largest request message accepted (FlowMesh clients assume at least 4 MiB).
    pub max_message_bytes: usize,
}

/// The NATS listener's limits and timers. Key names follow nats-server's configuration (compat §1.18), so one test
/// can configure both; durations are written like `"2m"`, `"10s"`, `"500ms"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Advertised as `server_name` in INFO.
    pub server_name: String,
    pub max_payload: usize,
    /// Outbound bytes a connection may have waiting before it is cut off as a slow consumer.
    pub max_pending: usize,
    pub max_control_line: usize,
    pub write_deadline: String,
    pub ping_interval: String,
    pub ping_max: u32,
    /// Per connection; 0 = unlimited.
    pub max_subscriptions: usize,
    pub max_connections: usize,
    pub auth_timeout: String,
    pub lame_duck_duration: String,
    pub lame_duck_grace_period: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            server_name: "herald".into(),
            max_payload: 1 << 20,
            max_pending: 64 << 20,
            max_control_line: 4096,
            write_deadline: "10s".into(),
            ping_interval: "2m".into(),
            ping_max: 2,
            max_subscriptions: 0,
            max_connections: 65536,
            auth_timeout: "2s".into(),
            lame_duck_duration: "2m".into(),
            lame_duck_grace_period: "10s".into(),
        }
    }
}

/// Parses `"500ms"`, `"10s"`, `"2m"`, `"1h"` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like \"10s\" or \"500ms\""))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit (use ms, s, m or h)")),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// The NATS settings, parsed.
#[derive(Clone, Debug)]
pub struct NatsLimits {
    pub server_name: String,
    pub max_payload: usize,
    pub max_pending: usize,
    pub max_control_line: usize,
    pub write_deadline: std::time::Duration,
    pub ping_interval: std::time::Duration,
    pub ping_max: u32,
    pub max_subscriptions: usize,
    pub max_connections: usize,
    pub auth_timeout: std::time::Duration,
    pub lame_duck_duration: std::time::Duration,
    pub lame_duck_grace_period: std::time::Duration,
}

impl NatsConfig {
    fn limits(&self, errors: &mut Vec<String>) -> NatsLimits {
        let mut dur = |key: &str, v: &str, min_ms: u64| {
            let d = parse_duration(v).unwrap_or_else(|e| {
                errors.push(format!("nats.{key}: {e}"));
                std::time::Duration::from_secs(1)
            });
            if d < std::time::Duration::from_millis(min_ms) {
                errors.push(format!("nats.{key}: must be at least {min_ms} ms"));
            }
            d
        };
        let limits = NatsLimits {
            server_name: self.server_name.clone(),
            max_payload: self.max_payload,
            max_pending: self.max_pending,
            max_control_line: self.max_control_line,
            write_deadline: dur("write_deadline", &self.write_deadline, 1),
            ping_interval: dur("ping_interval", &self.ping_interval, 10),
            ping_max: self.ping_max,
            max_subscriptions: self.max_subscriptions,
            max_connections: self.max_connections,
            auth_timeout: dur("auth_timeout", &self.auth_timeout, 1),
            lame_duck_duration: dur("lame_duck_duration", &self.lame_duck_duration, 0),
            lame_duck_grace_period: dur("lame_duck_grace_period", &self.lame_duck_grace_period, 0),
        };
        if self.max_payload == 0 {
            errors.push("nats.max_payload: must be positive".into());
        }
        if self.max_payload > self.max_pending {
            errors.push("nats.max_payload: cannot exceed nats.max_pending (as in nats-server)".into());
        }
        if self.max_control_line < 64 {
            errors.push("nats.max_control_line: must be at least 64".into());
        }
        if self.max_connections == 0 {
            errors.push("nats.max_connections: must be positive".into());
        }
        limits
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./herald-data"),
            listeners: ListenersConfig::default(),
            storage: StorageConfig::default(),
            auth: AuthConfig::default(),
            grpc: GrpcConfig::default(),
            nats: NatsConfig::default(),
            relay: Default::default(),
            events: Default::default(),
            metrics: MetricsConfig::default(),
            insecure: false,
        }
    }
}

impl Default for ListenersConfig {
    fn default() -> Self {
        ListenersConfig {
            grpc: "127.0.0.1:50051".into(),
            admin: "127.0.0.1:8090".into(),
            nats: "127.0.0.1:4222".into(),
            relay: "127.0.0.1:8080".into(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            fsync: FsyncPolicy::default().to_string(),
            segment_max_bytes: 128 << 20,
            auto_create: false,
            resources_file: None,
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig { max_message_bytes: 16 << 20 }
    }
}

/// A configuration that passed validation, with parsed values.
#[derive(Clone, Debug)]
pub struct Validated {
    pub config: Config,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// `None`: the NATS listener is off.
    pub nats_addr: Option<SocketAddr>,
    pub nats: NatsLimits,
    pub fsync: FsyncPolicy,
    /// `None`: the relay listener is off.
    pub relay_addr: Option<SocketAddr>,
    pub relay: crate::relay::settings::RelaySettings,
    pub events: herald_engine::EventsOptions,
    /// `None`: the dedicated metrics listener is off (`/metrics` stays on the admin listener).
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// Reads a TOML file. Unknown keys are errors, so a typo never silently falls back to a default.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid configuration {}: {e}", path.display()))
    }

    /// Checks everything and returns all problems together.
    pub fn validate(self) -> Result<Validated, Vec<String>> {
        let mut errors = Vec::new();
        let addr = |what: &str, s: &str, errors: &mut Vec<String>| -> SocketAddr {
            s.parse().unwrap_or_else(|_| {
                errors.push(format!("listeners.{what}: {s:?} is not an address like 127.0.0.1:50051"));
                SocketAddr::from(([127, 0, 0, 1], 0))
            })
        };
        let grpc_addr = addr("grpc", &self.listeners.grpc, &mut errors);
        let admin_addr = addr("admin", &self.listeners.admin, &mut errors);
        let nats_addr =
            (!self.listeners.nats.trim().is_empty()).then(|| addr("nats", &self.listeners.nats, &mut errors));
        let nats = self.nats.limits(&mut errors);
        let relay_addr =
            (!self.listeners.relay.trim().is_empty()).then(|| addr("relay", &self.listeners.relay, &mut errors));
        let relay = match relay_addr {
            Some(a) => self.relay.validate(a, self.insecure, &mut errors),
            // Off: the guard has nothing to guard.
            None => self.relay.validate(SocketAddr::from(([127, 0, 0, 1], 0)), true, &mut Vec::new()),
        };
        let events = self.events.options(&mut errors);
        let metrics_addr = (!self.metrics.addr.trim().is_empty()).then(|| {
            self.metrics.addr.parse().unwrap_or_else(|_| {
                errors.push(format!("metrics.addr: {:?} is not an address like 127.0.0.1:9090", self.metrics.addr));
                SocketAddr::from(([127, 0, 0, 1], 0))
            })
        });
        let fsync = self.storage.fsync.parse::<FsyncPolicy>().unwrap_or_else(|e| {
            errors.push(format!("storage.fsync: {e}"));
            FsyncPolicy::default()
        });
        if self.storage.segment_max_bytes < 4096 {
            errors.push("storage.segment_max_bytes: must be at least 4096".into());
        }
        if self.grpc.max_message_bytes < (4 << 20) {
            errors.push(
                "grpc.max_message_bytes: must be at least 4194304 (4 MiB), the size FlowMesh clients assume".into(),
            );
        }
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if t.token.trim().is_empty() {
                errors.push(format!("auth.tokens[{i}]: token cannot be empty"));
            }
        }
        for (i, u) in self.auth.users.iter().enumerate() {
            if u.user.trim().is_empty() || u.password.is_empty() {
                errors.push(format!("auth.users[{i}]: user and password cannot be empty"));
            }
        }
        let auth_off = self.auth.enabled == Some(false)
            || (self.auth.enabled.is_none() && self.auth.tokens.is_empty() && self.auth.users.is_empty());
        if auth_off && self.auth.http {
            errors.push("auth.http: HTTP authentication needs authentication on: configure auth tokens".into());
        }
        if auth_off && !self.insecure {
            let listeners = [
                ("listeners.grpc", Some(grpc_addr)),
                ("listeners.admin", Some(admin_addr)),
                ("listeners.nats", nats_addr),
                ("metrics.addr", metrics_addr),
            ];
            for (what, a) in listeners {
                let Some(a) = a else { continue };
                if !a.ip().is_loopback() {
                    errors.push(format!(
                        "{what}: refusing to listen on {a} with authentication off; configure auth tokens or pass --insecure"
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(Validated {
                config: self,
                grpc_addr,
                admin_addr,
                nats_addr,
                nats,
                fsync,
                relay_addr,
                relay,
                events,
                metrics_addr,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_accepts_the_defaults() {
        let v = Config::default().validate().unwrap();
        assert_eq!(v.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(v.fsync, FsyncPolicy::default());
    }

    #[test]
    fn validate_rejects_public_bind_without_credentials_and_reports_everything() {
        let mut c = Config::default();
        c.listeners.grpc = "0.0.0.0:50051".into();
        c.storage.fsync = "sometimes".into();
        let errs = c.clone().validate().unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("--insecure")));
        c.storage.fsync = "always".into();
        c.insecure = true;
        assert!(c.clone().validate().is_ok());
        c.insecure = false;
        c.auth.tokens.push(TokenConfig { token: "t".into(), ..Default::default() });
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_shipped_herald_toml_is_valid_and_matches_the_defaults() {
        let shipped: Config = toml::from_str(include_str!("../../../herald.toml")).expect("herald.toml parses");
        let defaults = Config::default();
        assert_eq!(shipped.data_dir, defaults.data_dir);
        assert_eq!(shipped.listeners.grpc, defaults.listeners.grpc);
        assert_eq!(shipped.listeners.admin, defaults.listeners.admin);
        assert_eq!(shipped.storage.fsync, defaults.storage.fsync);
        assert_eq!(shipped.storage.segment_max_bytes, defaults.storage.segment_max_bytes);
        assert_eq!(shipped.grpc.max_message_bytes, defaults.grpc.max_message_bytes);
        assert_eq!(shipped.listeners.nats, defaults.listeners.nats);
        assert_eq!(format!("{:?}", shipped.nats), format!("{:?}", defaults.nats));
        assert_eq!(shipped.listeners.relay, defaults.listeners.relay);
        // Every [relay] key is commented out: the relay starts with its development defaults.
        assert_eq!(shipped.relay, defaults.relay);
        assert_eq!(shipped.events, defaults.events);
        assert_eq!(shipped.metrics.addr, defaults.metrics.addr);
        assert!(shipped.validate().is_ok());
    }

    #[test]
    fn durations_and_nats_limits_are_checked() {
        assert_eq!(parse_duration("500ms").unwrap(), std::time::Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), std::time::Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), std::time::Duration::from_secs(3));
        assert!(parse_duration("soon").is_err() && parse_duration("5 parsecs").is_err());
        let mut c = Config::default();
        c.nats.max_payload = 100 << 20;
        c.nats.ping_interval = "often".into();
        let errs = c.validate().unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        let mut c = Config::default();
        c.listeners.nats = String::new();
        assert_eq!(c.validate().unwrap().nats_addr, None);
    }

    #[test]
    fn the_metrics_listener_is_on_by_default_and_can_be_turned_off() {
        let v = Config::default().validate().unwrap();
        assert_eq!(v.metrics_addr, Some(SocketAddr::from(([127, 0, 0, 1], 9090))));
        let c: Config = toml::from_str("[metrics]\naddr = \"\"\n").unwrap();
        assert_eq!(c.validate().unwrap().metrics_addr, None);
        let c: Config = toml::from_str("[metrics]\naddr = \"nine\"\n").unwrap();
        assert!(c.validate().unwrap_err()[0].starts_with("metrics.addr:"));
        // Metrics are unauthenticated: a public address needs credentials or --insecure, as the others do.
        let c: Config = toml::from_str("[metrics]\naddr = \"0.0.0.0:9090\"\n").unwrap();
        assert!(c.validate().unwrap_err()[0].contains("--insecure"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("data_dir = \"x\"\n[storage]\nfsinc = \"always\"\n").is_err());
        let c: Config = toml::from_str("[storage]\nfsync = \"always\"\n").unwrap();
        assert_eq!(c.storage.fsync, "always");
    }
}

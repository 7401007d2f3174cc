//! Server configuration: the `herald.toml` file, then `HERALD_*` environment variables and command-line flags (the
//! binary applies those two on top), then [`Config::validate`], which reports every problem at once.
//!
//! Every field has a default, so an empty file (or none) is a working development configuration. The shipped
//! `herald.toml` at the repository root documents each key.

use crate::auth::TokenConfig;
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
    /// Allow binding a non-loopback address with authentication off.
    pub insecure: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenersConfig {
    pub grpc: String,
    pub admin: String,
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
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Largest request message accepted (FlowMesh clients assume at least 4 MiB).
    pub max_message_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./herald-data"),
            listeners: ListenersConfig::default(),
            storage: StorageConfig::default(),
            auth: AuthConfig::default(),
            grpc: GrpcConfig::default(),
            insecure: false,
        }
    }
}

impl Default for ListenersConfig {
    fn default() -> Self {
        ListenersConfig { grpc: "127.0.0.1:50051".into(), admin: "127.0.0.1:8090".into() }
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
    pub fsync: FsyncPolicy,
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
        let auth_off = self.auth.enabled == Some(false) || (self.auth.enabled.is_none() && self.auth.tokens.is_empty());
        if auth_off && !self.insecure {
            for (what, a) in [("grpc", grpc_addr), ("admin", admin_addr)] {
                if !a.ip().is_loopback() {
                    errors.push(format!(
                        "listeners.{what}: refusing to listen on {a} with authentication off; configure auth tokens or pass --insecure"
                    ));
                }
            }
        }
        if errors.is_empty() { Ok(Validated { config: self, grpc_addr, admin_addr, fsync }) } else { Err(errors) }
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
        assert!(shipped.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("data_dir = \"x\"\n[storage]\nfsinc = \"always\"\n").is_err());
        let c: Config = toml::from_str("[storage]\nfsync = \"always\"\n").unwrap();
        assert_eq!(c.storage.fsync, "always");
    }
}

//! The relay's settings (compat/pulsar-relay.md §7): the `[relay]` table of `herald.toml` with the contract's key
//! names, overridden by the contract's `PULSAR_*` environment variables (and `RATELIMIT_ENABLED`), then checked by
//! the same start-up guard as the real server.
//!
//! One difference, so that `herald serve` still starts with no configuration at all: when nothing relay-related is
//! configured (no key in `[relay]`, no `PULSAR_*` variable) and the listener is on loopback, the relay runs with
//! *development defaults* — a random JWT secret, a bootstrap admin `admin` with a random password printed in the
//! log, and localhost as the only trusted host and origin. As soon as any relay setting is given, the contract's
//! guard applies in full.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The placeholder secret the real server ships; starting with it is refused.
pub const PLACEHOLDER_SECRET: &str = "your-secret-key-here-change-in-production";
const MIN_SECRET_LEN: usize = 32;

/// `[relay]` in herald.toml. Every key is optional; unset keys take the contract's defaults.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    pub storage_backend: Option<String>,
    pub max_messages_per_topic: Option<u64>,
    pub persistent_tier_retention: Option<u64>,
    pub log_level: Option<String>,
    pub jwt_secret_key: Option<String>,
    pub allow_insecure_defaults: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
    pub trusted_hosts: Option<Vec<String>>,
    pub ws_max_per_user: Option<u64>,
    pub ws_idle_seconds: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub access_token_expire_minutes: Option<u64>,
    pub refresh_token_ttl_days: Option<u64>,
    pub device_code_ttl_seconds: Option<u64>,
    pub device_code_poll_interval: Option<u64>,
    pub bootstrap_admin_username: Option<String>,
    pub bootstrap_admin_password: Option<String>,
    pub bootstrap_admin_email: Option<String>,
    /// `RATELIMIT_ENABLED` in the contract.
    pub ratelimit_enabled: Option<bool>,
    /// [HERALD] accept `?token=` on `/ws` (the benchmark suite needs it).
    pub ws_allow_query_token: Option<bool>,
    /// Herald: newest messages per topic kept in memory for history and catch-up reads.
    pub hot_messages: Option<usize>,
    /// Herald: bytes a WebSocket may have queued before it is closed as a slow consumer.
    pub ws_max_pending_bytes: Option<usize>,
    /// Accepted for compatibility (the real server ignores them too).
    pub app_name: Option<String>,
    pub valkey_host: Option<String>,
    pub valkey_port: Option<u16>,
    pub valkey_use_tls: Option<bool>,
    pub valkey_username: Option<String>,
    pub valkey_password: Option<String>,
    pub valkey_ca_path: Option<String>,
}

/// The relay listener address from `PULSAR_HTTP_HOST` / `PULSAR_HTTP_PORT`, when either is set.
pub fn listener_from_env(vars: &[(String, String)], current: &str) -> Option<String> {
    let get = |k: &str| vars.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let host = get("PULSAR_HTTP_HOST");
    let port = get("PULSAR_HTTP_PORT");
    if host.is_none() && port.is_none() {
        return None;
    }
    let (cur_host, cur_port) = current.rsplit_once(':').unwrap_or(("127.0.0.1", "8080"));
    let host = host.unwrap_or_else(|| cur_host.trim_matches(['[', ']']).to_string());
    let port = port.unwrap_or_else(|| cur_port.to_string());
    Some(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

impl RelayConfig {
    /// True when any setting is given (then the contract's start-up guard applies).
    pub fn is_configured(&self) -> bool {
        *self != RelayConfig::default()
    }

    /// Applies `PULSAR_*` variables (names case-insensitive, list values as JSON) and `RATELIMIT_ENABLED`.
    /// Returns a message for every value that does not parse.
    pub fn apply_env(&mut self, vars: &[(String, String)]) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, value) in vars {
            let upper = name.to_ascii_uppercase();
            let key = if upper == "RATELIMIT_ENABLED" {
                "ratelimit_enabled".to_string()
            } else if let Some(k) = upper.strip_prefix("PULSAR_") {
                k.to_ascii_lowercase()
            } else {
                continue;
            };
            if let Err(e) = self.set(&key, value) {
                errors.push(format!("{upper}: {e}"));
            }
        }
        errors
    }

    fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        fn num<T: std::str::FromStr>(v: &str) -> Result<Option<T>, String> {
            v.trim().parse().map(Some).map_err(|_| format!("{v:?} is not a number"))
        }
        fn boolean(v: &str) -> Result<Option<bool>, String> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
                "0" | "false" | "no" | "off" | "f" | "n" => Ok(Some(false)),
                _ => Err(format!("{v:?} is not a boolean")),
            }
        }
        fn list(v: &str) -> Result<Option<Vec<String>>, String> {
            serde_json::from_str(v).map(Some).map_err(|_| format!("{v:?} is not a JSON list of strings"))
        }
        let s = || Some(v.to_string());
        match key {
            "storage_backend" => self.storage_backend = s(),
            "max_messages_per_topic" => self.max_messages_per_topic = num(v)?,
            "persistent_tier_retention" => self.persistent_tier_retention = num(v)?,
            "log_level" => self.log_level = s(),
            "jwt_secret_key" => self.jwt_secret_key = s(),
            "allow_insecure_defaults" => self.allow_insecure_defaults = boolean(v)?,
            "allowed_origins" => self.allowed_origins = list(v)?,
            "trusted_hosts" => self.trusted_hosts = list(v)?,
            "ws_max_per_user" => self.ws_max_per_user = num(v)?,
            "ws_idle_seconds" => self.ws_idle_seconds = num(v)?,
            "max_body_bytes" => self.max_body_bytes = num(v)?,
            "access_token_expire_minutes" => self.access_token_expire_minutes = num(v)?,
            "refresh_token_ttl_days" => self.refresh_token_ttl_days = num(v)?,
            "device_code_ttl_seconds" => self.device_code_ttl_seconds = num(v)?,
            "device_code_poll_interval" => self.device_code_poll_interval = num(v)?,
            "bootstrap_admin_username" => self.bootstrap_admin_username = s(),
            "bootstrap_admin_password" => self.bootstrap_admin_password = s(),
            "bootstrap_admin_email" => self.bootstrap_admin_email = s(),
            "ratelimit_enabled" => self.ratelimit_enabled = boolean(v)?,
            "ws_allow_query_token" => self.ws_allow_query_token = boolean(v)?,
            "hot_messages" => self.hot_messages = num(v)?,
            "ws_max_pending_bytes" => self.ws_max_pending_bytes = num(v)?,
            "app_name" => self.app_name = s(),
            "valkey_host" => self.valkey_host = s(),
            "valkey_port" => self.valkey_port = num(v)?,
            "valkey_use_tls" => self.valkey_use_tls = boolean(v)?,
            "valkey_username" => self.valkey_username = s(),
            "valkey_password" => self.valkey_password = s(),
            "valkey_ca_path" => self.valkey_ca_path = s(),
            // Listener address (read by the binary), config-file path and OIDC settings: not relay settings here.
            _ => {}
        }
        Ok(())
    }

    /// Resolves defaults and runs the start-up guard (§7.3). `addr` is the relay listener's address.
    pub fn validate(&self, addr: SocketAddr, insecure: bool, errors: &mut Vec<String>) -> RelaySettings {
        let dev = !self.is_configured();
        if dev && !addr.ip().is_loopback() && !insecure {
            errors.push(format!(
                "listeners.relay: refusing to listen on {addr} with the relay's development defaults; set PULSAR_JWT_SECRET_KEY, PULSAR_BOOTSTRAP_ADMIN_PASSWORD, PULSAR_TRUSTED_HOSTS and PULSAR_ALLOWED_ORIGINS (or [relay] in herald.toml)"
            ));
        }
        let range = |name: &str, v: Option<u64>, default: u64, min: u64, max: u64, errors: &mut Vec<String>| {
            let v = v.unwrap_or(default);
            if v < min || v > max {
                errors.push(format!("relay.{name}: must be between {min} and {max}, got {v}"));
            }
            v.clamp(min, max)
        };
        let backend = self.storage_backend.clone().unwrap_or_else(|| "memory".into()).to_ascii_lowercase();
        if backend != "memory" && backend != "valkey" {
            errors.push(format!("relay.storage_backend: must be memory or valkey, got {backend:?}"));
        }
        let insecure_defaults = self.allow_insecure_defaults.unwrap_or(false);
        let mut settings = RelaySettings {
            jwt_secret: self.jwt_secret_key.clone().unwrap_or_else(|| PLACEHOLDER_SECRET.into()),
            allowed_origins: self.allowed_origins.clone().unwrap_or_default(),
            trusted_hosts: self.trusted_hosts.clone().unwrap_or_default(),
            ws_max_per_user: range("ws_max_per_user", self.ws_max_per_user, 10, 1, u64::MAX, errors) as usize,
            ws_idle: Duration::from_secs(range("ws_idle_seconds", self.ws_idle_seconds, 60, 5, 86_400, errors)),
            max_body_bytes: range("max_body_bytes", self.max_body_bytes, 1_048_576, 1024, u64::MAX, errors),
            access_token_ttl: Duration::from_secs(
                60 * range("access_token_expire_minutes", self.access_token_expire_minutes, 10, 1, 120, errors),
            ),
            refresh_token_ttl: Duration::from_secs(
                86_400 * range("refresh_token_ttl_days", self.refresh_token_ttl_days, 90, 1, 365, errors),
            ),
            bootstrap_admin: None,
            ratelimit_enabled: self.ratelimit_enabled.unwrap_or(true),
            ws_allow_query_token: self.ws_allow_query_token.unwrap_or(false),
            max_messages_per_topic: range(
                "max_messages_per_topic",
                self.max_messages_per_topic,
                1_000_000,
                1,
                u64::MAX,
                errors,
            ),
            hot_messages: self.hot_messages.unwrap_or(1024),
            ws_max_pending_bytes: self.ws_max_pending_bytes.unwrap_or(8 << 20).max(64 << 10),
            development: dev,
        };
        if let Some(level) = &self.log_level
            && !["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&level.to_ascii_uppercase().as_str())
        {
            errors.push(format!("relay.log_level: must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level:?}"));
        }
        if let (Some(user), Some(password)) = (&self.bootstrap_admin_username, &self.bootstrap_admin_password) {
            let email = self.bootstrap_admin_email.clone().unwrap_or_else(|| format!("{user}@example.com"));
            settings.bootstrap_admin =
                Some(BootstrapAdmin { username: user.clone(), password: password.clone(), email });
        }
        if dev {
            // Development defaults: usable on this machine, useless anywhere else.
            settings.jwt_secret = herald_types::id::new_id() + &herald_types::id::new_id();
            let password = herald_types::id::new_id()[..16].to_string();
            settings.bootstrap_admin =
                Some(BootstrapAdmin { username: "admin".into(), password, email: "admin@example.com".into() });
            settings.trusted_hosts = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
            let port = addr.port();
            settings.allowed_origins = vec![format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}")];
            return settings;
        }
        if insecure_defaults {
            tracing::warn!(
                "PULSAR_ALLOW_INSECURE_DEFAULTS=1 — relay start-up secret guard bypassed. Never run like this in production."
            );
            return settings;
        }
        if settings.jwt_secret == PLACEHOLDER_SECRET {
            errors.push(
                "Refusing to start: PULSAR_JWT_SECRET_KEY is the shipped default value. Generate a strong secret and set PULSAR_JWT_SECRET_KEY. To bypass for local-dev/tests set PULSAR_ALLOW_INSECURE_DEFAULTS=1.".into(),
            );
        } else if settings.jwt_secret.chars().count() < MIN_SECRET_LEN {
            errors
                .push(format!("Refusing to start: PULSAR_JWT_SECRET_KEY is shorter than {MIN_SECRET_LEN} characters."));
        }
        if self.bootstrap_admin_password.as_deref().is_none_or(str::is_empty) {
            errors.push(
                "Refusing to start: PULSAR_BOOTSTRAP_ADMIN_PASSWORD is not set. Set it (and PULSAR_BOOTSTRAP_ADMIN_USERNAME) to create the first admin.".into(),
            );
        }
        if backend == "valkey" && self.valkey_password.as_deref().is_none_or(str::is_empty) {
            errors.push("Refusing to start: PULSAR_VALKEY_PASSWORD is not set while PULSAR_STORAGE_BACKEND=valkey. The Valkey instance must require authentication.".into());
        }
        if settings.allowed_origins.is_empty() {
            errors.push("Refusing to start: PULSAR_ALLOWED_ORIGINS is empty. Set the origins browsers will use (e.g. PULSAR_ALLOWED_ORIGINS='[\"https://relay.example.com\"]').".into());
        }
        if settings.trusted_hosts.is_empty() {
            errors.push("Refusing to start: PULSAR_TRUSTED_HOSTS is empty. Set the host names clients use (e.g. PULSAR_TRUSTED_HOSTS='[\"relay.example.com\"]').".into());
        }
        if backend == "valkey" {
            errors.push("relay.storage_backend: Herald keeps relay topics in its own embedded storage (herald-log and fjall); the Valkey backend is not available in this build. Use PULSAR_STORAGE_BACKEND=memory (Herald's embedded storage is durable either way).".into());
        }
        settings
    }
}

#[derive(Clone, Debug)]
pub struct BootstrapAdmin {
    pub username: String,
    pub password: String,
    pub email: String,
}

/// Resolved relay settings.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    pub jwt_secret: String,
    pub allowed_origins: Vec<String>,
    pub trusted_hosts: Vec<String>,
    pub ws_max_per_user: usize,
    pub ws_idle: Duration,
    pub max_body_bytes: u64,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub ratelimit_enabled: bool,
    pub ws_allow_query_token: bool,
    pub max_messages_per_topic: u64,
    pub hot_messages: usize,
    pub ws_max_pending_bytes: usize,
    /// Running with development defaults (nothing configured).
    pub development: bool,
}

impl RelaySettings {
    /// Settings for tests: the contract's defaults with a fixed secret and admin `admin`/`12345678`.
    pub fn for_tests() -> RelaySettings {
        let mut c = RelayConfig {
            jwt_secret_key: Some("test-secret-test-secret-test-secret-0123".into()),
            bootstrap_admin_username: Some("admin".into()),
            bootstrap_admin_password: Some("12345678".into()),
            trusted_hosts: Some(vec!["localhost".into(), "127.0.0.1".into()]),
            allowed_origins: Some(vec!["http://localhost:8080".into()]),
            ..RelayConfig::default()
        };
        c.ratelimit_enabled = Some(false);
        let mut errors = Vec::new();
        let s = c.validate(SocketAddr::from(([127, 0, 0, 1], 0)), false, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn nothing_configured_gives_development_defaults() {
        let mut errors = Vec::new();
        let s = RelayConfig::default().validate(addr(), false, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(s.development);
        assert!(s.jwt_secret.len() >= 32);
        assert_eq!(s.bootstrap_admin.unwrap().username, "admin");
        let mut errors = Vec::new();
        RelayConfig::default().validate("0.0.0.0:8080".parse().unwrap(), false, &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn the_guard_names_the_offending_variable() {
        let mut c = RelayConfig::default();
        assert!(c.apply_env(&vars(&[("PULSAR_JWT_SECRET_KEY", PLACEHOLDER_SECRET)])).is_empty());
        let mut errors = Vec::new();
        c.validate(addr(), false, &mut errors);
        let all = errors.join("\n");
        for name in [
            "PULSAR_JWT_SECRET_KEY",
            "PULSAR_BOOTSTRAP_ADMIN_PASSWORD",
            "PULSAR_ALLOWED_ORIGINS",
            "PULSAR_TRUSTED_HOSTS",
        ] {
            assert!(all.contains(name), "{name} missing from {all}");
        }
        c.allow_insecure_defaults = Some(true);
        let mut errors = Vec::new();
        c.validate(addr(), false, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn env_values_parse_like_the_contract() {
        let mut c = RelayConfig::default();
        let errors = c.apply_env(&vars(&[
            ("pulsar_trusted_hosts", r#"["localhost","127.0.0.1"]"#),
            ("PULSAR_WS_MAX_PER_USER", "100"),
            ("RATELIMIT_ENABLED", "false"),
            ("PULSAR_WS_ALLOW_QUERY_TOKEN", "true"),
            ("PULSAR_WS_IDLE_SECONDS", "soon"),
            ("HOME", "/root"),
        ]));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(c.trusted_hosts.as_deref(), Some(&["localhost".to_string(), "127.0.0.1".to_string()][..]));
        assert_eq!(c.ws_max_per_user, Some(100));
        assert_eq!(c.ratelimit_enabled, Some(false));
        assert_eq!(c.ws_allow_query_token, Some(true));
        assert_eq!(
            listener_from_env(&vars(&[("PULSAR_HTTP_PORT", "9000")]), "127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:9000")
        );
    }
}

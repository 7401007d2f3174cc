//! The INFO a client is greeted with (§1.3) and the CONNECT options it answers with (§1.4).

use serde::{Deserialize, Serialize};

/// The NATS feature level Herald emulates, advertised as `version` (clients parse it as semver).
pub const NATS_VERSION: &str = "2.10.0";

/// INFO's fields. Keys that do not apply are omitted, never `null`: async-nats cannot decode a `null` there.
#[derive(Clone, Debug, Serialize)]
pub struct Info {
    pub server_id: String,
    pub server_name: String,
    pub version: &'static str,
    pub proto: u8,
    pub go: &'static str,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub max_payload: usize,
    pub client_id: u64,
    pub client_ip: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ldm: bool,
    /// Herald's own version, an extra key clients ignore.
    pub herald_version: &'static str,
}

impl Info {
    /// `INFO {...}\r\n`, one line.
    pub fn line(&self) -> Vec<u8> {
        let mut out = b"INFO ".to_vec();
        serde_json::to_writer(&mut out, self).expect("INFO serializes");
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// A server id in the reference's style: `N` and 55 characters of upper-case base32.
pub fn new_server_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id = String::with_capacity(56);
    id.push('N');
    for _ in 0..55 {
        id.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    id
}

/// CONNECT options. A key set to `null` is treated as absent (async-nats sends `null` for every unset string);
/// unknown keys are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Connect {
    pub verbose: Option<bool>,
    pub pedantic: Option<bool>,
    pub echo: Option<bool>,
    pub headers: Option<bool>,
    pub no_responders: Option<bool>,
    pub protocol: Option<i64>,
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
}

/// The options in force on a connection. Before any CONNECT they are the protocol's defaults (§1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub verbose: bool,
    pub pedantic: bool,
    pub echo: bool,
    pub headers: bool,
    pub no_responders: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { verbose: true, pedantic: true, echo: true, headers: false, no_responders: false }
    }
}

impl Connect {
    pub fn options(&self) -> Options {
        let d = Options::default();
        Options {
            verbose: self.verbose.unwrap_or(d.verbose),
            pedantic: self.pedantic.unwrap_or(d.pedantic),
            echo: self.echo.unwrap_or(d.echo),
            headers: self.headers.unwrap_or(d.headers),
            no_responders: self.no_responders.unwrap_or(d.no_responders),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_one_line_without_nulls_and_with_integers() {
        let info = Info {
            server_id: new_server_id(),
            server_name: "herald".into(),
            version: NATS_VERSION,
            proto: 1,
            go: "herald",
            host: "127.0.0.1".into(),
            port: 4222,
            headers: true,
            max_payload: 1048576,
            client_id: 7,
            client_ip: "127.0.0.1".into(),
            auth_required: false,
            ldm: false,
            herald_version: env!("CARGO_PKG_VERSION"),
        };
        let line = String::from_utf8(info.line()).unwrap();
        assert!(line.starts_with("INFO {\"server_id\":\"N") && line.ends_with("}\r\n"));
        assert_eq!(line.matches("\r\n").count(), 1);
        assert!(!line.contains("null") && !line.contains("auth_required") && !line.contains("ldm"));
        assert!(line.contains("\"max_payload\":1048576,") && line.contains("\"proto\":1,"));
        assert_eq!(info.server_id.len(), 56);
    }

    #[test]
    fn connect_nulls_are_absent_and_unknown_keys_ignored() {
        let c: Connect = serde_json::from_str(
            r#"{"verbose":false,"pedantic":false,"jwt":null,"nkey":null,"sig":null,"name":null,"echo":true,"lang":"rust","version":"0.51.0","protocol":1,"tls_required":false,"user":null,"pass":null,"auth_token":null,"headers":true,"no_responders":true}"#,
        )
        .unwrap();
        assert_eq!(
            c.options(),
            Options { verbose: false, pedantic: false, echo: true, headers: true, no_responders: true }
        );
        assert!(c.user.is_none() && c.auth_token.is_none());
        let d: Connect = serde_json::from_str(r#"{"protocol":1}"#).unwrap();
        assert_eq!(d.options(), Options::default());
    }
}

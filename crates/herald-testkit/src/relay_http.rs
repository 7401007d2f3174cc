//! A minimal HTTP/1.1 client for relay tests: one request per connection, `Host: localhost` (a trusted host in
//! [`crate::relay_test_config`]), the whole answer read to the end.

use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request. `ctype` may be empty (no Content-Type).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    ctype: &str,
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !ctype.is_empty() {
        req.push_str(&format!("Content-Type: {ctype}\r\n"));
    }
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok(Reply { status, body: body.to_string() })
}

/// POST a JSON body with a bearer token.
pub async fn post_json(addr: SocketAddr, path: &str, token: &str, body: &Value) -> std::io::Result<Reply> {
    http(addr, "POST", path, Some(token), "application/json", body.to_string().as_bytes()).await
}

/// Logs in as the test admin (`admin`/`12345678`) and returns the token response.
pub async fn login_admin(addr: SocketAddr) -> Value {
    let r = http(
        addr,
        "POST",
        "/auth/login",
        None,
        "application/x-www-form-urlencoded",
        b"username=admin&password=12345678&grant_type=password",
    )
    .await
    .expect("login request");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

//! Relay requests on [`crate::http1`]: its `Host: localhost` is a trusted host in [`crate::relay_test_config`].

pub use crate::http1::Reply;
use serde_json::Value;
use std::net::SocketAddr;

/// Sends one request. `ctype` may be empty (no Content-Type).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    ctype: &str,
    body: &[u8],
) -> std::io::Result<Reply> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if !ctype.is_empty() {
        headers.push(("Content-Type", ctype));
    }
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    crate::http1::request(addr, method, path, &headers, body).await
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

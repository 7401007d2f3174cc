//! `herald relay publish`: one message to a relay topic over the relay's HTTP API (compat/pulsar-relay.md §2.4),
//! logging in first when given a user name and password.

use super::print_json;
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};

#[derive(Subcommand)]
pub enum RelayCommand {
    /// Publish a JSON object to a topic (created on first publish); prints the message id.
    Publish(PublishArgs),
}

#[derive(Args)]
pub struct PublishArgs {
    pub topic: String,
    /// The payload: a JSON object, e.g. '{"price": 42}'.
    pub payload: String,
    /// `key=value` metadata (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// The relay listener (http:// only).
    #[arg(long, env = "HERALD_RELAY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An access token (JWT); otherwise `--user` and `--password` log in first.
    #[arg(long, env = "HERALD_RELAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, env = "HERALD_RELAY_USER")]
    pub user: Option<String>,
    #[arg(long, env = "HERALD_RELAY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn main(cmd: RelayCommand) -> anyhow::Result<()> {
    match cmd {
        RelayCommand::Publish(a) => super::run(publish(a)),
    }
}

async fn publish(a: PublishArgs) -> anyhow::Result<()> {
    let payload: serde_json::Value = serde_json::from_str(&a.payload).context("the payload must be JSON")?;
    if !payload.is_object() {
        bail!("the payload must be a JSON object");
    }
    let metadata = super::parse_pairs(&a.metadata)?;
    let base = a.url.trim_end_matches('/');
    let authority = base.strip_prefix("http://").context("--url must start with http://")?.to_string();
    let token = match (&a.token, &a.user, &a.password) {
        (Some(t), _, _) => t.clone(),
        (None, Some(u), Some(p)) => login(&authority, u, p).await?,
        _ => bail!("give --token, or --user and --password"),
    };
    let mut body = serde_json::json!({"topic": a.topic, "payload": payload});
    if !metadata.is_empty() {
        body["metadata"] = serde_json::to_value(metadata)?;
    }
    let (status, answer) =
        http(&authority, "POST", "/api/v1/messages", "application/json", Some(&token), serde_json::to_vec(&body)?)
            .await?;
    if status != 201 {
        bail!("publish failed: HTTP {status}: {}", String::from_utf8_lossy(&answer));
    }
    let answer: serde_json::Value = serde_json::from_slice(&answer).context("the relay's answer is not JSON")?;
    if a.json {
        print_json(&answer);
    } else {
        println!("published {} to {} at {}", answer["message_id"], answer["topic"], answer["timestamp"]);
    }
    Ok(())
}

async fn login(authority: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let form = serde_urlencoded::to_string([("username", user), ("password", password)])?;
    let (status, body) =
        http(authority, "POST", "/auth/login", "application/x-www-form-urlencoded", None, form.into_bytes()).await?;
    if status != 200 {
        bail!("login failed: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("the login answer is not JSON")?;
    v["access_token"].as_str().map(str::to_string).context("the login answer has no access_token")
}

/// One HTTP/1.1 request on a fresh connection.
async fn http(
    authority: &str,
    method: &str,
    path: &str,
    content_type: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Bytes)> {
    let tcp =
        tokio::net::TcpStream::connect(authority).await.with_context(|| format!("cannot connect to {authority}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, content_type);
    if let Some(t) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = sender.send_request(req.body(Full::new(Bytes::from(body)))?).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

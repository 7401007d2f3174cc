//! `herald pub|sub|request`: NATS-protocol messaging against Herald's NATS listener (or any NATS server).

use super::{parse_pairs, payload_json, print_json, show_bytes};
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct NatsArgs {
    /// NATS listener.
    #[arg(long = "nats", env = "HERALD_NATS", default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// `auth_token` for CONNECT (a Herald token).
    #[arg(long = "nats-token", env = "HERALD_NATS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, env = "HERALD_NATS_USER")]
    pub user: Option<String>,
    #[arg(long, env = "HERALD_NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PubArgs {
    pub subject: String,
    pub data: String,
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Reply subject to send with the message.
    #[arg(long)]
    pub reply: Option<String>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Args)]
pub struct SubArgs {
    /// Subject; `*` and `>` wildcards work.
    pub subject: String,
    /// Join this queue group (each message goes to one member).
    #[arg(long)]
    pub queue: Option<String>,
    /// Exit after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Args)]
pub struct RequestArgs {
    pub subject: String,
    pub data: String,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub nats: NatsArgs,
}

async fn connect(a: &NatsArgs, request_timeout: Option<Duration>) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new().name("herald-cli").request_timeout(request_timeout);
    if let Some(t) = &a.token {
        options = options.token(t.clone());
    }
    if let (Some(u), Some(p)) = (&a.user, &a.password) {
        options = options.user_and_password(u.clone(), p.clone());
    }
    options.connect(a.url.as_str()).await.with_context(|| format!("cannot connect to {}", a.url))
}

fn headers(pairs: &[String]) -> anyhow::Result<Option<async_nats::HeaderMap>> {
    let pairs = parse_pairs(pairs)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in pairs {
        map.insert(k.as_str(), v.as_str());
    }
    Ok(Some(map))
}

fn print_message(m: &async_nats::Message, json: bool) {
    if json {
        let mut o = serde_json::Map::new();
        o.insert("subject".into(), m.subject.as_str().into());
        if let Some(r) = &m.reply {
            o.insert("reply".into(), r.as_str().into());
        }
        if let Some(h) = &m.headers {
            let h: serde_json::Map<String, serde_json::Value> =
                h.iter().map(|(k, v)| (k.to_string(), v.iter().map(|x| x.as_str().to_string()).collect())).collect();
            o.insert("headers".into(), h.into());
        }
        payload_json(&m.payload, &mut o);
        print_json(&serde_json::Value::Object(o));
    } else {
        println!("[{}] {}", m.subject, show_bytes(&m.payload));
    }
}

pub fn publish(a: PubArgs) -> anyhow::Result<()> {
    super::run(async move {
        let client = connect(&a.nats, None).await?;
        let payload = a.data.clone().into_bytes().into();
        let subject = a.subject.clone();
        match (headers(&a.headers)?, a.reply.clone()) {
            (Some(h), Some(r)) => client.publish_with_reply_and_headers(subject, r, h, payload).await,
            (Some(h), None) => client.publish_with_headers(subject, h, payload).await,
            (None, Some(r)) => client.publish_with_reply(subject, r, payload).await,
            (None, None) => client.publish(subject, payload).await,
        }
        .context("publishing")?;
        // The server has the message once the flush's PING is answered.
        client.flush().await.context("flushing")?;
        if a.nats.json {
            print_json(&serde_json::json!({"subject": a.subject, "bytes": a.data.len()}));
        } else {
            println!("published {} bytes to {}", a.data.len(), a.subject);
        }
        Ok(())
    })
}

pub fn subscribe(a: SubArgs) -> anyhow::Result<()> {
    super::run(async move {
        let client = connect(&a.nats, None).await?;
        let mut sub = match &a.queue {
            Some(q) => client.queue_subscribe(a.subject.clone(), q.clone()).await,
            None => client.subscribe(a.subject.clone()).await,
        }
        .context("subscribing")?;
        client.flush().await.context("flushing")?;
        if !a.nats.json {
            eprintln!("listening on {}", a.subject);
        }
        let mut seen = 0u64;
        loop {
            let next = tokio::select! {
                m = sub.next() => m,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            let Some(m) = next else { anyhow::bail!("the server closed the subscription") };
            print_message(&m, a.nats.json);
            seen += 1;
            if a.count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
    })
}

pub fn request(a: RequestArgs) -> anyhow::Result<()> {
    super::run(async move {
        let timeout =
            Duration::try_from_secs_f64(a.timeout).context("--timeout must be a positive number of seconds")?;
        let client = connect(&a.nats, Some(timeout)).await?;
        let reply = client.request(a.subject.clone(), a.data.clone().into_bytes().into()).await.map_err(|e| match e
            .kind()
        {
            async_nats::RequestErrorKind::NoResponders => anyhow::anyhow!("no responders on {}", a.subject),
            async_nats::RequestErrorKind::TimedOut => anyhow::anyhow!("no reply within {} s", a.timeout),
            _ => anyhow::anyhow!("request failed: {e}"),
        })?;
        print_message(&reply, a.nats.json);
        Ok(())
    })
}

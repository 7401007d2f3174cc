//! `GET /api/herald/overview`: relay topics, NATS connections and subscriptions, and addressed-event recipients,
//! in the shape of the dashboard's `Overview` type (web/src/api.ts).
//!
//! Every list is sorted (topics by name, connections by id, subscriptions by subject then connection, recipients
//! by their base64 key) and holds at most [`LIST_CAP`] entries; the `*_total` field next to each list is the full
//! count, so a capped list says so.

use super::LIST_CAP;
use crate::admin::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use herald_engine::Engine;
use herald_engine::relay::api::Micros;
use herald_types::Result;
use serde::Serialize;
use std::collections::HashMap;
use time::OffsetDateTime;

#[derive(Serialize)]
pub(super) struct Overview {
    relay: RelaySection,
    nats: NatsSection,
    events: EventsSection,
}

#[derive(Serialize)]
struct RelaySection {
    topics: Vec<Topic>,
    topics_total: usize,
}

#[derive(Serialize)]
struct Topic {
    /// `<owner username>/<topic>`, or the owner's id when the user no longer exists.
    name: String,
    messages: u64,
    last_message_at: Option<String>,
}

#[derive(Serialize)]
struct NatsSection {
    connections: Vec<Connection>,
    connections_total: usize,
    subscriptions: Vec<Subscription>,
    subscriptions_total: usize,
}

#[derive(Serialize)]
struct Connection {
    id: u64,
    addr: String,
    name: String,
    subscriptions: usize,
    in_msgs: u64,
    out_msgs: u64,
}

#[derive(Serialize)]
struct Subscription {
    subject: String,
    queue: Option<String>,
    connection: u64,
}

#[derive(Serialize)]
struct EventsSection {
    recipients: Vec<Recipient>,
    recipients_total: usize,
}

#[derive(Serialize)]
struct Recipient {
    recipient: String,
    pending: u64,
    in_flight: u64,
    deferred: u64,
    sessions: u64,
}

pub(super) async fn overview(State(state): State<AppState>) -> std::result::Result<Json<Overview>, ApiError> {
    Ok(Json(snapshot(&state).await?))
}

/// The overview now: what `GET /api/herald/overview` answers and the `herald.overview` feed event carries.
pub(super) async fn snapshot(state: &AppState) -> Result<Overview> {
    Ok(Overview { relay: relay(&state.engine).await?, nats: nats(state), events: events(&state.engine).await? })
}

/// Microseconds since the epoch as RFC 3339 in UTC, always with six fraction digits (the relay's precision), so
/// that times sort as text.
fn rfc3339_micros(us: Micros) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    ))
}

async fn relay(engine: &Engine) -> Result<RelaySection> {
    let relay = &engine.relay;
    let usernames: HashMap<String, String> =
        relay.users().await?.into_iter().map(|u| (u.user_id, u.username)).collect();
    // Names first (topic records and users only), then message figures for the listed topics only.
    let mut topics: Vec<(String, String, String)> = relay
        .all_topics()
        .await?
        .into_iter()
        .map(|t| {
            let owner = usernames.get(&t.owner_id).unwrap_or(&t.owner_id);
            (format!("{owner}/{}", t.topic_name), t.owner_id, t.topic_name)
        })
        .collect();
    topics.sort();
    let topics_total = topics.len();
    let mut listed = Vec::with_capacity(topics_total.min(LIST_CAP));
    for (name, owner_id, topic) in topics.into_iter().take(LIST_CAP) {
        let stats = relay.topic_stats(&owner_id, &topic).await?;
        listed.push(Topic {
            name,
            messages: stats.messages,
            last_message_at: stats.last_message_at.and_then(rfc3339_micros),
        });
    }
    Ok(RelaySection { topics: listed, topics_total })
}

fn nats(state: &AppState) -> NatsSection {
    let conns = state.nats.snapshot();
    let mut subscriptions: Vec<Subscription> = conns
        .iter()
        .flat_map(|c| {
            c.subscriptions.iter().map(|s| Subscription {
                subject: s.subject.clone(),
                queue: s.queue.clone(),
                connection: c.id,
            })
        })
        .collect();
    subscriptions.sort_by(|a, b| (&a.subject, a.connection, &a.queue).cmp(&(&b.subject, b.connection, &b.queue)));
    let subscriptions_total = subscriptions.len();
    subscriptions.truncate(LIST_CAP);
    let connections_total = conns.len();
    // The snapshot is ordered by id already.
    let connections = conns
        .into_iter()
        .take(LIST_CAP)
        .map(|c| Connection {
            id: c.id,
            addr: c.addr.to_string(),
            name: c.name,
            subscriptions: c.subscriptions.len(),
            in_msgs: c.in_msgs,
            out_msgs: c.out_msgs,
        })
        .collect();
    NatsSection { connections, connections_total, subscriptions, subscriptions_total }
}

async fn events(engine: &Engine) -> Result<EventsSection> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut recipients: Vec<Recipient> = engine
        .events
        .recipients()
        .await?
        .into_iter()
        .map(|r| Recipient {
            recipient: b64.encode(r.recipient),
            pending: r.pending,
            in_flight: r.in_flight,
            deferred: r.deferred,
            sessions: r.sessions,
        })
        .collect();
    // The engine orders by key bytes; the dashboard wants the keys as they are shown.
    recipients.sort_by(|a, b| a.recipient.cmp(&b.recipient));
    let recipients_total = recipients.len();
    recipients.truncate(LIST_CAP);
    Ok(EventsSection { recipients, recipients_total })
}

#[cfg(test)]
mod tests {
    #[test]
    fn relay_times_are_rfc3339_utc() {
        assert_eq!(super::rfc3339_micros(1_704_067_200_123_456).unwrap(), "2024-01-01T00:00:00.123456Z");
        assert_eq!(super::rfc3339_micros(1_704_067_200_000_000).unwrap(), "2024-01-01T00:00:00.000000Z");
    }
}

//! The embedded [`Relay`]: the parts (users, topics, messages, tokens, idempotency) put together behind the trait,
//! plus the maintenance hooks the engine's background tasks call.

use super::RelayOptions;
use super::api::*;
use super::idem::Idem;
use super::messages::{Messages, MessagesConfig};
use super::tokens::Tokens;
use super::topics::Topics;
use super::users::Users;
use crate::durability::FsyncPolicy;
use crate::pubsub::Router;
use crate::store::SharedStore;
use async_trait::async_trait;
use bytes::Bytes;
use herald_types::{Clock, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct EmbeddedRelay {
    clock: Arc<dyn Clock>,
    router: Arc<Router>,
    users: Users,
    topics: Topics,
    messages: Messages,
    tokens: Tokens,
    idem: Idem,
}

impl EmbeddedRelay {
    /// Opens the relay's state; topic logs are opened on first use. `dir` is `<data>/relay`.
    pub fn open(
        store: SharedStore,
        clock: Arc<dyn Clock>,
        dir: PathBuf,
        policy: FsyncPolicy,
        segment_max_bytes: u64,
        opts: &RelayOptions,
    ) -> Result<Self> {
        let router = Arc::new(Router::new());
        let cfg = MessagesConfig {
            dir,
            policy,
            segment_max_bytes,
            max_messages: opts.max_messages_per_topic,
            hot_messages: opts.hot_messages,
        };
        Ok(EmbeddedRelay {
            users: Users::new(Arc::clone(&store)),
            topics: Topics::open(Arc::clone(&store))?,
            messages: Messages::open(Arc::clone(&store), Arc::clone(&clock), Arc::clone(&router), cfg)?,
            tokens: Tokens::new(Arc::clone(&store)),
            idem: Idem::new(store, Arc::clone(&clock)),
            clock,
            router,
        })
    }

    fn now(&self) -> Micros {
        self.clock.now_ns().div_euclid(1000)
    }

    /// Fsyncs every open topic log (the fjall side is synced by the engine).
    pub fn sync_all(&self) -> Result<()> {
        self.messages.sync_all()
    }

    /// Deletes topic-log segments outside the count cap.
    pub fn enforce_retention(&self) -> Result<()> {
        self.messages.enforce_retention()
    }

    /// Reclaims expired deny-list entries, idempotency records and long-expired refresh tokens.
    pub fn reap(&self) -> Result<()> {
        self.tokens.reap(self.now())?;
        self.idem.reap()?;
        Ok(())
    }
}

#[async_trait]
impl Relay for EmbeddedRelay {
    async fn create_user(&self, user: NewRelayUser) -> Result<RelayUser> {
        self.users.create(user, self.now()).await
    }

    async fn user(&self, user_id: &str) -> Result<Option<RelayUser>> {
        self.users.get(user_id)
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<RelayUser>> {
        self.users.by_name(username)
    }

    async fn users(&self) -> Result<Vec<RelayUser>> {
        self.users.all()
    }

    async fn update_user(&self, user_id: &str, patch: RelayUserPatch) -> Result<RelayUser> {
        self.users.update(user_id, patch).await
    }

    async fn delete_user(&self, user_id: &str) -> Result<()> {
        self.users.delete(user_id).await
    }

    async fn create_topic(&self, owner_id: &str, name: &str, description: Option<String>) -> Result<RelayTopic> {
        self.topics.create(owner_id, name, description, false, self.now()).await
    }

    async fn get_or_create_topic(&self, owner_id: &str, name: &str, description: &str) -> Result<RelayTopic> {
        if let Some(t) = self.topics.get(owner_id, name)? {
            return Ok(t);
        }
        self.topics.create(owner_id, name, Some(description.to_owned()), true, self.now()).await
    }

    async fn topic(&self, owner_id: &str, name: &str) -> Result<Option<RelayTopic>> {
        self.topics.get(owner_id, name)
    }

    async fn topics(&self, owner_id: &str) -> Result<Vec<RelayTopic>> {
        self.topics.list(owner_id)
    }

    async fn topic_count(&self) -> Result<u64> {
        Ok(self.topics.count())
    }

    async fn all_topics(&self) -> Result<Vec<RelayTopic>> {
        self.topics.all()
    }

    async fn topic_stats(&self, owner_id: &str, topic: &str) -> Result<RelayTopicStats> {
        self.messages.stats(owner_id, topic).await
    }

    async fn update_topic(&self, owner_id: &str, name: &str, description: Option<String>) -> Result<RelayTopic> {
        self.topics.update(owner_id, name, description).await
    }

    async fn delete_topic(&self, owner_id: &str, name: &str) -> Result<bool> {
        self.topics.delete(owner_id, name).await
    }

    async fn publish(
        &self,
        owner_id: &str,
        topic: &str,
        messages: Vec<RelayMessageIn>,
        encode: FrameEncoder<'_>,
    ) -> Result<Vec<RelayMessage>> {
        let subject = self.subject(owner_id, topic);
        self.messages.publish(owner_id, topic, &subject, messages, encode).await
    }

    async fn history(
        &self,
        owner_id: &str,
        topic: &str,
        order: HistoryOrder,
        cursor: Option<RelayId>,
        limit: usize,
    ) -> Result<Vec<RelayMessage>> {
        self.messages.history(owner_id, topic, order, cursor, limit).await
    }

    async fn read_after(
        &self,
        owner_id: &str,
        topic: &str,
        after: Option<RelayId>,
        limit: usize,
    ) -> Result<Vec<RelayMessage>> {
        self.messages.read_after(owner_id, topic, after, limit).await
    }

    fn router(&self) -> &Arc<Router> {
        &self.router
    }

    async fn put_refresh(&self, record: RefreshRecord) -> Result<()> {
        self.tokens.put(record).await
    }

    async fn refresh(&self, jti: &str) -> Result<Option<RefreshRecord>> {
        self.tokens.get(jti)
    }

    async fn rotate_refresh(
        &self,
        jti: &str,
        secret_hash: &str,
        new_jti: String,
        new_secret_hash: String,
        ttl_micros: i64,
    ) -> Result<Rotation> {
        self.tokens.rotate(jti, secret_hash, new_jti, new_secret_hash, ttl_micros, self.now()).await
    }

    async fn revoke_refresh(&self, jti: &str, reason: &str, chain: bool) -> Result<()> {
        self.tokens.revoke(jti, reason, chain).await
    }

    async fn sessions(&self, user_id: &str) -> Result<Vec<RefreshRecord>> {
        self.tokens.sessions(user_id, self.now())
    }

    async fn deny_access_token(&self, jti: &str, until: Micros) -> Result<()> {
        self.tokens.deny(jti, until).await
    }

    async fn is_access_token_denied(&self, jti: &str) -> Result<bool> {
        self.tokens.is_denied(jti, self.now())
    }

    async fn idem_claim(&self, user_id: &str, key: &str, endpoint: IdemEndpoint) -> Result<IdemClaim> {
        self.idem.claim(user_id, key, endpoint).await
    }

    async fn idem_complete(&self, user_id: &str, key: &str, body: Bytes) -> Result<()> {
        self.idem.complete(user_id, key, body).await
    }

    async fn idem_abandon(&self, user_id: &str, key: &str) -> Result<()> {
        self.idem.abandon(user_id, key).await
    }

    async fn idem_wait(&self, user_id: &str, key: &str, timeout: Duration) -> Result<Option<Bytes>> {
        self.idem.wait(user_id, key, timeout).await
    }
}

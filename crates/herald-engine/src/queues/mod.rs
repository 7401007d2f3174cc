//! Job queues with delay, visibility timeout, retries with backoff and a dead-letter queue
//! (compat/flowmesh.md §1.5, §3.4, decisions D1–D6, D10–D12, D17, D24).
//!
//! Every transition is one atomic fjall batch (job state + counters, and for dead-lettering both queues), committed
//! while the queue's lock is held so that the order on disk is the order in memory. Under `fsync = always` the
//! caller is answered only after the batch is on disk (group commit, see `durability`).
//!
//! Attempts, backoff schedules, DLQ moves and counters survive a restart. Reservations do not: a job that was in flight
//! when the server stopped is ready again at start-up with its attempts kept (D17, at-least-once), or dead-lettered
//! if it had used them all.

mod retry;
mod state;

use crate::api::{Headers, Job, QueueStats, Queues, ReceiveOptions, RetryPolicy};
use crate::codec::{Reader, VERSION, put_headers};
use crate::resources::{Registry, Resource};
use crate::schemas::SchemaRegistry;
use crate::store::{SharedStore, fjall_err, key2};
use crate::streams::hex_id;
use crate::timefmt::rfc3339_seconds;
use async_trait::async_trait;
use bytes::Bytes;
use herald_types::clock::NANOS_PER_SEC;
use herald_types::id::{id_bytes, new_id_bytes};
use herald_types::{Clock, HeraldError, ResourceKind, ResourcePath, Result};
use parking_lot::{Mutex, RwLock};
use state::{Counters, JobId, JobMeta, QueueState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const DEFAULT_VISIBILITY_SECS: i64 = 30;
const MAX_VISIBILITY_SECS: i64 = 43_200;
/// Long polls longer than this are silently capped (FlowMesh parity).
pub const MAX_LONG_POLL: Duration = Duration::from_secs(20);
const MAX_RECEIVE: i32 = 100;

pub(crate) struct QueueHandle {
    res: Arc<Resource>,
    state: Mutex<QueueState>,
    /// Woken whenever a job may have become available (enqueue, requeue, replay).
    available: Notify,
}

pub(crate) struct EmbeddedQueues {
    registry: Arc<Registry>,
    schemas: Arc<SchemaRegistry>,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    queues: RwLock<HashMap<u64, Arc<QueueHandle>>>,
    load_lock: Mutex<()>,
}

/// A job about to be added to a queue.
struct NewJob<'a> {
    headers: &'a Headers,
    payload: &'a [u8],
    /// Its `created_at`.
    now: i64,
    /// How long after `now` it becomes visible.
    delay_ns: i64,
}

/// When a failed delivery is retried.
#[derive(Clone, Copy)]
enum Retry {
    /// After this many nanoseconds (an explicit NACK delay, or 0).
    After(i64),
    /// After the retry policy's backoff for the attempts made.
    Backoff,
}

/// What happened to a job whose delivery failed (NACK or expiry).
/// A queue in which [`EmbeddedQueues::expire_reservations`] found reservations that had run out.
pub(crate) struct ExpiredReservations {
    pub queue: ResourcePath,
    /// At least one of the jobs was out of attempts and moved to the queue's `-dlq` queue.
    pub dead_lettered: bool,
}

enum Failure {
    Requeued,
    DeadLettered { attempts: i32, max_attempts: i32 },
}

impl EmbeddedQueues {
    pub fn open(
        registry: Arc<Registry>,
        schemas: Arc<SchemaRegistry>,
        store: SharedStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let q = EmbeddedQueues {
            registry,
            schemas,
            store,
            clock,
            queues: RwLock::new(HashMap::new()),
            load_lock: Mutex::new(()),
        };
        for res in q.registry.all(ResourceKind::Queue) {
            q.handle(&res)?;
        }
        q.release_interrupted_reservations()?;
        Ok(q)
    }

    /// The queue's handle, loading its state from fjall on first use.
    fn handle(&self, res: &Arc<Resource>) -> Result<Arc<QueueHandle>> {
        if let Some(h) = self.queues.read().get(&res.rid) {
            return Ok(Arc::clone(h));
        }
        let _guard = self.load_lock.lock();
        if let Some(h) = self.queues.read().get(&res.rid) {
            return Ok(Arc::clone(h));
        }
        let mut st = QueueState::default();
        for item in self.store.job_state.prefix(res.rid.to_be_bytes()) {
            let (k, v) = item.into_inner().map_err(fjall_err("loading queue"))?;
            let seq = k.get(8..16).and_then(crate::store::read_u64).unwrap_or(u64::MAX);
            let meta = JobMeta::decode(seq, &v)
                .ok_or_else(|| HeraldError::internal(format!("corrupt job record {seq} in queue {}", res.path)))?;
            st.insert_loaded(meta);
        }
        if let Some(v) = self.store.queue_meta.get(res.rid.to_be_bytes()).map_err(fjall_err("loading queue"))? {
            let c = Counters::decode(&v)
                .ok_or_else(|| HeraldError::internal(format!("corrupt counters of {}", res.path)))?;
            st.counters = Counters { next_seq: c.next_seq.max(st.counters.next_seq), ..c };
        }
        let h = Arc::new(QueueHandle { res: Arc::clone(res), state: Mutex::new(st), available: Notify::new() });
        self.queues.write().insert(res.rid, Arc::clone(&h));
        Ok(h)
    }

    fn require(&self, path: &ResourcePath) -> Result<Arc<QueueHandle>> {
        path.expect_kind(ResourceKind::Queue)?;
        let res = self.registry.require(path)?;
        self.handle(&res)
    }

    fn policy(res: &Resource) -> RetryPolicy {
        res.config.read().retry_policy.clone().unwrap_or_default()
    }

    fn seq_key(rid: u64, seq: u64) -> Vec<u8> {
        key2(rid, &seq.to_be_bytes())
    }

    fn encode_body(headers: &Headers, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + payload.len() + headers.len() * 24);
        out.push(VERSION);
        put_headers(&mut out, headers);
        out.extend_from_slice(payload);
        out
    }

    fn read_body(&self, rid: u64, seq: u64) -> Result<(Headers, Bytes)> {
        let v = self
            .store
            .job_body
            .get(Self::seq_key(rid, seq))
            .map_err(fjall_err("reading job"))?
            .ok_or_else(|| HeraldError::internal(format!("job body {seq} missing")))?;
        let mut r = Reader::new(&v);
        let decoded = (|| {
            if r.u8()? != VERSION {
                return None;
            }
            let headers = r.headers()?;
            Some((headers, Bytes::copy_from_slice(r.rest())))
        })();
        decoded.ok_or_else(|| HeraldError::internal(format!("corrupt job body {seq}")))
    }

    fn to_job(&self, h: &QueueHandle, meta: &JobMeta) -> Result<Job> {
        let (headers, payload) = self.read_body(h.res.rid, meta.seq)?;
        Ok(Job {
            id: hex_id(&meta.id),
            resource_path: h.res.path.to_string(),
            seq: meta.seq as i64,
            payload,
            headers,
            created_at: meta.created_at,
            visible_at: meta.visible_at,
            reserve_until: meta.reserve_until,
            attempts: meta.attempts,
        })
    }

    /// Adds a brand-new job, created at `now` and visible `delay_ns` later, to `st` and the write batch.
    /// Lock of `h` must be held (it is `st`).
    fn add_job(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        h: &QueueHandle,
        st: &mut QueueState,
        job: NewJob<'_>,
    ) -> (JobId, u64) {
        let NewJob { headers, payload, now, delay_ns } = job;
        // One clock reading for both times, so `visible_at - created_at` is exactly the delay.
        let visible_at = now.saturating_add(delay_ns);
        let seq = st.counters.next_seq;
        st.counters.next_seq += 1;
        let id = new_id_bytes();
        let meta = JobMeta { id, seq, created_at: now, visible_at, reserve_until: 0, attempts: 0 };
        batch.insert(&self.store.job_body, Self::seq_key(h.res.rid, seq), Self::encode_body(headers, payload));
        batch.insert(&self.store.job_state, Self::seq_key(h.res.rid, seq), meta.encode());
        batch.insert(&self.store.queue_meta, h.res.rid.to_be_bytes(), st.counters.encode());
        st.insert_ready(meta);
        (id, seq)
    }

    /// The dead-letter queue of `h`, created (and linked in `h`'s configuration) on first use.
    fn dlq_handle(&self, h: &QueueHandle, create: bool) -> Result<Option<Arc<QueueHandle>>> {
        let path = h.res.path.sibling(ResourceKind::Queue, format!("{}-dlq", h.res.path.name));
        let res = match self.registry.lookup(&path) {
            Some(r) => r,
            None if create => self.registry.create(self.registry.default_config(&path))?.0,
            None => return Ok(None),
        };
        let linked = h.res.config.read().dlq.as_ref().is_some_and(|d| d.enabled);
        if create && !linked {
            let dlq_path = path.to_string();
            self.registry.update(&h.res, |c| {
                c.dlq = Some(crate::api::DlqConfig { enabled: true, max_attempts: None, dlq_path });
            })?;
        }
        self.handle(&res).map(Some)
    }

    /// Handles a failed delivery of in-flight job `seq` (NACK, visibility expiry, or a reservation cut short by a
    /// restart): dead-letter it when it has used its attempts (D3), otherwise requeue it after `retry`.
    fn fail_delivery(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        h: &QueueHandle,
        st: &mut QueueState,
        seq: u64,
        retry: Retry,
    ) -> Result<Failure> {
        let policy = Self::policy(&h.res);
        let meta = st.get(seq).cloned().expect("caller checked the job is in flight");
        let now = self.clock.now_ns();
        if policy.max_attempts > 0 && meta.attempts >= policy.max_attempts {
            let dlq = self.dlq_handle(h, true)?.expect("created on demand");
            let (headers, payload) = self.read_body(h.res.rid, seq)?;
            let mut dl_headers = headers;
            dl_headers.insert("x-flowmesh-original-queue".into(), h.res.path.to_string());
            dl_headers.insert("x-flowmesh-original-job-id".into(), hex_id(&meta.id));
            dl_headers.insert("x-flowmesh-failed-at".into(), rfc3339_seconds(now));
            dl_headers.insert("x-flowmesh-attempts".into(), meta.attempts.to_string());
            {
                // Lock order: a queue before its own dead-letter queue (names grow, so there is no cycle).
                let mut dst = dlq.state.lock();
                self.add_job(
                    batch,
                    &dlq,
                    &mut dst,
                    NewJob { headers: &dl_headers, payload: &payload, now, delay_ns: 0 },
                );
            }
            st.remove(seq);
            st.counters.failed += 1;
            batch.remove(&self.store.job_body, Self::seq_key(h.res.rid, seq));
            batch.remove(&self.store.job_state, Self::seq_key(h.res.rid, seq));
            batch.insert(&self.store.queue_meta, h.res.rid.to_be_bytes(), st.counters.encode());
            dlq.available.notify_waiters();
            return Ok(Failure::DeadLettered { attempts: meta.attempts, max_attempts: policy.max_attempts });
        }
        let delay_ns = match retry {
            Retry::After(ns) => ns,
            Retry::Backoff => retry::backoff_ns(&policy, meta.attempts),
        };
        let requeued = st.requeue(seq, now.saturating_add(delay_ns)).expect("job exists");
        batch.insert(&self.store.job_state, Self::seq_key(h.res.rid, seq), requeued.encode());
        Ok(Failure::Requeued)
    }

    /// At start-up: every job that was in flight when the server stopped becomes ready again at once, keeping its
    /// attempts (D17: at-least-once delivery; the worker's connection is gone). A job that had already used all its
    /// attempts is dead-lettered instead, so a restart never gives a job an extra delivery.
    fn release_interrupted_reservations(&self) -> Result<()> {
        let handles: Vec<Arc<QueueHandle>> = self.queues.read().values().cloned().collect();
        let mut released = 0;
        for h in handles {
            let mut st = h.state.lock();
            let in_flight = st.expired(i64::MAX);
            if in_flight.is_empty() {
                continue;
            }
            let mut batch = self.store.batch();
            for seq in &in_flight {
                self.fail_delivery(&mut batch, &h, &mut st, *seq, Retry::After(0))?;
            }
            released += in_flight.len();
            self.store.commit(batch)?;
        }
        if released > 0 {
            self.store.sync_now()?;
            tracing::info!(
                jobs = released,
                "jobs in flight at the last stop are ready again (or dead-lettered if out of attempts)"
            );
        }
        Ok(())
    }

    /// Requeues or dead-letters every reservation that has run out. Called about every 200 ms (D4: ≤ 1 s).
    /// Returns one entry per queue that changed, once the change is durable.
    pub async fn expire_reservations(&self) -> Result<Vec<ExpiredReservations>> {
        let handles: Vec<Arc<QueueHandle>> = self.queues.read().values().cloned().collect();
        let mut changed = Vec::new();
        for h in handles {
            let now = self.clock.now_ns();
            let (ticket, dead_lettered) = {
                let mut st = h.state.lock();
                let expired = st.expired(now);
                if expired.is_empty() {
                    continue;
                }
                let mut batch = self.store.batch();
                let mut dead_lettered = false;
                for seq in &expired {
                    let failure = self.fail_delivery(&mut batch, &h, &mut st, *seq, Retry::Backoff)?;
                    dead_lettered |= matches!(failure, Failure::DeadLettered { .. });
                }
                (self.store.commit(batch)?, dead_lettered)
            };
            h.available.notify_waiters();
            self.store.durable(ticket).await?;
            changed.push(ExpiredReservations { queue: h.res.path.clone(), dead_lettered });
        }
        Ok(changed)
    }

    /// Validates an enqueued payload against the queue's attached schema, if it has one (D13: INVALID_ARGUMENT).
    /// DLQ moves and replays are not validated: their payloads were accepted by an earlier enqueue.
    fn validate(&self, res: &Resource, payload: &[u8]) -> Result<()> {
        let context = || format!("failed to enqueue job to queue {}", res.path);
        let attached = self
            .schemas
            .attached(res)
            .map_err(|e| HeraldError { message: format!("{}: {}", context(), e.message), ..e })?;
        if let Some(attached) = attached {
            attached.check(payload).map_err(|detail| {
                HeraldError::invalid(format!("{}: payload validation failed: {detail}", context()))
            })?;
        }
        Ok(())
    }

    /// One non-waiting attempt to reserve jobs.
    fn try_take(
        &self,
        h: &QueueHandle,
        max: usize,
        visibility_secs: i64,
    ) -> Result<(Vec<Job>, Option<u64>, Option<i64>)> {
        let now = self.clock.now_ns();
        let mut st = h.state.lock();
        let taken = st.take_visible(now, max, now + visibility_secs * NANOS_PER_SEC);
        if taken.is_empty() {
            return Ok((Vec::new(), None, st.next_visible_at()));
        }
        let mut batch = self.store.batch();
        let mut jobs = Vec::with_capacity(taken.len());
        for meta in &taken {
            batch.insert(&self.store.job_state, Self::seq_key(h.res.rid, meta.seq), meta.encode());
            jobs.push(self.to_job(h, meta)?);
        }
        let ticket = self.store.commit(batch)?;
        Ok((jobs, Some(ticket), None))
    }
}

fn parse_job_id(id: &str) -> Option<JobId> {
    id_bytes(id)
}

#[async_trait]
impl Queues for EmbeddedQueues {
    async fn enqueue(
        &self,
        queue: &ResourcePath,
        payload: Bytes,
        delay_seconds: i64,
        headers: Headers,
    ) -> Result<(String, i64)> {
        if payload.is_empty() {
            return Err(HeraldError::invalid("payload cannot be empty"));
        }
        queue.expect_kind(ResourceKind::Queue)?;
        if delay_seconds < 0 {
            return Err(HeraldError::invalid("delay_seconds cannot be negative"));
        }
        let res = self.registry.require_or_create(queue)?;
        self.validate(&res, &payload)?;
        let h = self.handle(&res)?;
        let (id, seq, ticket) = {
            let mut st = h.state.lock();
            let mut batch = self.store.batch();
            let now = self.clock.now_ns();
            let delay_ns = delay_seconds.saturating_mul(NANOS_PER_SEC);
            let (id, seq) =
                self.add_job(&mut batch, &h, &mut st, NewJob { headers: &headers, payload: &payload, now, delay_ns });
            (id, seq, self.store.commit(batch)?)
        };
        self.store.durable(ticket).await?;
        h.available.notify_waiters();
        Ok((hex_id(&id), seq as i64))
    }

    async fn receive(&self, queue: &ResourcePath, options: ReceiveOptions) -> Result<Vec<Job>> {
        queue.expect_kind(ResourceKind::Queue)?;
        let max = options.max_jobs.clamp(1, MAX_RECEIVE) as usize;
        let visibility = match options.visibility_timeout_seconds {
            v if v <= 0 => DEFAULT_VISIBILITY_SECS,
            v if v > MAX_VISIBILITY_SECS => {
                return Err(HeraldError::invalid("visibility_timeout_seconds cannot exceed 43200 (12 hours)"));
            }
            v => v,
        };
        let h = self.require(queue)?;
        let deadline = tokio::time::Instant::now() + options.long_poll.min(MAX_LONG_POLL);
        loop {
            // Register for wake-ups before looking, so an enqueue between the look and the wait is not missed.
            let notified = h.available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (jobs, ticket, next_visible) = self.try_take(&h, max, visibility)?;
            if let Some(ticket) = ticket {
                self.store.durable(ticket).await?;
                return Ok(jobs);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut wake = deadline;
            if let Some(t) = next_visible {
                let wait_ns = (t - self.clock.now_ns()).max(0) as u64;
                wake = wake.min(now + Duration::from_nanos(wait_ns));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, queue: &ResourcePath, job_id: &str) -> Result<()> {
        let h = self.require(queue)?;
        let Some(id) = parse_job_id(job_id) else { return Ok(()) };
        let ticket = {
            let mut st = h.state.lock();
            let Some(seq) = st.inflight_seq(&id) else { return Ok(()) };
            st.remove(seq);
            st.counters.completed += 1;
            let mut batch = self.store.batch();
            batch.remove(&self.store.job_body, Self::seq_key(h.res.rid, seq));
            batch.remove(&self.store.job_state, Self::seq_key(h.res.rid, seq));
            batch.insert(&self.store.queue_meta, h.res.rid.to_be_bytes(), st.counters.encode());
            self.store.commit(batch)?
        };
        self.store.durable(ticket).await
    }

    async fn nack(&self, queue: &ResourcePath, job_id: &str, delay_seconds: i64) -> Result<()> {
        let h = self.require(queue)?;
        let not_found = || HeraldError::not_found(format!("job {job_id} not found in queue {}", h.res.path));
        let id = parse_job_id(job_id).ok_or_else(not_found)?;
        let (outcome, ticket) = {
            let mut st = h.state.lock();
            let seq = st.inflight_seq(&id).ok_or_else(not_found)?;
            let mut batch = self.store.batch();
            let retry = if delay_seconds > 0 {
                Retry::After(delay_seconds.saturating_mul(NANOS_PER_SEC))
            } else {
                Retry::Backoff
            };
            let outcome = self.fail_delivery(&mut batch, &h, &mut st, seq, retry)?;
            (outcome, self.store.commit(batch)?)
        };
        self.store.durable(ticket).await?;
        match outcome {
            Failure::Requeued => {
                h.available.notify_waiters();
                Ok(())
            }
            Failure::DeadLettered { attempts, max_attempts } => Err(HeraldError::failed_precondition(format!(
                "job {job_id} exceeded max attempts ({attempts}/{max_attempts}) in queue {}",
                h.res.path
            ))),
        }
    }

    async fn stats(&self, queue: &ResourcePath) -> Result<QueueStats> {
        let h = self.require(queue)?;
        let now = self.clock.now_ns();
        Ok(h.state.lock().stats(now))
    }

    async fn set_retry_policy(&self, queue: &ResourcePath, policy: RetryPolicy) -> Result<()> {
        retry::validate(&policy)?;
        let h = self.require(queue)?;
        self.registry.update(&h.res, |c| c.retry_policy = Some(policy))?;
        Ok(())
    }

    async fn retry_policy(&self, queue: &ResourcePath) -> Result<RetryPolicy> {
        let h = self.require(queue)?;
        Ok(Self::policy(&h.res))
    }

    async fn list_dlq(&self, queue: &ResourcePath, max_jobs: i32) -> Result<Vec<Job>> {
        let h = self.require(queue)?;
        let max = if max_jobs <= 0 { 100 } else { max_jobs as usize };
        let Some(dlq) = self.dlq_handle(&h, false)? else { return Ok(Vec::new()) };
        let metas: Vec<JobMeta> = dlq.state.lock().ready_in_order().take(max).cloned().collect();
        metas.iter().map(|m| self.to_job(&dlq, m)).collect()
    }

    async fn replay_dlq(&self, queue: &ResourcePath, dlq_job_id: &str) -> Result<(String, i64)> {
        let h = self.require(queue)?;
        let dlq_path = h.res.path.sibling(ResourceKind::Queue, format!("{}-dlq", h.res.path.name));
        let dlq = self.dlq_handle(&h, false)?.ok_or_else(|| dlq_path.not_found())?;
        let not_found = || HeraldError::not_found(format!("job {dlq_job_id} not found in queue {dlq_path}"));
        let id = parse_job_id(dlq_job_id).ok_or_else(not_found)?;
        let (new_id, seq, ticket) = {
            let mut st = h.state.lock();
            let mut dst = dlq.state.lock();
            let dseq = dst.ready_seq(&id).ok_or_else(not_found)?;
            let (headers, payload) = self.read_body(dlq.res.rid, dseq)?;
            // The replayed job carries the original headers, without the dead-letter bookkeeping.
            let headers: Headers = headers.into_iter().filter(|(k, _)| !k.starts_with("x-flowmesh-")).collect();
            let mut batch = self.store.batch();
            dst.remove(dseq);
            batch.remove(&self.store.job_body, Self::seq_key(dlq.res.rid, dseq));
            batch.remove(&self.store.job_state, Self::seq_key(dlq.res.rid, dseq));
            let now = self.clock.now_ns();
            let (new_id, seq) = self.add_job(
                &mut batch,
                &h,
                &mut st,
                NewJob { headers: &headers, payload: &payload, now, delay_ns: 0 },
            );
            (new_id, seq, self.store.commit(batch)?)
        };
        self.store.durable(ticket).await?;
        h.available.notify_waiters();
        Ok((hex_id(&new_id), seq as i64))
    }
}

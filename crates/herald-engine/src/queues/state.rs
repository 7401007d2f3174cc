//! A queue's in-memory scheduling state: pure data structures, no I/O, no clock of its own.
//!
//! fjall is the source of truth (every transition is written there in one atomic batch); this state is derived from
//! it at start-up and kept in step by the service. It indexes jobs three ways:
//! - `ready`, ordered by `(visible_at, seq)`: the delivery order (earliest visible first, FIFO ties — D24);
//! - `ready_created`, ordered by `(created_at, seq)`: for `oldest_job_age_seconds` without a scan;
//! - `inflight`, ordered by `(reserve_until, seq)`: the visibility-timeout scan pops from the front.
//!
//! Payloads and headers are not held here (they stay in fjall), so memory grows with the number of jobs, not with
//! their size.

use crate::api::QueueStats;
use crate::codec::{Reader, VERSION};
use std::collections::{BTreeSet, HashMap};

pub(crate) type JobId = [u8; 16];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JobMeta {
    pub id: JobId,
    pub seq: u64,
    pub created_at: i64,
    /// When the job became (or becomes) visible for its current or next delivery.
    pub visible_at: i64,
    /// End of the current reservation; 0 when the job is not in flight.
    pub reserve_until: i64,
    /// Number of deliveries so far (D3).
    pub attempts: i32,
}

impl JobMeta {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 * 3 + 4 + 16);
        out.push(VERSION);
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.visible_at.to_be_bytes());
        out.extend_from_slice(&self.reserve_until.to_be_bytes());
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.id);
        out
    }

    pub fn decode(seq: u64, buf: &[u8]) -> Option<JobMeta> {
        let mut r = Reader::new(buf);
        if r.u8()? != VERSION {
            return None;
        }
        Some(JobMeta {
            seq,
            created_at: r.i64()?,
            visible_at: r.i64()?,
            reserve_until: r.i64()?,
            attempts: r.i32()?,
            id: r.take(16)?.try_into().ok()?,
        })
    }
}

/// Per-queue counters, persisted with every transition that changes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Jobs ever enqueued (= the next seq).
    pub next_seq: u64,
    /// ACKs that removed an in-flight job (D6).
    pub completed: u64,
    /// Jobs dead-lettered from this queue (D6).
    pub failed: u64,
}

impl Counters {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25);
        out.push(VERSION);
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        out.extend_from_slice(&self.completed.to_be_bytes());
        out.extend_from_slice(&self.failed.to_be_bytes());
        out
    }

    pub fn decode(buf: &[u8]) -> Option<Counters> {
        let mut r = Reader::new(buf);
        if r.u8()? != VERSION {
            return None;
        }
        Some(Counters { next_seq: r.i64()? as u64, completed: r.i64()? as u64, failed: r.i64()? as u64 })
    }
}

#[derive(Debug, Default)]
pub(crate) struct QueueState {
    jobs: HashMap<u64, JobMeta>,
    by_id: HashMap<JobId, u64>,
    ready: BTreeSet<(i64, u64)>,
    ready_created: BTreeSet<(i64, u64)>,
    inflight: BTreeSet<(i64, u64)>,
    pub counters: Counters,
}

impl QueueState {
    /// Adds a job loaded from disk, in whichever set its state says.
    pub fn insert_loaded(&mut self, meta: JobMeta) {
        self.counters.next_seq = self.counters.next_seq.max(meta.seq + 1);
        self.index(meta);
    }

    /// Adds a new job (or a job moving back to ready) to the ready set.
    pub fn insert_ready(&mut self, mut meta: JobMeta) {
        meta.reserve_until = 0;
        self.index(meta);
    }

    fn index(&mut self, meta: JobMeta) {
        if meta.reserve_until > 0 {
            self.inflight.insert((meta.reserve_until, meta.seq));
        } else {
            self.ready.insert((meta.visible_at, meta.seq));
            self.ready_created.insert((meta.created_at, meta.seq));
        }
        self.by_id.insert(meta.id, meta.seq);
        self.jobs.insert(meta.seq, meta);
    }

    fn unindex(&mut self, meta: &JobMeta) {
        if meta.reserve_until > 0 {
            self.inflight.remove(&(meta.reserve_until, meta.seq));
        } else {
            self.ready.remove(&(meta.visible_at, meta.seq));
            self.ready_created.remove(&(meta.created_at, meta.seq));
        }
    }

    pub fn get(&self, seq: u64) -> Option<&JobMeta> {
        self.jobs.get(&seq)
    }

    /// The seq of job `id` if it is in flight.
    pub fn inflight_seq(&self, id: &JobId) -> Option<u64> {
        let seq = *self.by_id.get(id)?;
        (self.jobs.get(&seq)?.reserve_until > 0).then_some(seq)
    }

    /// The seq of job `id` if it is waiting in the ready set (visible or not).
    pub fn ready_seq(&self, id: &JobId) -> Option<u64> {
        let seq = *self.by_id.get(id)?;
        (self.jobs.get(&seq)?.reserve_until == 0).then_some(seq)
    }

    /// Removes a job from every index.
    pub fn remove(&mut self, seq: u64) -> Option<JobMeta> {
        let meta = self.jobs.remove(&seq)?;
        self.unindex(&meta);
        self.by_id.remove(&meta.id);
        Some(meta)
    }

    /// Reserves up to `max` visible jobs in delivery order; each gets `reserve_until` and one more attempt.
    pub fn take_visible(&mut self, now: i64, max: usize, reserve_until: i64) -> Vec<JobMeta> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(visible_at, seq)) = self.ready.first() else { break };
            if visible_at > now {
                break;
            }
            let mut meta = self.remove(seq).expect("indexed job exists");
            meta.attempts = meta.attempts.saturating_add(1);
            meta.reserve_until = reserve_until.max(1);
            self.index(meta.clone());
            out.push(meta);
        }
        out
    }

    /// Moves an in-flight job back to ready, visible at `visible_at`.
    pub fn requeue(&mut self, seq: u64, visible_at: i64) -> Option<JobMeta> {
        let mut meta = self.remove(seq)?;
        meta.visible_at = visible_at;
        meta.reserve_until = 0;
        self.index(meta.clone());
        Some(meta)
    }

    /// In-flight jobs whose reservation ended at or before `now`.
    pub fn expired(&self, now: i64) -> Vec<u64> {
        self.inflight.iter().take_while(|(until, _)| *until <= now).map(|(_, seq)| *seq).collect()
    }

    /// When the earliest waiting job becomes visible.
    pub fn next_visible_at(&self) -> Option<i64> {
        self.ready.first().map(|(t, _)| *t)
    }

    /// Ready jobs in delivery order.
    pub fn ready_in_order(&self) -> impl Iterator<Item = &JobMeta> {
        self.ready.iter().map(|(_, seq)| &self.jobs[seq])
    }

    pub fn stats(&self, now: i64) -> QueueStats {
        let oldest = self.ready_created.first().map_or(0, |(created, _)| ((now - created).max(0)) / 1_000_000_000);
        QueueStats {
            total_jobs: self.counters.next_seq as i64,
            pending_jobs: self.ready.len() as i64,
            in_flight_jobs: self.inflight.len() as i64,
            completed_jobs: self.counters.completed as i64,
            failed_jobs: self.counters.failed as i64,
            oldest_job_age_seconds: oldest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seq: u64, visible_at: i64) -> JobMeta {
        JobMeta { id: [seq as u8; 16], seq, created_at: 0, visible_at, reserve_until: 0, attempts: 0 }
    }

    #[test]
    fn delivers_by_visibility_then_seq() {
        let mut s = QueueState::default();
        s.insert_ready(job(0, 10));
        s.insert_ready(job(1, 5));
        s.insert_ready(job(2, 5));
        s.insert_ready(job(3, 100));
        let got: Vec<u64> = s.take_visible(50, 10, 80).iter().map(|j| j.seq).collect();
        assert_eq!(got, vec![1, 2, 0]);
        assert_eq!(s.stats(50).in_flight_jobs, 3);
        assert_eq!(s.stats(50).pending_jobs, 1);
        assert_eq!(s.next_visible_at(), Some(100));
        assert_eq!(s.expired(79), Vec::<u64>::new());
        assert_eq!(s.expired(80), vec![0, 1, 2]);
    }

    #[test]
    fn requeue_and_remove_keep_indexes_consistent() {
        let mut s = QueueState::default();
        s.insert_ready(job(0, 0));
        let taken = s.take_visible(1, 1, 30);
        assert_eq!(taken[0].attempts, 1);
        assert_eq!(s.inflight_seq(&[0; 16]), Some(0));
        assert_eq!(s.ready_seq(&[0; 16]), None);
        s.requeue(0, 40).unwrap();
        assert_eq!(s.ready_seq(&[0; 16]), Some(0));
        assert!(s.take_visible(39, 1, 100).is_empty());
        assert_eq!(s.take_visible(40, 1, 100)[0].attempts, 2);
        s.remove(0).unwrap();
        let st = s.stats(41);
        assert_eq!((st.pending_jobs, st.in_flight_jobs), (0, 0));
    }

    #[test]
    fn codecs_round_trip() {
        let m = JobMeta { id: [9; 16], seq: 7, created_at: 1, visible_at: 2, reserve_until: 3, attempts: 4 };
        assert_eq!(JobMeta::decode(7, &m.encode()), Some(m.clone()));
        assert_eq!(JobMeta::decode(7, &m.encode()[..10]), None);
        let c = Counters { next_seq: 5, completed: 2, failed: 1 };
        assert_eq!(Counters::decode(&c.encode()), Some(c));
    }
}

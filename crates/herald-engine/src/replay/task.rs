//! The replay task (§3.7, D14): one tokio task per `active` session, started by `start`/`resume` and independent of
//! the request that started it.
//!
//! It follows the stream with the same tail `Subscribe` uses (woken by every write, batches of at most 100 messages,
//! so it is never later than the contract's 100 ms tick) and commits each message's offset to the sandbox group
//! through [`Streams::commit_offset`](crate::api::Streams::commit_offset), the path `CommitOffset` takes, so the
//! group's state is what `GetOffset` and `GetConsumerGroupState` report. Each batch is handled under the session's
//! `control` lock and its progress stored at the end of the batch.
//!
//! Bounds:
//! - a timestamp start becomes an offset when the task first runs: the log's time index gives the first message
//!   written at or after it. When no stored message is that recent, the replay starts at the end of the stream and
//!   skips messages older than the start until one is found (a start in the future);
//! - an offset end is inclusive: the session completes once `current_offset` passes it;
//! - a timestamp end is inclusive too: the first message written after it ends the session, and so does reaching the
//!   end of the stream once the time has passed (anything written later is stamped later). Checking each message
//!   rather than looking the end up once also covers an end that lies in the future when the task starts.

use super::{Control, Entry, ReplayEnd, ReplayStart, ReplayStatus, Shared};
use crate::api::{StreamMessage, StreamTail};
use herald_types::{HeraldError, Result};
use std::sync::Arc;
use std::time::Duration;

/// While no message arrives, how often a session with a timestamp end checks whether that time has passed.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// What a batch (or an idle check) leads to.
enum Step {
    Continue,
    Completed,
    Failed(HeraldError),
}

pub(super) async fn run(shared: Arc<Shared>, entry: Arc<Entry>, generation: u64) {
    let (mut tail, end) = {
        let mut ctl = entry.control.lock().await;
        if !ctl.owned_by(generation) || entry.status() != ReplayStatus::Active {
            return;
        }
        let end = entry.view.lock().end;
        match prepare(&shared, &entry).await {
            Ok(Some(tail)) => (tail, end),
            Ok(None) => return finish(&shared, &entry, &mut ctl, Step::Completed).await,
            Err(e) => return finish(&shared, &entry, &mut ctl, Step::Failed(e)).await,
        }
    };
    loop {
        // Wait for messages without holding the lock: a pause or stop must not wait for the stream.
        let next = match end {
            ReplayEnd::Timestamp(_) => tokio::time::timeout(IDLE_CHECK, tail.next_batch()).await.ok(),
            _ => Some(tail.next_batch().await),
        };
        let mut ctl = entry.control.lock().await;
        if !ctl.owned_by(generation) || entry.status() != ReplayStatus::Active {
            // Paused, stopped, deleted or shut down while waiting: this batch is not replayed.
            return;
        }
        let step = match next {
            Some(Ok(batch)) => replay_batch(&shared, &entry, batch).await,
            Some(Err(e)) => Step::Failed(e),
            None => idle_check(&shared, &entry).await,
        };
        if !matches!(step, Step::Continue) {
            return finish(&shared, &entry, &mut ctl, step).await;
        }
    }
}

/// Resolves a timestamp start (stored at once, since it fixes where the replay begins) and opens the tail.
/// `None` when the session is already past its end.
async fn prepare(shared: &Shared, entry: &Entry) -> Result<Option<Box<dyn StreamTail>>> {
    let rec = entry.view.lock().clone();
    let mut current = rec.progress.current_offset;
    if let (false, ReplayStart::Timestamp(ts)) = (rec.start_found, rec.start) {
        // The end is read before the lookup: a message appended in between is either found by the lookup or lies
        // beyond `latest` and is seen by the tail.
        let latest = shared.streams.latest_offset(&entry.stream, 0).await?;
        let found = shared.streams.offset_for_timestamp(&entry.stream, 0, ts).await?;
        let start_found = found.is_some();
        current = found.unwrap_or(current.max(latest + 1));
        shared
            .commit(entry, |r| {
                r.progress.current_offset = current;
                r.start_found = start_found;
            })
            .await?;
    }
    if let ReplayEnd::Offset(end) = rec.end
        && current > end
    {
        return Ok(None);
    }
    let tail = shared.streams.subscribe(&entry.stream, &rec.sandbox_group, 0, current).await?;
    Ok(Some(tail))
}

/// Whether `m` lies beyond the session's inclusive end.
fn beyond_end(end: ReplayEnd, m: &StreamMessage) -> bool {
    match end {
        ReplayEnd::Open => false,
        ReplayEnd::Offset(e) => m.offset > e,
        ReplayEnd::Timestamp(t) => m.created_at > t,
    }
}

async fn replay_batch(shared: &Shared, entry: &Entry, batch: Vec<StreamMessage>) -> Step {
    let mut rec = entry.view.lock().clone();
    let mut reached_end = false;
    let mut changed = false;
    for m in &batch {
        if !rec.start_found {
            if let ReplayStart::Timestamp(ts) = rec.start
                && m.created_at < ts
            {
                rec.progress.current_offset = m.offset + 1;
                changed = true;
                continue;
            }
            rec.start_found = true;
        }
        if beyond_end(rec.end, m) {
            reached_end = true;
            break;
        }
        match shared.streams.commit_offset(&entry.stream, &rec.sandbox_group, 0, m.offset).await {
            Ok(()) => rec.progress.messages_replayed += 1,
            Err(e) => {
                rec.progress.errors += 1;
                tracing::warn!(session = %entry.id, offset = m.offset, error = %e, "replay could not commit an offset");
            }
        }
        rec.progress.current_offset = m.offset + 1;
        changed = true;
        // Visible at once, so a `get` during a long batch sees it move.
        entry.view.lock().progress = rec.progress;
    }
    if let ReplayEnd::Offset(end) = rec.end
        && rec.progress.current_offset > end
    {
        reached_end = true;
    }
    if changed {
        let (progress, start_found) = (rec.progress, rec.start_found);
        let saved = shared
            .commit(entry, |r| {
                r.progress = progress;
                r.start_found = start_found;
            })
            .await;
        if let Err(e) = saved {
            // The commits to the group are done; the stored progress catches up with the next batch.
            tracing::warn!(session = %entry.id, error = %e, "replay progress could not be stored");
            {
                let mut view = entry.view.lock();
                view.progress = progress;
                view.start_found = start_found;
            }
            shared.notify(entry);
        }
    }
    if reached_end { Step::Completed } else { Step::Continue }
}

/// A session bounded by a time, with nothing new to read: complete once the time has passed and the replay has
/// caught up with the stream.
async fn idle_check(shared: &Shared, entry: &Entry) -> Step {
    let ReplayEnd::Timestamp(end) = entry.view.lock().end else {
        return Step::Continue;
    };
    // Now before the end of the stream: a message stamped at or before `now` is either already counted by `latest`
    // or was stamped before we looked, and a later one is beyond `end`.
    let now = shared.clock.now_ns();
    let latest = match shared.streams.latest_offset(&entry.stream, 0).await {
        Ok(l) => l,
        Err(e) => return Step::Failed(e),
    };
    let current = entry.view.lock().progress.current_offset;
    if now > end && latest < current { Step::Completed } else { Step::Continue }
}

/// Ends the session: `completed` with its time, or `error`. The task's own handle is dropped from `control`.
async fn finish(shared: &Shared, entry: &Entry, ctl: &mut Control, step: Step) {
    let now = shared.clock.now_ns();
    let change = |r: &mut super::Record| match &step {
        Step::Completed => {
            r.status = ReplayStatus::Completed;
            r.progress.completed_at = now;
        }
        _ => r.status = ReplayStatus::Error,
    };
    if let Step::Failed(e) = &step {
        tracing::error!(session = %entry.id, stream = %entry.stream, error = %e, "replay session failed");
    }
    if let Err(e) = shared.commit(entry, change).await {
        // Memory still tells the truth; the stored session says `active`, which a restart turns into `error`.
        tracing::error!(session = %entry.id, error = %e, "replay session end could not be stored");
        {
            let mut view = entry.view.lock();
            change(&mut view);
            view.updated_at = now;
        }
        shared.notify(entry);
    }
    ctl.task = None;
}

//! Per-topic coalescing for the stats events: the first event of a quiet topic goes out at once; events that follow
//! within the window are held, each replacing the previous one, and the newest goes out when the window ends. A
//! burst of ten thousand writes is therefore two frames, and the last one carries the final value.

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Topics remembered before idle ones are forgotten (an idle topic needs no state: its next event goes out at once).
const PRUNE_ABOVE: usize = 1024;

#[derive(Default)]
pub(super) struct Throttle {
    slots: Mutex<HashMap<String, Slot>>,
}

struct Slot {
    last_sent: Instant,
    /// The order key of the last frame sent: a frame with a smaller key is stale and dropped.
    last_order: i64,
    /// The frame waiting for the end of the window (a flush is scheduled while this is set).
    pending: Option<(i64, Utf8Bytes)>,
}

pub(super) enum Offer {
    /// Send this frame now.
    SendNow(Utf8Bytes),
    /// Held: call [`Throttle::flush`] for the topic at this instant.
    FlushAt(Instant),
    /// Held, or dropped as stale; a flush is already scheduled or nothing needs sending.
    Held,
}

impl Throttle {
    /// Offers a frame for `topic`. `order` orders frames of one topic (e.g. a stream's latest offset); frames with
    /// equal orders replace each other.
    pub(super) fn offer(&self, topic: &str, order: i64, frame: Utf8Bytes, window: Duration) -> Offer {
        let now = Instant::now();
        let mut slots = self.slots.lock();
        if slots.len() > PRUNE_ABOVE {
            slots.retain(|_, s| s.pending.is_some() || now.duration_since(s.last_sent) < window);
        }
        let Some(slot) = slots.get_mut(topic) else {
            slots.insert(topic.to_owned(), Slot { last_sent: now, last_order: order, pending: None });
            return Offer::SendNow(frame);
        };
        if order < slot.last_order {
            return Offer::Held;
        }
        if let Some((held, _)) = &slot.pending {
            if order >= *held {
                slot.pending = Some((order, frame));
            }
            return Offer::Held;
        }
        if now.duration_since(slot.last_sent) >= window {
            slot.last_sent = now;
            slot.last_order = order;
            return Offer::SendNow(frame);
        }
        slot.pending = Some((order, frame));
        Offer::FlushAt(slot.last_sent + window)
    }

    /// The frame held for `topic`, if any, now counted as sent.
    pub(super) fn flush(&self, topic: &str) -> Option<Utf8Bytes> {
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(topic)?;
        let (order, frame) = slot.pending.take()?;
        slot.last_sent = Instant::now();
        slot.last_order = order;
        Some(frame)
    }
}

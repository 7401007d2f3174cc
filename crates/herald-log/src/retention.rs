//! Which segments retention deletes: a pure decision over segment summaries, so it is tested without files.
//!
//! Retention deletes whole sealed segments, oldest first, and stops at the first one that no limit wants gone.
//! Deleting only a prefix keeps the offsets of what remains contiguous, at the price of approximate limits: a
//! segment is kept until *all* of it may go, and an old segment behind a young one waits for the young one (which
//! only happens when producers' timestamps go backwards). The active segment is never deleted, because appends are
//! going into it; it becomes eligible once it rolls.

use std::time::Duration;

use crate::Retention;

/// What `enforce_retention` deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_removed: usize,
    pub records_removed: u64,
    pub bytes_removed: u64,
}

/// The facts about one segment that retention looks at.
#[derive(Clone, Copy, Debug)]
pub struct SegmentStat {
    pub records: u64,
    pub bytes: u64,
    pub max_timestamp: Option<i64>,
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// How many of the oldest segments to delete. `segments` is in offset order and its last element is the active
/// segment, which is never counted.
pub fn segments_to_remove(segments: &[SegmentStat], policy: &Retention, now_ns: i64) -> usize {
    let sealed = segments.len().saturating_sub(1);
    let mut total_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let mut total_records: u64 = segments.iter().map(|s| s.records).sum();
    let cutoff = policy.max_age.map(|age| now_ns.saturating_sub(duration_ns(age)));
    let mut n = 0;
    while n < sealed {
        let s = &segments[n];
        // A segment without records has nothing worth keeping, so it counts as expired.
        let expired = cutoff.is_some_and(|c| s.max_timestamp.is_none_or(|t| t < c));
        let over_bytes = policy.max_bytes.is_some_and(|max| total_bytes > max);
        let over_records = policy.max_records.is_some_and(|max| total_records > max);
        if !(expired || over_bytes || over_records) {
            break;
        }
        total_bytes -= s.bytes;
        total_records -= s.records;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(records: u64, bytes: u64, ts: i64) -> SegmentStat {
        SegmentStat { records, bytes, max_timestamp: Some(ts) }
    }

    #[test]
    fn no_policy_keeps_everything() {
        let s = [seg(10, 100, 1), seg(10, 100, 2), seg(10, 100, 3)];
        assert_eq!(segments_to_remove(&s, &Retention::default(), i64::MAX), 0);
    }

    #[test]
    fn age_deletes_a_prefix_only() {
        let s = [seg(1, 1, 100), seg(1, 1, 900), seg(1, 1, 200), seg(1, 1, 50)];
        let policy = Retention { max_age: Some(Duration::from_nanos(500)), ..Default::default() };
        // cutoff = 1000 - 500 = 500: the first segment is expired, the second is not, so the third waits.
        assert_eq!(segments_to_remove(&s, &policy, 1_000), 1);
        // Everything expired: the active (last) segment still stays.
        assert_eq!(segments_to_remove(&s, &policy, 10_000), 3);
    }

    #[test]
    fn bytes_and_records() {
        let s = [seg(10, 100, 0), seg(10, 100, 0), seg(10, 100, 0), seg(5, 50, 0)];
        let by_bytes = Retention { max_bytes: Some(200), ..Default::default() };
        assert_eq!(segments_to_remove(&s, &by_bytes, 0), 2); // 350 -> 250 -> 150
        let by_records = Retention { max_records: Some(25), ..Default::default() };
        assert_eq!(segments_to_remove(&s, &by_records, 0), 1); // 35 -> 25
        let tiny = Retention { max_records: Some(0), ..Default::default() };
        assert_eq!(segments_to_remove(&s, &tiny, 0), 3);
        assert_eq!(segments_to_remove(&s[3..], &tiny, 0), 0);
        assert_eq!(segments_to_remove(&[], &tiny, 0), 0);
    }

    #[test]
    fn empty_segments_count_as_expired_and_huge_ages_do_not_overflow() {
        let s = [SegmentStat { records: 0, bytes: 32, max_timestamp: None }, seg(1, 1, 0)];
        let policy = Retention { max_age: Some(Duration::from_secs(1)), ..Default::default() };
        assert_eq!(segments_to_remove(&s, &policy, 0), 1);
        let forever = Retention { max_age: Some(Duration::MAX), ..Default::default() };
        assert_eq!(segments_to_remove(&[seg(1, 1, i64::MIN), seg(1, 1, 0)], &forever, i64::MIN), 0);
    }
}

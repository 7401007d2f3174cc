//! Engine types ↔ flowmesh.v1 wire types.

use herald_engine::{ConsumerGroupState, Headers, Job, QueueStats, RetryPolicy, Schema, StreamMessage};
use herald_proto::flowmesh::v1 as pb;
use std::collections::HashMap;

pub fn headers_in(h: HashMap<String, String>) -> Headers {
    h.into_iter().collect()
}

pub fn headers_out(h: Headers) -> HashMap<String, String> {
    h.into_iter().collect()
}

pub fn message(m: StreamMessage) -> pb::Message {
    pb::Message {
        id: m.id,
        resource_path: m.resource_path,
        partition: m.partition,
        offset: m.offset,
        payload: m.payload,
        headers: headers_out(m.headers),
        created_at: m.created_at,
        schema_version: m.schema_version,
    }
}

pub fn job(j: Job) -> pb::Job {
    pb::Job {
        id: j.id,
        resource_path: j.resource_path,
        seq: j.seq,
        payload: j.payload,
        headers: headers_out(j.headers),
        created_at: j.created_at,
        visible_at: j.visible_at,
        reserve_until: j.reserve_until,
        attempts: j.attempts,
    }
}

pub fn group_state(s: ConsumerGroupState) -> pb::ConsumerGroupState {
    pb::ConsumerGroupState {
        stream: s.stream,
        group: s.group,
        partition: s.partition,
        committed_offset: s.committed_offset,
        latest_offset: s.latest_offset,
        lag: s.lag,
    }
}

pub fn stats(s: QueueStats) -> pb::QueueStats {
    pb::QueueStats {
        total_jobs: s.total_jobs,
        pending_jobs: s.pending_jobs,
        in_flight_jobs: s.in_flight_jobs,
        completed_jobs: s.completed_jobs,
        failed_jobs: s.failed_jobs,
        oldest_job_age_seconds: s.oldest_job_age_seconds,
    }
}

pub fn policy_out(p: RetryPolicy) -> pb::RetryPolicy {
    pb::RetryPolicy {
        max_attempts: p.max_attempts,
        initial_backoff_seconds: p.initial_backoff_seconds,
        max_backoff_seconds: p.max_backoff_seconds,
        backoff_multiplier: p.backoff_multiplier,
        backoff_strategy: p.backoff_strategy,
    }
}

pub fn policy_in(p: pb::RetryPolicy) -> RetryPolicy {
    RetryPolicy {
        max_attempts: p.max_attempts,
        initial_backoff_seconds: p.initial_backoff_seconds,
        max_backoff_seconds: p.max_backoff_seconds,
        backoff_multiplier: p.backoff_multiplier,
        backoff_strategy: p.backoff_strategy,
    }
}

pub fn schema(s: Schema) -> pb::Schema {
    pb::Schema {
        id: s.id,
        r#type: s.schema_type,
        version: s.version,
        definition: s.definition,
        created_at: s.created_at,
    }
}

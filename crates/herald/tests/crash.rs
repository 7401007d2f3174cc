//! Durability is tested by crashing: SIGKILL the real server in the middle of writes and acks, restart it, and check
//! that everything it acknowledged under `fsync = always` is there exactly once. Under `interval` and `never` the
//! crash of the process alone must lose nothing acknowledged either.

use herald_testkit::v1::{
    self as pb, kv_service_client::KvServiceClient, queue_service_client::QueueServiceClient,
    stream_service_client::StreamServiceClient,
};
use herald_testkit::{BinaryServer, path, write_provisioning_file};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_herald");
const STREAM: &str = "t1/ns1/stream/crash";
const QUEUE: &str = "t1/ns1/queue/crash";
/// Enqueued to during the crash, never consumed: every acknowledged enqueue must be there afterwards.
const IDLE_QUEUE: &str = "t1/ns1/queue/crash-idle";
const KV: &str = "t1/ns1/kv/crash";

fn start(dir: &Path) -> BinaryServer {
    start_with(dir, "always")
}

fn start_with(dir: &Path, fsync: &str) -> BinaryServer {
    let resources = dir.join("res.json");
    BinaryServer::start(
        Path::new(BIN),
        &dir.join("data"),
        &["--fsync", fsync, "--resources", resources.to_str().unwrap()],
    )
    .expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_stream_writes_and_queue_acks_loses_nothing_acknowledged() {
    sigkill_during_writes("always").await;
}

/// `interval` acknowledges from the page cache; a crash of the process alone (not the machine) must lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_interval_fsync_loses_nothing_acknowledged_either() {
    sigkill_during_writes("interval:50").await;
}

/// `never` has no periodic fsync that could push a forgotten buffer out by luck: every acknowledged write must have
/// reached the OS on the request path itself (for KV, the grouped journal flush of `Store::durable`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_fsync_never_loses_nothing_acknowledged_either() {
    sigkill_during_writes("never").await;
}

/// Waits until `loaded()` holds (30 s at most), SIGKILLs the server in the middle of the load, then waits for the
/// load's tasks, which stop at their first failed call.
async fn kill_under_load(
    server: &mut BinaryServer,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    loaded: impl Fn() -> bool,
) {
    let started = Instant::now();
    while !loaded() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_secs(30), "the load made no progress");
    }
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
}

/// Sets `KV` keys `<prefix>-00000000`, `<prefix>-00000001`, … to `value of <key>`, one at a time, recording each
/// acknowledged key in `acked`, until a call fails.
fn spawn_kv_writer(
    ch: tonic::transport::Channel,
    prefix: String,
    acked: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    let mut kv = KvServiceClient::new(ch);
    tokio::spawn(async move {
        for i in 0.. {
            let key = format!("{prefix}-{i:08}");
            let value = format!("value of {key}").into();
            if kv
                .set(pb::SetRequest { resource_path: path(KV), key: key.clone(), value, ttl_seconds: 0 })
                .await
                .is_err()
            {
                return;
            }
            acked.lock().unwrap().push(key);
        }
    })
}

async fn sigkill_during_writes(fsync: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_provisioning_file(&dir.path().join("res.json"), &[STREAM.into(), QUEUE.into(), IDLE_QUEUE.into(), KV.into()])
        .unwrap();
    let mut server = start_with(dir.path(), fsync);
    let ch = server.channel().await;

    // Jobs to work on while the crash happens.
    let mut queue = QueueServiceClient::new(ch.clone());
    let mut enqueued = HashSet::new();
    for i in 0..400 {
        let r = queue
            .enqueue(pb::EnqueueRequest {
                resource_path: path(QUEUE),
                payload: format!("job-{i}").into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        enqueued.insert(r.job_id);
    }

    let acked_events: Arc<Mutex<BTreeMap<i64, bytes::Bytes>>> = Arc::default();
    let acked_jobs: Arc<Mutex<HashSet<String>>> = Arc::default();
    let ack_attempted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let mut streams = StreamServiceClient::new(ch.clone());
        let acked = Arc::clone(&acked_events);
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let events: Vec<pb::Event> = (0..5)
                    .map(|i| pb::Event { payload: format!("w{w}-{n}-{i}").into(), headers: Default::default() })
                    .collect();
                let payloads: Vec<bytes::Bytes> = events.iter().map(|e| e.payload.clone()).collect();
                let Ok(r) = streams.write_events(pb::WriteEventsRequest { resource_path: path(STREAM), events }).await
                else {
                    return;
                };
                let offsets = r.into_inner().offsets;
                let mut a = acked.lock().unwrap();
                for (o, p) in offsets.into_iter().zip(payloads) {
                    a.insert(o, p);
                }
            }
        }));
    }
    // Enqueues to a queue nobody reads, and KV sets, keep going until the crash.
    let idle_enqueued: Arc<Mutex<HashSet<String>>> = Arc::default();
    let kv_set: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let mut q = QueueServiceClient::new(ch.clone());
        let done = Arc::clone(&idle_enqueued);
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let req = pb::EnqueueRequest {
                    resource_path: path(IDLE_QUEUE),
                    payload: format!("idle-{i}").into(),
                    ..Default::default()
                };
                let Ok(r) = q.enqueue(req).await else { return };
                done.lock().unwrap().insert(r.into_inner().job_id);
            }
        }));
    }
    // Several KV writers at once, so that their writes share journal flushes (`Store::durable`).
    for w in 0..4 {
        tasks.push(spawn_kv_writer(ch.clone(), format!("k{w}"), Arc::clone(&kv_set)));
    }
    // Enqueues keep going until the crash, so enqueues and acks are in flight when it happens.
    let enqueued_live: Arc<Mutex<HashSet<String>>> = Arc::default();
    {
        let mut q = QueueServiceClient::new(ch.clone());
        let live = Arc::clone(&enqueued_live);
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let req = pb::EnqueueRequest {
                    resource_path: path(QUEUE),
                    payload: format!("live-{i}").into(),
                    ..Default::default()
                };
                let Ok(r) = q.enqueue(req).await else { return };
                live.lock().unwrap().insert(r.into_inner().job_id);
            }
        }));
    }
    for _ in 0..2 {
        let mut q = QueueServiceClient::new(ch.clone());
        let (acked, attempted) = (Arc::clone(&acked_jobs), Arc::clone(&ack_attempted));
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(r) = q
                    .reserve(pb::ReserveRequest {
                        resource_path: path(QUEUE),
                        visibility_timeout_seconds: 1,
                        long_poll_timeout_seconds: 1,
                    })
                    .await
                else {
                    return;
                };
                let Some(job) = r.into_inner().job else { continue };
                attempted.lock().unwrap().insert(job.id.clone());
                if q.ack(pb::AckRequest { resource_path: path(QUEUE), job_id: job.id.clone() }).await.is_err() {
                    return;
                }
                acked.lock().unwrap().insert(job.id);
            }
        }));
    }

    // Let the load run, then crash the server in the middle of it.
    let started = Instant::now();
    kill_under_load(&mut server, tasks, || {
        started.elapsed() >= Duration::from_secs(2) && acked_events.lock().unwrap().len() >= 200
    })
    .await;
    drop(ch);

    let server = start_with(dir.path(), fsync);
    let ch = server.channel().await;

    // Streams: every acknowledged event at its offset, offsets contiguous from 0, no duplicates.
    let acked_events = acked_events.lock().unwrap().clone();
    let mut streams = StreamServiceClient::new(ch.clone());
    let mut all = Vec::new();
    loop {
        let msgs = streams
            .read_stream(pb::ReadStreamRequest {
                resource_path: path(STREAM),
                offset: all.len() as i64,
                max_messages: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .messages;
        if msgs.is_empty() {
            break;
        }
        all.extend(msgs);
    }
    assert!(all.len() >= acked_events.len(), "lost events: {} stored < {} acknowledged", all.len(), acked_events.len());
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.offset, i as i64, "offsets are contiguous");
    }
    for (offset, payload) in &acked_events {
        assert_eq!(&all[*offset as usize].payload, payload, "acknowledged event at offset {offset} survived");
    }
    let distinct: HashSet<&bytes::Bytes> = all.iter().map(|m| &m.payload).collect();
    assert_eq!(distinct.len(), all.len(), "no event stored twice");

    // Every acknowledged enqueue to the idle queue and every acknowledged KV set survived.
    let idle = idle_enqueued.lock().unwrap().clone();
    assert!(!idle.is_empty());
    let mut idle_queue = QueueServiceClient::new(ch.clone());
    let mut found = HashSet::new();
    loop {
        let req = pb::ReceiveRequest {
            resource_path: path(IDLE_QUEUE),
            max_jobs: 100,
            visibility_timeout_seconds: 600,
            long_poll_timeout_seconds: 0,
        };
        let jobs = idle_queue.receive(req).await.unwrap().into_inner().jobs;
        if jobs.is_empty() {
            break;
        }
        found.extend(jobs.into_iter().map(|j| j.id));
    }
    let lost: Vec<&String> = idle.iter().filter(|id| !found.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged enqueues lost, e.g. {:?}", lost.len(), lost.first());
    let keys = kv_set.lock().unwrap().clone();
    assert!(!keys.is_empty());
    let mut kv = KvServiceClient::new(ch.clone());
    let stored = kv
        .list_keys(pb::ListKeysRequest { resource_path: path(KV), prefix: String::new() })
        .await
        .unwrap()
        .into_inner()
        .keys;
    let stored: HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = keys.iter().filter(|k| !stored.contains(*k)).collect();
    assert!(lost.is_empty(), "{} acknowledged KV sets lost, e.g. {:?}", lost.len(), lost.first());

    // Queues: acknowledged jobs never come back; every other enqueued job is still there exactly once.
    enqueued.extend(enqueued_live.lock().unwrap().iter().cloned());
    let acked_jobs = acked_jobs.lock().unwrap().clone();
    let attempted = ack_attempted.lock().unwrap().clone();
    assert!(!acked_jobs.is_empty(), "workers acknowledged something before the crash");
    let mut queue = QueueServiceClient::new(ch);
    let mut remaining = Vec::new();
    loop {
        let jobs = queue
            .receive(pb::ReceiveRequest {
                resource_path: path(QUEUE),
                max_jobs: 100,
                visibility_timeout_seconds: 600,
                long_poll_timeout_seconds: 3,
            })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        if jobs.is_empty() {
            break;
        }
        remaining.extend(jobs.into_iter().map(|j| (j.id, j.payload)));
    }
    let remaining_set: HashSet<String> = remaining.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(remaining_set.len(), remaining.len(), "no job delivered twice after the restart");
    assert!(remaining_set.is_disjoint(&acked_jobs), "an acknowledged job came back");
    for id in &enqueued {
        assert!(
            remaining_set.contains(id) || acked_jobs.contains(id) || attempted.contains(id),
            "enqueued job {id} vanished"
        );
    }
    // The one enqueue in flight at the kill may have been committed without its reply reaching the client: that job
    // may be there (stored, never acknowledged), but nothing else the client did not enqueue.
    let live_acked = enqueued_live.lock().unwrap().len();
    let unknown: Vec<&bytes::Bytes> =
        remaining.iter().filter(|(id, _)| !enqueued.contains(id)).map(|(_, payload)| payload).collect();
    assert!(
        unknown.is_empty() || unknown == [&bytes::Bytes::from(format!("live-{live_acked}"))],
        "no job appeared from nowhere: {unknown:?} (live enqueues acknowledged: {live_acked})"
    );
}

/// KV writes alone, so no other commit flushes fjall's journal for them: each acknowledged `Set` must have reached the
/// OS through the grouped flush in `Store::durable`, even with no fsync ever (`never`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_kv_sets_alone_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    write_provisioning_file(&dir.path().join("res.json"), &[KV.into()]).unwrap();
    let mut server = start_with(dir.path(), "never");
    let ch = server.channel().await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let tasks = (0..8).map(|w| spawn_kv_writer(ch.clone(), format!("w{w}"), Arc::clone(&acked))).collect();
    kill_under_load(&mut server, tasks, || acked.lock().unwrap().len() >= 2000).await;
    drop(ch);

    let server = start_with(dir.path(), "never");
    let mut kv = KvServiceClient::new(server.channel().await);
    let acked = acked.lock().unwrap().clone();
    let mut lost = Vec::new();
    for key in &acked {
        let r = kv.get(pb::GetRequest { resource_path: path(KV), key: key.clone() }).await;
        match r {
            Ok(r) => assert_eq!(r.into_inner().value, format!("value of {key}").as_bytes(), "value of {key}"),
            Err(status) => lost.push((key.clone(), status.code())),
        }
    }
    assert!(lost.is_empty(), "{} of {} acknowledged KV sets lost, e.g. {:?}", lost.len(), acked.len(), lost.first());
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_reported_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    write_provisioning_file(&dir.path().join("res.json"), &[STREAM.into()]).unwrap();
    let mut server = start(dir.path());
    let mut streams = StreamServiceClient::new(server.channel().await);
    for n in 0..3 {
        let events = vec![pb::Event { payload: format!("e{n}").into(), headers: Default::default() }];
        streams.write_events(pb::WriteEventsRequest { resource_path: path(STREAM), events }).await.unwrap();
    }
    server.stop().unwrap();

    // Tear the last batch: cut its final bytes, as a crash during the write would.
    let seg =
        walk(&dir.path().join("data/streams")).into_iter().find(|p| p.extension().is_some_and(|e| e == "log")).unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 3).unwrap();

    let server = start(dir.path());
    let mut streams = StreamServiceClient::new(server.channel().await);
    let msgs = streams
        .read_stream(pb::ReadStreamRequest {
            resource_path: path(STREAM),
            offset: 0,
            max_messages: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(msgs.iter().map(|m| &m.payload[..]).collect::<Vec<_>>(), [&b"e0"[..], b"e1"]);
    assert!(server.log().contains("recovered with data loss"), "recovery is reported:\n{}", server.log());
    // The stream continues at the first free offset.
    let events = vec![pb::Event { payload: "e2-again".into(), headers: Default::default() }];
    let r = streams.write_events(pb::WriteEventsRequest { resource_path: path(STREAM), events }).await.unwrap();
    assert_eq!(r.into_inner().offsets, vec![2]);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_provisioning_file(&dir.path().join("res.json"), &[STREAM.into()]).unwrap();
    let _first = start(dir.path());
    let second = BinaryServer::start(Path::new(BIN), &dir.path().join("data"), &[]);
    let err = second.err().expect("the second server must not start").to_string();
    assert!(err.contains("is in use by another Herald process"), "{err}");
}

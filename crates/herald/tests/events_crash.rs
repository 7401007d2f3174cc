//! Addressed-event durability by crashing: SIGKILL the real server while publishers send events and a subscriber
//! acks some of them, under `fsync = always`; restart it, and check that every acknowledged publish is delivered
//! exactly once more unless its ack was acknowledged, with the same idem, block and payload, in block order.

use herald_testkit::BinaryServer;
use herald_testkit::ensync::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_herald");
const PK_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const PK_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn start(dir: &Path) -> BinaryServer {
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[events]\n[[events.identities]]\nname = \"a\"\npublic_key = \"{PK_A}\"\naccess_key = \"key-A\"\n\
             [[events.identities]]\nname = \"b\"\npublic_key = \"{PK_B}\"\naccess_key = \"key-B\"\n"
        ),
    )
    .unwrap();
    BinaryServer::start(Path::new(BIN), &dir.join("data"), &["--fsync", "always", "--config", config.to_str().unwrap()])
        .expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_publishes_and_acks_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let addr = server.grpc_addr.clone();

    // payload → idem, for every publish the server answered with success.
    let published: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let (published, addr) = (Arc::clone(&published), addr.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(&addr).await.unwrap();
            let cid = c.connect("key-A").await.unwrap();
            for n in 0.. {
                let payload = format!("w{writer}-{n:06}");
                match c.publish(&cid, "crash", PK_B, payload.clone()).await {
                    Ok(idem) => {
                        published.lock().unwrap().insert(payload, idem);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // A subscriber acks every event whose payload ends in an even digit; the others stay in flight or pending.
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let deferred: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    // Acks sent: the one in flight at the kill may or may not have been applied.
    let ack_sent: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    {
        let (acked, deferred, ack_sent, addr) =
            (Arc::clone(&acked), Arc::clone(&deferred), Arc::clone(&ack_sent), addr.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(&addr).await.unwrap();
            let cid = c.connect("key-B").await.unwrap();
            let mut stream = c.subscribe(&cid, "crash").await.unwrap();
            while let Ok(Some(m)) = stream.message().await {
                let even = m.payload.bytes().last().is_some_and(|d| (d - b'0').is_multiple_of(2));
                if !even {
                    // Let it time out; the window of 1 would stall, so defer it far into the future instead.
                    let req = herald_proto::ensync::DeferRequest {
                        client_id: cid.clone(),
                        message_idem: m.message_idem.clone(),
                        message_name: m.message_name.clone(),
                        delay_ms: 86_400_000,
                        ..Default::default()
                    };
                    let r: Result<herald_proto::ensync::DeferResponse, _> = c.unary("DeferMessage", req).await;
                    match r {
                        Ok(r) if r.success => deferred.lock().unwrap().insert(m.message_idem),
                        _ => return,
                    };
                    continue;
                }
                ack_sent.lock().unwrap().insert(m.message_idem.clone());
                if c.ack(&cid, &m).await.is_err() {
                    return;
                }
                acked.lock().unwrap().insert(m.message_idem);
            }
        }));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) || acked.lock().unwrap().len() < 50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(started.elapsed() < Duration::from_secs(60), "no progress:\n{}", server.log());
    }
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
    let published = published.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    let deferred = deferred.lock().unwrap().clone();
    let ack_sent = ack_sent.lock().unwrap().clone();
    assert!(published.len() >= 50);

    let server = start(dir.path());
    let log = server.log();
    assert!(log.contains("addressed events recovered"), "recovery is reported:\n{log}");
    let mut c = Client::new(&server.grpc_addr).await.unwrap();
    let cid = c.connect("key-B").await.unwrap();
    let mut stream = c.subscribe(&cid, "crash").await.unwrap();
    let is_even = |p: &str| p.ends_with(['0', '2', '4', '6', '8']);
    // Every answered publish of an even payload that was not acked must come back.
    let expected: BTreeMap<&String, &String> =
        published.iter().filter(|(p, idem)| is_even(p) && !ack_sent.contains(*idem)).collect();
    let mut got = Vec::new();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !expected.values().all(|idem| seen.contains(*idem)) {
        let m = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), stream.message())
            .await
            .unwrap_or_else(|_| {
                let missing = expected.values().filter(|i| !seen.contains(**i)).count();
                panic!("missing after restart: {missing} of {}", expected.len())
            })
            .unwrap()
            .expect("the stream stays open");
        assert!(!acked.contains(&m.message_idem), "acked event {} was delivered again", m.message_idem);
        assert!(!deferred.contains(&m.message_idem), "deferred event {} was delivered early", m.message_idem);
        if !is_even(&m.payload) {
            // Never delivered before the crash: defer it like the first subscriber did.
            let req = herald_proto::ensync::DeferRequest {
                client_id: cid.clone(),
                message_idem: m.message_idem.clone(),
                message_name: m.message_name.clone(),
                delay_ms: 86_400_000,
                ..Default::default()
            };
            let _: herald_proto::ensync::DeferResponse = c.unary("DeferMessage", req).await.unwrap();
            continue;
        }
        c.ack(&cid, &m).await.unwrap();
        seen.insert(m.message_idem.clone());
        got.push(m);
    }
    let blocks: Vec<i64> = got.iter().map(|m| m.partition_block).collect();
    assert!(blocks.windows(2).all(|w| w[0] < w[1]), "block order: {blocks:?}");
    for (payload, idem) in &expected {
        let m = got.iter().find(|m| &m.message_idem == *idem).unwrap();
        assert_eq!(&m.payload, *payload);
        assert_eq!(m.sender, PK_A);
    }
    // Deferred events are still stored, unchanged.
    for idem in deferred.iter().take(20) {
        let payload = published.iter().find(|(_, i)| *i == idem).map(|(p, _)| p.clone());
        let req = herald_proto::ensync::ReplayRequest {
            client_id: cid.clone(),
            message_idem: idem.clone(),
            message_name: "crash".into(),
        };
        let r: herald_proto::ensync::ReplayResponse = c.unary("ReplayMessage", req).await.unwrap();
        assert!(r.success, "{idem}: {}", r.message);
        if let Some(p) = payload {
            assert_eq!(r.message_data, p);
        }
    }
}

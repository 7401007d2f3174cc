//! Relay durability by crashing: SIGKILL the real server while several clients publish to one topic under
//! `fsync = always`, restart it, and check that every acknowledged message is in the topic's history exactly once,
//! in id order, with its payload.

use herald_testkit::BinaryServer;
use herald_testkit::relay_http::{http, login_admin, post_json};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

fn start(dir: &Path) -> BinaryServer {
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        r#"
[relay]
jwt_secret_key = "herald-crash-test-secret-0123456789abcdef"
bootstrap_admin_username = "admin"
bootstrap_admin_password = "12345678"
trusted_hosts = ["localhost", "127.0.0.1"]
allowed_origins = ["http://localhost:8080"]
ratelimit_enabled = false
"#,
    )
    .unwrap();
    BinaryServer::start(Path::new(BIN), &dir.join("data"), &["--fsync", "always", "--config", config.to_str().unwrap()])
        .expect("server starts")
}

fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("stream-id form");
    (ms.parse().unwrap(), seq.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_relay_publishes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let addr = server.relay_addr.parse().unwrap();
    let token = login_admin(addr).await["access_token"].as_str().unwrap().to_string();

    // (writer, n) → message id, for every publish the server answered 201 (singles and bulks of 10).
    let acked: Arc<Mutex<BTreeMap<(u64, u64), String>>> = Arc::default();
    let mut tasks = Vec::new();
    for writer in 0..4u64 {
        let (acked, token) = (Arc::clone(&acked), token.clone());
        tasks.push(tokio::spawn(async move {
            for n in (0..).step_by(10) {
                if writer % 2 == 0 {
                    let body = json!({"topic": "crash", "payload": {"w": writer, "n": n}});
                    match post_json(addr, "/api/v1/messages", &token, &body).await {
                        Ok(r) if r.status == 201 => {
                            acked.lock().unwrap().insert((writer, n), r.json()["message_id"].as_str().unwrap().into());
                        }
                        _ => return,
                    }
                } else {
                    let items: Vec<_> =
                        (n..n + 10).map(|i| json!({"topic": "crash", "payload": {"w": writer, "n": i}})).collect();
                    match post_json(addr, "/api/v1/messages/bulk", &token, &json!({ "messages": items })).await {
                        Ok(r) if r.status == 207 => {
                            let v = r.json();
                            let mut a = acked.lock().unwrap();
                            for (i, res) in v["results"].as_array().unwrap().iter().enumerate() {
                                a.insert((writer, n + i as u64), res["message_id"].as_str().unwrap().into());
                            }
                        }
                        _ => return,
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) || acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(started.elapsed() < Duration::from_secs(60), "load made no progress");
    }
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();

    let server = start(dir.path());
    let addr = server.relay_addr.parse().unwrap();
    let token = login_admin(addr).await["access_token"].as_str().unwrap().to_string();
    let mut stored: Vec<(String, (u64, u64))> = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/topics/crash/messages?order=asc&limit=100{cursor}");
        let page = http(addr, "GET", &path, Some(&token), "", b"").await.unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        let v = page.json();
        let items = v["messages"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        for m in items {
            let p = &m["payload"];
            stored
                .push((m["message_id"].as_str().unwrap().into(), (p["w"].as_u64().unwrap(), p["n"].as_u64().unwrap())));
        }
        cursor = format!("&cursor={}", v["next_cursor"].as_str().unwrap());
    }
    let ids: Vec<(u64, u64)> = stored.iter().map(|(id, _)| id_key(id)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
    let by_payload: BTreeMap<(u64, u64), String> = stored.iter().map(|(id, p)| (*p, id.clone())).collect();
    assert_eq!(by_payload.len(), stored.len(), "no message stored twice");
    for (key, id) in &acked {
        assert_eq!(by_payload.get(key), Some(id), "acknowledged message {key:?} ({id}) is missing after the crash");
    }
    // The server keeps accepting writes after the recovery, with ids after the old ones.
    let r = post_json(addr, "/api/v1/messages", &token, &json!({"topic": "crash", "payload": {"after": true}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(id_key(r.json()["message_id"].as_str().unwrap()) > *ids.last().unwrap());
    println!("{} acknowledged, {} stored", acked.len(), stored.len());
}

//! The client commands (`herald stream|queue|kv|pub|sub|request|relay`) run as a user would run them: the real
//! binary, against a real server on port 0, output read from stdout/stderr.

use herald_testkit::v1::{self as pb, queue_service_client::QueueServiceClient};
use herald_testkit::{TestOptions, TestServer, authed, path, relay_test_config};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const TOKEN: &str = "cli-token";

async fn server() -> TestServer {
    TestServer::start(TestOptions {
        tokens: vec![TOKEN.into()],
        resources: ["t1/ns1/stream/s", "t1/ns1/queue/q", "t1/ns1/kv/c"].iter().map(|s| s.to_string()).collect(),
        relay: Some(relay_test_config()),
        ..Default::default()
    })
    .await
    .unwrap()
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn herald(srv: &TestServer) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env("HERALD_SERVER", srv.grpc_url())
        .env("HERALD_TOKEN", TOKEN)
        .env("HERALD_NATS", srv.nats_url())
        .env_remove("HERALD_RELAY_TOKEN")
        .kill_on_drop(true);
    cmd
}

async fn run(srv: &TestServer, args: &[&str]) -> Out {
    let out = tokio::time::timeout(Duration::from_secs(30), herald(srv).args(args).output()).await.unwrap().unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

#[tokio::test]
async fn streams_write_read_bulk_import_and_tail() {
    let srv = server().await;
    let o = run(&srv, &["stream", "write", "t1/ns1/s", "hello", "world", "--header", "k=v"]).await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout, "offsets 0 1\n");

    let o = run(&srv, &["stream", "read", "t1/ns1/s", "--json"]).await;
    let msgs = json_lines(&o.stdout);
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0]["offset"].as_i64(), msgs[0]["payload"].as_str()), (Some(0), Some("hello")));
    assert_eq!(msgs[1]["payload_base64"], "d29ybGQ=");
    assert_eq!(msgs[1]["headers"]["k"], "v");
    let o = run(&srv, &["stream", "read", "t1/ns1/s", "--offset", "1"]).await;
    assert!(o.stdout.contains("world [k=v]") && !o.stdout.contains("hello"), "{}", o.stdout);

    // A bulk import: 1,200 lines in batches of 500, one event per non-empty line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.txt");
    let lines: Vec<String> = (1..=1200).map(|i| format!("line {i}")).collect();
    std::fs::write(&file, lines.join("\n\n") + "\n").unwrap();
    let o =
        run(&srv, &["stream", "write", "t1/ns1/s", "--file", file.to_str().unwrap(), "--batch", "500", "--json"]).await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(
        json_lines(&o.stdout),
        vec![serde_json::json!({"events": 1200, "first_offset": 2, "last_offset": 1201})]
    );
    let o = run(&srv, &["stream", "read", "t1/ns1/s", "--offset", "1201", "--json"]).await;
    assert_eq!(json_lines(&o.stdout)[0]["payload"], "line 1200");

    // Tail from the next offset: the event written afterwards is printed, then the command exits (--count 1).
    let tail = herald(&srv)
        .args(["stream", "tail", "t1/ns1/s", "--from", "1202", "--count", "1", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(run(&srv, &["stream", "write", "t1/ns1/s", "live"]).await.ok);
    let out = tokio::time::timeout(Duration::from_secs(10), tail.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success());
    let got = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!((got[0]["offset"].as_i64(), got[0]["payload"].as_str()), (Some(1202), Some("live")));

    // The server's errors in its own words, exit status 1.
    let o = run(&srv, &["stream", "read", "t1/ns1/missing"]).await;
    assert!(!o.ok);
    assert!(o.stderr.contains("NotFound: stream not found: t1/ns1/stream/missing"), "{}", o.stderr);
    let o = run(&srv, &["stream", "read", "t1/ns1/queue/q"]).await;
    assert!(!o.ok && o.stderr.contains("works on a stream, not a queue"), "{}", o.stderr);
    let o = run(&srv, &["stream", "read", "t1/ns1/s", "--token", "wrong"]).await;
    assert!(o.stderr.contains("Unauthenticated: invalid or expired token"), "{}", o.stderr);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn queues_enqueue_stats_and_dead_letters() {
    let srv = server().await;
    let o = run(&srv, &["queue", "enqueue", "t1/ns1/q", "job-1", "--header", "a=b", "--json"]).await;
    assert!(o.ok, "{}", o.stderr);
    let job = json_lines(&o.stdout).remove(0);
    assert_eq!(job["seq"], 0);
    let o = run(&srv, &["queue", "stats", "t1/ns1/q", "--json"]).await;
    let stats = json_lines(&o.stdout).remove(0);
    assert_eq!((stats["pending_jobs"].as_i64(), stats["total_jobs"].as_i64()), (Some(1), Some(1)));
    let o = run(&srv, &["queue", "dlq", "t1/ns1/q"]).await;
    assert!(o.ok && o.stdout.is_empty() && o.stderr.contains("empty"), "{o:?}", o = (&o.stdout, &o.stderr));

    // Dead-letter it: one attempt allowed, reserve, NACK.
    let mut q = QueueServiceClient::new(srv.channel().await);
    let policy = pb::RetryPolicy {
        max_attempts: 1,
        initial_backoff_seconds: 1,
        max_backoff_seconds: 1,
        backoff_multiplier: 1.0,
        backoff_strategy: "fixed".into(),
    };
    q.set_retry_policy(authed(
        pb::SetRetryPolicyRequest { resource_path: path("t1/ns1/queue/q"), policy: Some(policy) },
        TOKEN,
    ))
    .await
    .unwrap();
    let reserved = q
        .reserve(authed(pb::ReserveRequest { resource_path: path("t1/ns1/queue/q"), ..Default::default() }, TOKEN))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let nack = pb::NackRequest { resource_path: path("t1/ns1/queue/q"), job_id: reserved.id.clone(), delay_seconds: 0 };
    assert_eq!(q.nack(authed(nack, TOKEN)).await.unwrap_err().code(), tonic::Code::FailedPrecondition);

    let o = run(&srv, &["queue", "dlq", "t1/ns1/q", "--json"]).await;
    let dead = json_lines(&o.stdout);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["payload"], "job-1");
    assert_eq!(dead[0]["headers"]["x-flowmesh-original-job-id"], reserved.id.as_str());
    let o = run(&srv, &["queue", "dlq", "t1/ns1/q"]).await;
    assert!(o.stdout.contains(&format!("original {}", reserved.id)) && o.stdout.contains("job-1"), "{}", o.stdout);
    let dlq_id = dead[0]["id"].as_str().unwrap();
    let o = run(&srv, &["queue", "dlq-replay", "t1/ns1/q", dlq_id]).await;
    assert!(o.ok && o.stdout.starts_with("replayed as job "), "{} {}", o.stdout, o.stderr);
    let o = run(&srv, &["queue", "stats", "t1/ns1/q"]).await;
    assert!(o.stdout.contains("pending        1") && o.stdout.contains("dead-lettered  1"), "{}", o.stdout);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn kv_set_get_list_delete() {
    let srv = server().await;
    assert_eq!(run(&srv, &["kv", "set", "t1/ns1/c", "user:1", "alice"]).await.stdout, "set user:1\n");
    assert!(
        run(&srv, &["kv", "set", "t1/ns1/c", "user:2", "bob", "--ttl", "60"]).await.stdout.contains("expires in 60 s")
    );
    assert!(run(&srv, &["kv", "set", "t1/ns1/c", "order:1", "x"]).await.ok);
    // Raw value on a pipe (no newline added), JSON for scripts.
    assert_eq!(run(&srv, &["kv", "get", "t1/ns1/c", "user:1"]).await.stdout, "alice");
    let o = run(&srv, &["kv", "get", "t1/ns1/c", "user:2", "--json"]).await;
    assert_eq!(
        json_lines(&o.stdout)[0],
        serde_json::json!({"key": "user:2", "payload": "bob", "payload_base64": "Ym9i"})
    );
    assert_eq!(run(&srv, &["kv", "list", "t1/ns1/c", "--prefix", "user:"]).await.stdout, "user:1\nuser:2\n");
    let o = run(&srv, &["kv", "list", "t1/ns1/c", "--json"]).await;
    assert_eq!(json_lines(&o.stdout)[0]["keys"], serde_json::json!(["order:1", "user:1", "user:2"]));
    assert!(run(&srv, &["kv", "delete", "t1/ns1/c", "user:1"]).await.ok);
    let o = run(&srv, &["kv", "get", "t1/ns1/c", "user:1"]).await;
    assert!(!o.ok);
    assert!(o.stderr.contains("NotFound: key user:1 not found in KV store t1/ns1/kv/c"), "{}", o.stderr);
    let o = run(&srv, &["kv", "set", "t1/ns1/c", "k", "v", "--ttl", "31536001"]).await;
    assert!(o.stderr.contains("InvalidArgument: ttl_seconds cannot exceed 31536000 (1 year)"), "{}", o.stderr);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn nats_pub_sub_and_request() {
    use futures::StreamExt;
    let srv = server().await;
    let mut sub = herald(&srv)
        .args(["sub", "greet.*", "--count", "1", "--nats-token", TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `sub` says so on stderr once the server has the subscription.
    let mut err = BufReader::new(sub.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), err.next_line()).await.unwrap().unwrap();
    assert_eq!(first.as_deref(), Some("listening on greet.*"));
    let o = run(&srv, &["pub", "greet.world", "hello", "--nats-token", TOKEN]).await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout, "published 5 bytes to greet.world\n");
    let out = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "[greet.world] hello\n");

    // A responder in the test; the CLI's request gets its reply, and no responder is a clear error.
    let client = async_nats::ConnectOptions::new().token(TOKEN.into()).connect(srv.nats_url()).await.unwrap();
    let mut service = client.subscribe("svc.echo").await.unwrap();
    client.flush().await.unwrap();
    let responder = {
        let client = client.clone();
        tokio::spawn(async move {
            let m = service.next().await.unwrap();
            let reply = format!("echo: {}", String::from_utf8_lossy(&m.payload));
            client.publish(m.reply.unwrap(), reply.into()).await.unwrap();
            client.flush().await.unwrap();
        })
    };
    let o = run(&srv, &["request", "svc.echo", "ping", "--nats-token", TOKEN, "--json"]).await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(json_lines(&o.stdout)[0]["payload"], "echo: ping");
    responder.await.unwrap();
    let o = run(&srv, &["request", "svc.none", "ping", "--nats-token", TOKEN, "--timeout", "2"]).await;
    assert!(!o.ok && o.stderr.contains("no responders on svc.none"), "{}", o.stderr);
    let o = run(&srv, &["pub", "x", "y", "--nats-token", "wrong"]).await;
    assert!(!o.ok, "a wrong token must fail");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn relay_publish_logs_in_and_publishes() {
    let srv = server().await;
    let url = format!("http://{}", srv.relay_addr());
    let o = run(
        &srv,
        &[
            "relay",
            "publish",
            "prices",
            r#"{"price": 42}"#,
            "--url",
            &url,
            "--user",
            "admin",
            "--password",
            "12345678",
            "--metadata",
            "src=cli",
            "--json",
        ],
    )
    .await;
    assert!(o.ok, "{}", o.stderr);
    let answer = json_lines(&o.stdout).remove(0);
    assert_eq!(answer["topic"], "prices");
    assert!(answer["message_id"].as_str().is_some_and(|id| !id.is_empty()), "{answer}");
    let o =
        run(&srv, &["relay", "publish", "prices", "[1]", "--url", &url, "--user", "admin", "--password", "12345678"])
            .await;
    assert!(!o.ok && o.stderr.contains("must be a JSON object"), "{}", o.stderr);
    let o =
        run(&srv, &["relay", "publish", "prices", "{}", "--url", &url, "--user", "admin", "--password", "nope"]).await;
    assert!(!o.ok && o.stderr.contains("login failed: HTTP 401"), "{}", o.stderr);
    srv.shutdown().await.unwrap();
}

/// `herald bench` starts its own server for each scenario, drives it, and reports every scenario with requests
/// done and none failed. Short runs: this checks that the load generator works, not how fast anything is.
#[tokio::test]
async fn bench_runs_each_scenario_against_its_own_server() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--json",
        "--duration",
        "0.3",
        "--scenarios",
        "stream-append,stream-read,queue-cycle,kv-set,kv-get",
        "--fsync",
        "always,interval:50",
        "--clients",
        "2",
        "--kv-clients",
        "4",
        "--kv-connections",
        "2",
        "--batch",
        "16",
        "--work-dir",
        dir.path().to_str().unwrap(),
    ];
    let run = Command::new(env!("CARGO_BIN_EXE_herald")).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let results = json_lines(&String::from_utf8(out.stdout).unwrap());
    let names: Vec<(&str, &str)> =
        results.iter().map(|r| (r["scenario"].as_str().unwrap(), r["fsync"].as_str().unwrap())).collect();
    assert_eq!(
        names,
        [
            ("stream-append", "always"),
            ("stream-append", "interval:50"),
            ("stream-read", "interval:50"),
            ("queue-cycle", "interval:50"),
            ("kv-set", "interval:50"),
            ("kv-get", "interval:50"),
        ]
    );
    for r in &results {
        assert!(r["ops"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
    }
    // The append scenario sends 16 records of 1 KiB per request.
    let append = &results[1];
    let per_op = append["records_per_sec"].as_f64().unwrap() / append["ops_per_sec"].as_f64().unwrap();
    assert!((per_op - 16.0).abs() < 1e-6, "{append}");
}

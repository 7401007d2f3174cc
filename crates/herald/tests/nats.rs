//! The NATS listener against the contract (compat/nats-fluxlib.md §1 and the §5 checklist): raw protocol sessions
//! over TCP for exact bytes, and the real Rust client, async-nats, for what applications see. Every test starts a
//! whole server on port 0.

use futures::StreamExt;
use herald_server::auth::{TokenConfig, UserConfig};
use herald_server::config::NatsConfig;
use herald_testkit::{TestOptions, TestServer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECT: &str = r#"CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}"#;

async fn server() -> TestServer {
    server_with(TestOptions::default()).await
}

async fn server_with(options: TestOptions) -> TestServer {
    TestServer::start(options).await.expect("server starts")
}

fn nats_config(f: impl FnOnce(&mut NatsConfig)) -> Option<NatsConfig> {
    let mut c = NatsConfig::default();
    f(&mut c);
    Some(c)
}

/// A hand-driven protocol session.
struct Raw {
    stream: TcpStream,
    /// Bytes received and not yet consumed by an `expect`.
    got: Vec<u8>,
    eof: bool,
}

impl Raw {
    /// Connects and reads the INFO line.
    async fn open(addr: SocketAddr) -> (Raw, String) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut raw = Raw { stream, got: Vec::new(), eof: false };
        let info = raw.line().await;
        (raw, info)
    }

    /// Connects and completes the handshake with `connect` (CONNECT + PING, expecting exactly PONG).
    async fn connected(addr: SocketAddr, connect: &str) -> Raw {
        let (mut raw, _) = Raw::open(addr).await;
        raw.send(&format!("{connect}\r\nPING\r\n")).await;
        raw.expect("PONG\r\n").await;
        raw
    }

    async fn send(&mut self, s: &str) {
        self.send_bytes(s.as_bytes()).await;
    }

    async fn send_bytes(&mut self, b: &[u8]) {
        let _ = self.stream.write_all(b).await;
    }

    /// Reads more bytes (or notes EOF) within `timeout`. Returns false if nothing arrived.
    async fn fill(&mut self, timeout: Duration) -> bool {
        if self.eof {
            return false;
        }
        let mut buf = [0u8; 65536];
        match tokio::time::timeout(timeout, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                self.got.extend_from_slice(&buf[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// The next line, including its `\r\n`.
    async fn line(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(i) = self.got.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.got.drain(..i + 2).collect();
                return String::from_utf8(line).unwrap();
            }
            assert!(Instant::now() < deadline, "no complete line; have {:?}", String::from_utf8_lossy(&self.got));
            self.fill(Duration::from_millis(100)).await;
        }
    }

    /// Asserts that exactly `want` comes next.
    async fn expect(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.got.len() < want.len() && Instant::now() < deadline && !self.eof {
            self.fill(Duration::from_millis(100)).await;
        }
        let n = want.len().min(self.got.len());
        let have: Vec<u8> = self.got.drain(..n).collect();
        assert_eq!(String::from_utf8_lossy(&have), want);
    }

    /// Asserts that the server closes the connection after sending exactly `want` (which may be empty).
    async fn expect_then_closed(&mut self, want: &str) {
        self.expect(want).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.eof && Instant::now() < deadline {
            self.fill(Duration::from_millis(100)).await;
        }
        assert!(self.eof, "connection closed");
        assert_eq!(String::from_utf8_lossy(&self.got), "", "nothing after the expected bytes");
    }

    /// Asserts that nothing arrives for `quiet`.
    async fn expect_silence(&mut self, quiet: Duration) {
        self.fill(quiet).await;
        assert_eq!(String::from_utf8_lossy(&self.got), "", "unexpected bytes");
    }
}

#[tokio::test]
async fn ac01_info_then_exactly_pong_after_connect_and_ping() {
    let srv = server().await;
    let (mut raw, info) = Raw::open(srv.nats_addr()).await;
    assert!(info.starts_with("INFO {") && info.ends_with("}\r\n"), "{info}");
    let json: serde_json::Value = serde_json::from_str(&info[5..info.len() - 2]).unwrap();
    assert!(json["server_id"].as_str().unwrap().starts_with('N'));
    assert_eq!(json["version"], "2.10.0");
    assert_eq!(json["proto"], 1);
    assert_eq!(json["headers"], true);
    assert_eq!(json["max_payload"], 1048576);
    assert!(json["client_id"].is_u64());
    assert_eq!(json["port"], srv.nats_addr().port());
    assert!(json.get("auth_required").is_none() && json.get("tls_required").is_none());
    assert!(!info.contains("null"));
    raw.send(&format!("{CONNECT}\r\nPING\r\n")).await;
    raw.expect("PONG\r\n").await;
    raw.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn transcript_a_wildcards_queue_and_headers_in_order() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    c.send("SUB demo.>  1\r\nSUB demo.q workers 2\r\nPUB demo.a  5\r\nhello\r\n").await;
    c.send("HPUB demo.h  56 58\r\nNATS/1.0\r\nX-Trace: 1\r\nContent-Type: application/json\r\n\r\nhi\r\nPING\r\n")
        .await;
    c.expect(
        "MSG demo.a 1 5\r\nhello\r\nHMSG demo.h 1 56 58\r\nNATS/1.0\r\nX-Trace: 1\r\nContent-Type: application/json\r\n\r\nhi\r\nPONG\r\n",
    )
    .await;
}

#[tokio::test]
async fn ac14_verbose_oks_and_pedantic_publish_subjects() {
    let srv = server().await;
    let (mut v, _) = Raw::open(srv.nats_addr()).await;
    v.send("CONNECT {\"verbose\":true,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"protocol\":1}\r\n")
        .await;
    v.expect("+OK\r\n").await;
    v.send("SUB foo 1\r\nPUB foo bar.reply 5\r\nhello\r\nSUB foo..bar 4\r\nUNSUB 1\r\nPING\r\n").await;
    v.expect("+OK\r\n+OK\r\nMSG foo 1 bar.reply 5\r\nhello\r\n-ERR 'Invalid Subject'\r\n+OK\r\nPONG\r\n").await;

    let mut p = Raw::connected(srv.nats_addr(), r#"CONNECT {"verbose":false,"pedantic":true,"protocol":1}"#).await;
    p.send("SUB foo.> 1\r\nPUB foo.* 1\r\na\r\nPING\r\n").await;
    // Reported, and still routed, as the reference does.
    p.expect("-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 1\r\na\r\nPONG\r\n").await;
}

#[tokio::test]
async fn ac04_invalid_subscribe_subjects_keep_the_connection_open() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    c.send("SUB foo..bar 1\r\nSUB foo.>.bar 2\r\nSUB .a 3\r\nSUB foo* 4\r\nSUB service/tick 5\r\nPING\r\n").await;
    c.expect("-ERR 'Invalid Subject'\r\n-ERR 'Invalid Subject'\r\n-ERR 'Invalid Subject'\r\nPONG\r\n").await;
    c.send("PUB service/tick 1\r\nt\r\nPUB foo* 1\r\nu\r\n").await;
    c.expect("MSG service/tick 5 1\r\nt\r\nMSG foo* 4 1\r\nu\r\n").await;
}

#[tokio::test]
async fn ac15_protocol_errors_close_with_the_references_words() {
    let srv = server().await;
    let long = format!("SUB {} 1\r\n", "a".repeat(5000));
    let cases: Vec<(String, &str)> = vec![
        ("FOO\r\n".into(), "-ERR 'Unknown Protocol Operation'\r\n"),
        (long, "-ERR 'maximum control line exceeded'\r\n"),
        (r#"CONNECT {"protocol":2}"#.to_string() + "\r\n", "-ERR 'invalid client protocol'\r\n"),
        (
            r#"CONNECT {"headers":false,"no_responders":true}"#.to_string() + "\r\n",
            "-ERR 'no responders requires headers support'\r\n",
        ),
        (format!("{CONNECT}\r\nPUB foo 3\r\nabcdef\r\n"), "-ERR 'Unknown Protocol Operation'\r\n"),
        ("CONNECT {bad\r\n".into(), ""),
        (format!("{CONNECT}\r\nPUB a b c 1\r\n"), ""),
        (r#"CONNECT {"verbose":false,"headers":false}"#.to_string() + "\r\nHPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n", ""),
        (format!("{CONNECT}\r\nMSG a 1 1\r\nx\r\n"), "-ERR 'Unknown Protocol Operation'\r\n"),
    ];
    for (input, want) in cases {
        let (mut c, _) = Raw::open(srv.nats_addr()).await;
        c.send(&input).await;
        c.expect_then_closed(want).await;
    }
    // The server is unharmed.
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    c.send("PING\r\n").await;
    c.expect("PONG\r\n").await;
}

#[tokio::test]
async fn ac13_unsub_with_max_counts_earlier_deliveries() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    c.send("SUB u 1\r\nUNSUB 1 2\r\nPUB u 1\r\nx\r\nPUB u 1\r\nx\r\nPUB u 1\r\nx\r\nPUB u 1\r\nx\r\n").await;
    c.send("SUB v 2\r\nPUB v 1\r\ny\r\nPUB v 1\r\ny\r\nUNSUB 2 1\r\nPUB v 1\r\ny\r\n").await;
    c.send("SUB w 3\r\nUNSUB 3 0\r\nPUB w 1\r\nz\r\nUNSUB 99\r\nPING\r\n").await;
    c.expect("MSG u 1 1\r\nx\r\nMSG u 1 1\r\nx\r\nMSG v 2 1\r\ny\r\nMSG v 2 1\r\ny\r\nPONG\r\n").await;
    // A new SUB may reuse a sid whose subscription ended.
    c.send("SUB u2 1\r\nPUB u2 1\r\nq\r\nPING\r\n").await;
    c.expect("MSG u2 1 1\r\nq\r\nPONG\r\n").await;
}

#[tokio::test]
async fn a_duplicate_sid_keeps_the_original_subscription() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    c.send("SUB a 1\r\nSUB b 1\r\nPUB b 1\r\nx\r\nPUB a 1\r\ny\r\nPING\r\n").await;
    c.expect("MSG a 1 1\r\ny\r\nPONG\r\n").await;
}

#[tokio::test]
async fn transcript_d_queue_group_and_plain_on_one_connection() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    c.send("SUB qq g 1\r\nSUB qq 2\r\nSUB qq g 3\r\nPUB qq 1\r\nz\r\nPING\r\n").await;
    let mut frames = Vec::new();
    for _ in 0..5 {
        frames.push(c.line().await);
    }
    assert_eq!(frames[4], "PONG\r\n");
    let sids: Vec<&str> = frames[..4].iter().step_by(2).map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert!(sids.contains(&"2"), "{frames:?}");
    assert!(sids.contains(&"1") ^ sids.contains(&"3"), "exactly one group member: {frames:?}");
}

#[tokio::test]
async fn ac08_no_responders_go_to_the_requesters_inbox_only_when_negotiated() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    c.send("SUB _INBOX.z.* 1\r\nPUB svc _INBOX.z.1 2\r\nhi\r\nPING\r\n").await;
    c.expect("HMSG _INBOX.z.1 1 35 35\r\nNATS/1.0 503\r\nNats-Subject: svc\r\n\r\n\r\nPONG\r\n").await;

    let mut old = Raw::connected(srv.nats_addr(), r#"CONNECT {"verbose":false,"headers":false,"protocol":1}"#).await;
    old.send("SUB _INBOX.z.* 1\r\nPUB svc _INBOX.z.1 2\r\nhi\r\nPING\r\n").await;
    old.expect("PONG\r\n").await;
    old.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn transcript_g_headers_are_stripped_for_a_subscriber_without_them() {
    let srv = server().await;
    let mut sub = Raw::connected(srv.nats_addr(), r#"CONNECT {"verbose":false,"protocol":1,"headers":false}"#).await;
    sub.send("SUB hh 1\r\nPING\r\n").await;
    sub.expect("PONG\r\n").await;
    let mut publ = Raw::connected(srv.nats_addr(), CONNECT).await;
    publ.send("HPUB hh 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n").await;
    publ.expect("PONG\r\n").await;
    sub.expect("MSG hh 1 2\r\nhi\r\n").await;
}

#[tokio::test]
async fn echo_off_skips_the_publishers_own_subscriptions() {
    let srv = server().await;
    let mut me = Raw::connected(srv.nats_addr(), r#"CONNECT {"verbose":false,"echo":false,"protocol":1}"#).await;
    let mut other = Raw::connected(srv.nats_addr(), CONNECT).await;
    other.send("SUB e 1\r\nPING\r\n").await;
    other.expect("PONG\r\n").await;
    me.send("SUB e 1\r\nPUB e 1\r\nx\r\nPING\r\n").await;
    me.expect("PONG\r\n").await;
    other.expect("MSG e 1 1\r\nx\r\n").await;
}

#[tokio::test]
async fn ac11_max_payload_violation_closes_before_reading_the_payload() {
    let srv = server_with(TestOptions { nats: nats_config(|n| n.max_payload = 1024), ..Default::default() }).await;
    let (mut c, info) = Raw::open(srv.nats_addr()).await;
    assert!(info.contains("\"max_payload\":1024"));
    c.send(&format!("{CONNECT}\r\nPUB foo 1024\r\n{}\r\nPING\r\n", "a".repeat(1024))).await;
    c.expect("PONG\r\n").await;
    c.send("PUB foo 1025\r\n").await;
    c.expect_then_closed("-ERR 'Maximum Payload Violation'\r\n").await;
}

#[tokio::test]
async fn ac16_a_client_that_never_answers_pings_is_stale() {
    let srv = server_with(TestOptions {
        nats: nats_config(|n| {
            n.ping_interval = "200ms".into();
            n.ping_max = 2;
        }),
        ..Default::default()
    })
    .await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    let started = Instant::now();
    c.expect("PING\r\n").await;
    c.expect("PING\r\n").await;
    c.expect_then_closed("-ERR 'Stale Connection'\r\n").await;
    assert!(started.elapsed() < Duration::from_secs(3));

    // A client that answers stays.
    let mut live = Raw::connected(srv.nats_addr(), CONNECT).await;
    for _ in 0..5 {
        live.expect("PING\r\n").await;
        live.send("PONG\r\n").await;
    }
    live.send("PING\r\n").await;
    live.expect("PONG\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ac19_a_slow_consumer_is_cut_off_without_err_and_nobody_else_suffers() {
    let srv = server_with(TestOptions {
        nats: nats_config(|n| {
            n.max_pending = 65536;
            n.max_payload = 16384;
        }),
        ..Default::default()
    })
    .await;
    let addr = srv.nats_addr();
    // A subscriber with a small receive buffer that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Raw { stream: socket.connect(addr).await.unwrap(), got: Vec::new(), eof: false };
    slow.line().await;
    slow.send(&format!("{CONNECT}\r\nSUB big 1\r\nPING\r\n")).await;
    slow.expect("PONG\r\n").await;

    let reader = async_nats::connect(srv.nats_url()).await.unwrap();
    let mut sub = reader.subscribe("big").await.unwrap();
    reader.flush().await.unwrap();

    let publisher = async_nats::connect(srv.nats_url()).await.unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; 1000]);
    for _ in 0..5000 {
        publisher.publish("big", payload.clone()).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), publisher.flush()).await.unwrap().unwrap();
    let mut received = 0;
    while received < 5000 {
        tokio::time::timeout(Duration::from_secs(10), sub.next()).await.expect("reader keeps receiving").unwrap();
        received += 1;
    }
    // Only now read what the slow subscriber was sent: messages, then EOF, and no -ERR anywhere.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slow.eof && Instant::now() < deadline {
        slow.fill(Duration::from_millis(200)).await;
    }
    assert!(slow.eof, "the slow consumer was disconnected");
    assert!(!String::from_utf8_lossy(&slow.got).contains("-ERR"), "no -ERR for a slow consumer");
    assert!(slow.got.len() < 5000 * 1000, "it did not get everything");
}

#[tokio::test]
async fn ac20_authentication_with_tokens_users_timeouts_and_permissions() {
    let srv = server_with(TestOptions {
        tokens: vec!["s3cret-token".into()],
        users: vec![UserConfig {
            user: "alice".into(),
            password: "secret".into(),
            tenants: vec!["*".into()],
            publish: vec!["orders.>".into(), "_INBOX.>".into()],
            subscribe: vec!["orders.*".into(), "_INBOX.>".into()],
            subscribe_deny: vec!["orders.secret".into()],
            ..Default::default()
        }],
        token_configs: vec![TokenConfig {
            token: "reader".into(),
            tenants: vec!["*".into()],
            publish: vec!["nothing".into()],
            ..Default::default()
        }],
        nats: nats_config(|n| n.auth_timeout = "300ms".into()),
        ..Default::default()
    })
    .await;
    let addr = srv.nats_addr();
    let (_, info) = Raw::open(addr).await;
    assert!(info.contains("\"auth_required\":true"));

    // A token, and a user with the right password, get in.
    Raw::connected(addr, r#"CONNECT {"verbose":false,"auth_token":"s3cret-token","protocol":1}"#).await;
    let mut alice =
        Raw::connected(addr, r#"CONNECT {"verbose":false,"user":"alice","pass":"secret","protocol":1,"headers":true}"#)
            .await;
    // Wrong password, unknown user, no credentials, wrong token: refused.
    for bad in [
        r#"CONNECT {"user":"alice","pass":"wrong"}"#,
        r#"CONNECT {"user":"mallory","pass":"secret"}"#,
        r#"CONNECT {"verbose":false}"#,
        r#"CONNECT {"auth_token":"guess"}"#,
    ] {
        let (mut c, _) = Raw::open(addr).await;
        c.send(&format!("{bad}\r\nPING\r\n")).await;
        c.expect_then_closed("-ERR 'Authorization Violation'\r\n").await;
    }
    // Anything before CONNECT is a violation; silence is a timeout.
    let (mut c, _) = Raw::open(addr).await;
    c.send("SUB foo 1\r\n").await;
    c.expect_then_closed("-ERR 'Authorization Violation'\r\n").await;
    let (mut c, _) = Raw::open(addr).await;
    c.expect_then_closed("-ERR 'Authentication Timeout'\r\n").await;

    // Permissions: violations are reported and the connection stays.
    alice.send("PUB payments.x 1\r\nx\r\nSUB orders.> 1\r\nSUB orders.secret 2\r\nSUB payments q 3\r\n").await;
    alice.send("SUB orders.new 4\r\nPUB orders.new 1\r\ny\r\nPING\r\n").await;
    alice
        .expect(concat!(
            "-ERR 'Permissions Violation for Publish to \"payments.x\"'\r\n",
            "-ERR 'Permissions Violation for Subscription to \"orders.>\"'\r\n",
            "-ERR 'Permissions Violation for Subscription to \"orders.secret\"'\r\n",
            "-ERR 'Permissions Violation for Subscription to \"payments\" using queue \"q\"'\r\n",
            "MSG orders.new 4 1\r\ny\r\nPONG\r\n"
        ))
        .await;

    // The real client: a permitted token works, a wrong one fails to connect with the server's words.
    let nc = async_nats::ConnectOptions::with_token("s3cret-token".into()).connect(srv.nats_url()).await.unwrap();
    nc.publish("anything", "ok".into()).await.unwrap();
    nc.flush().await.unwrap();
    let err = async_nats::ConnectOptions::with_token("nope".into())
        .retry_on_initial_connect()
        .max_reconnects(Some(1))
        .connect(srv.nats_url())
        .await;
    if let Ok(c) = err {
        // The client may connect lazily; a request must then fail.
        assert!(tokio::time::timeout(Duration::from_secs(2), c.flush()).await.map(|r| r.is_err()).unwrap_or(true));
    }
}

#[tokio::test]
async fn connection_and_subscription_limits() {
    let srv = server_with(TestOptions {
        nats: nats_config(|n| {
            n.max_connections = 2;
            n.max_subscriptions = 2;
        }),
        ..Default::default()
    })
    .await;
    let addr = srv.nats_addr();
    let mut a = Raw::connected(addr, CONNECT).await;
    let _b = Raw::connected(addr, CONNECT).await;
    let (mut c, _) = Raw::open(addr).await;
    c.expect_then_closed("-ERR 'maximum connections exceeded'\r\n").await;
    a.send("SUB s1 1\r\nSUB s2 2\r\nSUB s3 3\r\nUNSUB 1\r\nSUB s3 3\r\nPUB s3 1\r\nx\r\nPING\r\n").await;
    a.expect("-ERR 'maximum subscriptions exceeded'\r\nMSG s3 3 1\r\nx\r\nPONG\r\n").await;
    // Closing a connection frees its slot.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut c, _) = Raw::open(addr).await;
        c.send(&format!("{CONNECT}\r\nPING\r\n")).await;
        c.fill(Duration::from_millis(500)).await;
        if String::from_utf8_lossy(&c.got).contains("PONG") {
            break;
        }
        assert!(Instant::now() < deadline, "slot freed");
    }
}

#[tokio::test]
async fn ac21_lame_duck_announces_then_closes_and_refuses_new_clients() {
    let srv = server_with(TestOptions {
        nats: nats_config(|n| {
            n.lame_duck_grace_period = "200ms".into();
            n.lame_duck_duration = "400ms".into();
        }),
        ..Default::default()
    })
    .await;
    let addr = srv.nats_addr();
    let (mut c, info) = Raw::open(addr).await;
    c.send(&format!("{CONNECT}\r\nPING\r\n")).await;
    c.expect("PONG\r\n").await;
    let running = srv.server.as_ref().unwrap();
    tokio::join!(running.nats_lame_duck(), async {
        let ldm = c.line().await;
        assert!(ldm.starts_with("INFO {") && ldm.ends_with("}\r\n"), "{ldm}");
        let mut want: serde_json::Value = serde_json::from_str(&info[5..]).unwrap();
        want["ldm"] = true.into();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&ldm[5..]).unwrap(), want, "the original INFO plus ldm");
    });
    c.expect_then_closed("").await;
    assert!(TcpStream::connect(addr).await.is_err(), "new connections are refused");
}

#[tokio::test]
async fn async_nats_pub_sub_wildcards_queue_groups_headers_and_requests() {
    let srv = server().await;
    let url = srv.nats_url();
    let a = async_nats::connect(&url).await.unwrap();
    let b = async_nats::connect(&url).await.unwrap();
    assert_eq!(a.server_info().version, "2.10.0");

    // Ordering and wildcards.
    let mut ord = a.subscribe("ord").await.unwrap();
    let mut wild = a.subscribe("a.>").await.unwrap();
    a.flush().await.unwrap();
    for i in 0..1000 {
        b.publish("ord", i.to_string().into()).await.unwrap();
    }
    b.publish("a.b.c", "w".into()).await.unwrap();
    b.flush().await.unwrap();
    for i in 0..1000 {
        let m = tokio::time::timeout(Duration::from_secs(5), ord.next()).await.unwrap().unwrap();
        assert_eq!(m.payload, i.to_string().as_bytes());
        assert_eq!(m.subject.as_str(), "ord");
    }
    let m = tokio::time::timeout(Duration::from_secs(5), wild.next()).await.unwrap().unwrap();
    assert_eq!(m.subject.as_str(), "a.b.c");

    // Headers round trip.
    let mut h = a.subscribe("h").await.unwrap();
    a.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Trace", "1");
    b.publish_with_headers("h", headers, "hi".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), h.next()).await.unwrap().unwrap();
    assert_eq!(m.headers.unwrap().get("X-Trace").unwrap().as_str(), "1");
    assert_eq!(m.payload, "hi");

    // Queue groups: every message once, spread over the members.
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(a.queue_subscribe("jobs", "workers".into()).await.unwrap());
    }
    a.flush().await.unwrap();
    for _ in 0..300 {
        b.publish("jobs", "j".into()).await.unwrap();
    }
    b.flush().await.unwrap();
    let mut counts = Vec::new();
    let mut total = 0;
    for m in &mut members {
        let mut n = 0;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), m.next()).await {
            n += 1;
        }
        total += n;
        counts.push(n);
    }
    assert_eq!(total, 300, "{counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");

    // Request/reply through the muxed inbox (sid 0), and no-responders.
    let mut svc = b.subscribe("svc.echo").await.unwrap();
    b.flush().await.unwrap();
    let responder = b.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let mut body = b"pong:".to_vec();
                body.extend_from_slice(&m.payload);
                responder.publish(reply, body.into()).await.unwrap();
            }
        }
    });
    for _ in 0..20 {
        let r = a.request("svc.echo", "ping".into()).await.unwrap();
        assert_eq!(r.payload, "pong:ping");
    }
    let started = Instant::now();
    let err = a.request("nobody.home", "x".into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn many_subscriptions_and_fan_out() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    let mut subs = String::new();
    for i in 0..10_000 {
        subs.push_str(&format!("SUB many.{i} {i}\r\n"));
    }
    c.send(&subs).await;
    let mut pubs = String::new();
    for i in (0..10_000).step_by(97) {
        pubs.push_str(&format!("PUB many.{i} 1\r\nx\r\n"));
    }
    c.send(&format!("{pubs}PING\r\n")).await;
    let mut expected = String::new();
    for i in (0..10_000).step_by(97) {
        expected.push_str(&format!("MSG many.{i} {i} 1\r\nx\r\n"));
    }
    expected.push_str("PONG\r\n");
    c.expect(&expected).await;
    assert_eq!(srv.server.as_ref().unwrap().engine().pubsub.len(), 10_000);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !srv.server.as_ref().unwrap().engine().pubsub.is_empty() {
        assert!(Instant::now() < deadline, "a closed connection's subscriptions are removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_closes_nats_clients() {
    let srv = server().await;
    let mut c = Raw::connected(srv.nats_addr(), CONNECT).await;
    srv.shutdown().await.unwrap();
    c.expect_then_closed("").await;
}

//! The FlowMesh HTTP REST API on the admin listener (compat/flowmesh.md §5.3–§5.5), over the network against a
//! whole server on port 0: the checklist's C23, C24 and C25 exactly, the HTTP parts of C14–C16, and the error path
//! of every route.

use herald_testkit::{TestOptions, TestServer, http1};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn server(resources: &[&str]) -> TestServer {
    TestServer::start(TestOptions {
        // gRPC authentication is on, as in the checklist; HTTP has none (§4.2).
        tokens: vec!["test-token".into()],
        resources: resources.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The answer, with the FlowMesh reading of its body (§5.1: one JSON object and a newline).
struct Reply(http1::Reply);

impl std::ops::Deref for Reply {
    type Target = http1::Reply;
    fn deref(&self) -> &http1::Reply {
        &self.0
    }
}

impl Reply {
    fn json(&self) -> Value {
        assert!(self.body.ends_with("}\n"), "one JSON object and a newline: {:?}", self.body);
        self.0.json()
    }

    /// The error body every API error carries.
    fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.json(), json!({"status": "error", "message": message, "code": status}));
    }
}

/// One HTTP/1.1 request on a fresh connection; `body` is sent as is (no Content-Type, as the contract allows).
async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    Reply(http1::request(addr, method, path, &[], body.as_bytes()).await.unwrap())
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (s.ends_with('Z') || s.contains('+'))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
}

// ---------------------------------------------------------------- C23

#[tokio::test]
async fn c23_streams() {
    let srv = server(&["t1/ns1/stream/c23"]).await;
    let a = srv.admin_addr();
    let base = "/api/v1/streams/t1/ns1/c23";

    let r =
        call(a, "POST", &format!("{base}/events"), r#"{"events":[{"payload":"aGVsbG8=","headers":{"x":"1"}}]}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"events written successfully\",\"offsets\":[0]}\n");

    let r = call(a, "GET", &format!("{base}/messages?offset=0"), "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!((v["status"].as_str(), v["message"].as_str()), (Some("success"), Some("messages read successfully")));
    let m = &v["messages"][0];
    assert_eq!(
        keys(m),
        ["id", "resource_path", "partition", "offset", "payload", "headers", "created_at", "schema_version"]
    );
    assert_eq!(m["payload"], "aGVsbG8=");
    assert_eq!(m["headers"], json!({"x": "1"}));
    assert_eq!(m["offset"], 0);
    assert_eq!(m["partition"], 0);
    assert_eq!(m["resource_path"], "t1/ns1/stream/c23");
    assert!(m["created_at"].is_i64(), "integer created_at: {m}");
    assert_eq!(m["id"].as_str().unwrap().len(), 32);

    call(a, "GET", &format!("{base}/messages"), "").await.assert_error(400, "offset parameter is required");

    let r = call(a, "GET", &format!("{base}/offsets/latest"), "").await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"latest offset retrieved successfully\",\"offset\":0}\n");

    let r = call(a, "POST", &format!("{base}/consumer-groups/g/offsets"), r#"{"offset":0}"#).await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"offset committed successfully\"}\n");
    let r = call(a, "GET", &format!("{base}/consumer-groups/g/state"), "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["message"], "consumer group state retrieved successfully");
    assert_eq!(
        v["state"],
        json!({"stream": "t1/ns1/stream/c23", "group": "g", "partition": 0, "committed_offset": 0, "latest_offset": 0, "lag": 0})
    );
    assert_eq!(keys(&v["state"]), ["stream", "group", "partition", "committed_offset", "latest_offset", "lag"]);
    let r = call(a, "GET", &format!("{base}/consumer-groups"), "").await;
    let v = r.json();
    assert_eq!(v["message"], "consumer groups retrieved successfully");
    assert_eq!(
        v["consumer_groups"],
        json!([{"group": "g", "partition": 0, "committed_offset": 0, "latest_offset": 0, "lag": 0}])
    );
    let r = call(a, "GET", &format!("{base}/consumer-groups/g/offsets"), "").await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"offset retrieved successfully\",\"offset\":0}\n");

    let r = call(a, "GET", &format!("{base}/stats"), "").await;
    assert_eq!(
        r.body,
        "{\"status\":\"success\",\"message\":\"stream statistics retrieved successfully\",\"stats\":{\"latest_offset\":0}}\n"
    );

    call(a, "POST", "/api/v1/streams/t1/ns1/missing/events", r#"{"events":[{"payload":"aGVsbG8="}]}"#)
        .await
        .assert_error(404, "stream not found: t1/ns1/stream/missing");

    for list in ["/api/v1/streams", "/api/v1/streams/"] {
        let r = call(a, "GET", list, "").await;
        assert_eq!(r.status, 200, "{list}");
        let v = r.json();
        assert_eq!(v["message"], "streams retrieved successfully");
        let c23 = v["streams"].as_array().unwrap().iter().find(|s| s["name"] == "c23").expect("c23 listed");
        assert_eq!((&c23["tenant"], &c23["namespace"], &c23["type"]), (&json!("t1"), &json!("ns1"), &json!("stream")));
        assert!(is_rfc3339(c23["created_at"].as_str().unwrap()), "{c23}");
        assert!(is_rfc3339(c23["updated_at"].as_str().unwrap()), "{c23}");
    }
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn stream_route_errors() {
    let srv = server(&["t1/ns1/stream/s", "t1/ns1/stream/stats"]).await;
    let a = srv.admin_addr();
    let base = "/api/v1/streams/t1/ns1/s";
    let missing = "/api/v1/streams/t1/ns1/missing";
    let nf = "stream not found: t1/ns1/stream/missing";

    // Write: body, events, payloads (first offending index), existence; nothing is written on a failure.
    let events = format!("{base}/events");
    call(a, "POST", &events, "").await.assert_error(400, "invalid request body: EOF");
    let r = call(a, "POST", &events, "{\"events\":").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().starts_with("invalid request body: "), "{}", r.body);
    call(a, "POST", &events, "{}").await.assert_error(400, "at least one event is required");
    call(a, "POST", &events, r#"{"events":[]}"#).await.assert_error(400, "at least one event is required");
    call(a, "POST", &events, r#"{"events":[{"payload":"eA=="},{"payload":null},{"payload":""}]}"#)
        .await
        .assert_error(400, "event 1: payload cannot be empty");
    call(a, "POST", &events, r#"{"events":[{"payload":"e*=="}]}"#)
        .await
        .assert_error(400, "invalid request body: illegal base64 data at input byte 1");
    let r = call(a, "GET", &format!("{base}/offsets/latest"), "").await;
    assert_eq!(r.json()["offset"], -1);
    // Unknown fields are ignored; several events get consecutive offsets.
    let r = call(a, "POST", &events, r#"{"events":[{"payload":"YQ==","extra":1},{"payload":"Yg=="}],"x":true}"#).await;
    assert_eq!(r.json()["offsets"], json!([0, 1]));

    // Read: offset required and non-negative, max_messages positive (clamped above), partition an integer.
    let msgs = format!("{base}/messages");
    call(a, "GET", &format!("{msgs}?offset="), "").await.assert_error(400, "offset parameter is required");
    call(a, "GET", &format!("{msgs}?offset=-1"), "").await.assert_error(400, "invalid offset parameter");
    call(a, "GET", &format!("{msgs}?offset=x"), "").await.assert_error(400, "invalid offset parameter");
    call(a, "GET", &format!("{msgs}?offset=0&max_messages=0"), "")
        .await
        .assert_error(400, "invalid max_messages parameter");
    call(a, "GET", &format!("{msgs}?offset=0&max_messages=x"), "")
        .await
        .assert_error(400, "invalid max_messages parameter");
    call(a, "GET", &format!("{msgs}?offset=0&partition=x"), "").await.assert_error(400, "invalid partition parameter");
    let r = call(a, "GET", &format!("{msgs}?offset=0&max_messages=5000"), "").await;
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 2);
    let r = call(a, "GET", &format!("{msgs}?offset=1&max_messages=1"), "").await;
    let v = r.json();
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert!(v["messages"][0].get("headers").is_none(), "headers omitted when empty");
    let r = call(a, "GET", &format!("{msgs}?offset=0&partition=1"), "").await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"messages read successfully\",\"messages\":[]}\n");
    call(a, "GET", &format!("{missing}/messages?offset=0"), "").await.assert_error(404, nf);

    // Exact routing: a stream named `stats` is read through /messages (FlowMesh sends it to the stats handler).
    let r = call(a, "GET", "/api/v1/streams/t1/ns1/stats/messages?offset=0", "").await;
    assert_eq!(r.json()["messages"], json!([]));

    // Latest offset and stats.
    call(a, "GET", &format!("{base}/offsets/latest?partition=abc"), "")
        .await
        .assert_error(400, "invalid partition parameter");
    assert_eq!(call(a, "GET", &format!("{base}/offsets/latest?partition=1"), "").await.json()["offset"], -1);
    call(a, "GET", &format!("{missing}/offsets/latest"), "").await.assert_error(404, nf);
    call(a, "GET", &format!("{base}/stats?partition=1.5"), "").await.assert_error(400, "invalid partition parameter");
    call(a, "GET", &format!("{missing}/stats"), "").await.assert_error(404, nf);

    // Consumer groups: missing stream is 404 (D7), offsets ≥ -1, bodies required.
    call(a, "GET", &format!("{missing}/consumer-groups"), "").await.assert_error(404, nf);
    let commit = format!("{base}/consumer-groups/g/offsets");
    call(a, "POST", &commit, r#"{"offset":-2}"#).await.assert_error(400, "offset cannot be less than -1");
    call(a, "POST", &commit, "").await.assert_error(400, "invalid request body: EOF");
    let r = call(a, "POST", &commit, r#"{"offset":"1"}"#).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().starts_with("invalid request body: "));
    call(a, "POST", &format!("{missing}/consumer-groups/g/offsets"), r#"{"offset":1}"#).await.assert_error(404, nf);
    call(a, "POST", &format!("{commit}?partition=p"), r#"{"offset":1}"#)
        .await
        .assert_error(400, "invalid partition parameter");
    // A commit with no `offset` field commits 0, as Go's zero value does; a backwards commit is accepted.
    assert_eq!(call(a, "POST", &commit, "{}").await.status, 200);
    assert_eq!(call(a, "GET", &commit, "").await.json()["offset"], 0);
    assert_eq!(call(a, "POST", &commit, r#"{"offset":-1}"#).await.status, 200);
    let state = call(a, "GET", &format!("{base}/consumer-groups/g/state"), "").await.json();
    assert_eq!((&state["state"]["committed_offset"], &state["state"]["lag"]), (&json!(-1), &json!(2)));
    assert_eq!(call(a, "GET", &format!("{base}/consumer-groups/never/offsets"), "").await.json()["offset"], -1);
    call(a, "GET", &format!("{missing}/consumer-groups/g/offsets"), "").await.assert_error(404, nf);
    call(a, "GET", &format!("{missing}/consumer-groups/g/state"), "").await.assert_error(404, nf);
    // Groups in the listing are sorted by name (D15).
    call(a, "POST", &format!("{base}/consumer-groups/a/offsets"), r#"{"offset":0}"#).await;
    let groups = call(a, "GET", &format!("{base}/consumer-groups"), "").await.json();
    let names: Vec<_> = groups["consumer_groups"].as_array().unwrap().iter().map(|g| g["group"].clone()).collect();
    assert_eq!(names, [json!("a"), json!("g")]);

    // Path components are checked with the contract's texts (blank, and `/` through %2F: D22).
    call(a, "GET", "/api/v1/streams/%20/ns1/s/offsets/latest", "").await.assert_error(400, "tenant cannot be empty");
    call(a, "GET", "/api/v1/streams/t1/ns1/a%2Fb/offsets/latest", "")
        .await
        .assert_error(400, "name cannot contain '/'");
    call(a, "GET", &format!("{base}/consumer-groups/a%2Fb/offsets"), "")
        .await
        .assert_error(400, "consumer_group cannot contain '/'");
    srv.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- C24

#[tokio::test]
async fn c24_queues() {
    let srv = server(&["t1/ns1/queue/c24"]).await;
    let a = srv.admin_addr();
    let base = "/api/v1/queues/t1/ns1/c24";

    let r = call(a, "POST", &format!("{base}/jobs"), r#"{"payload":"am9i"}"#).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(keys(&v), ["status", "message", "job_id", "seq"]);
    assert_eq!(
        (&v["status"], &v["message"], &v["seq"]),
        (&json!("success"), &json!("job enqueued successfully"), &json!(0))
    );
    let id = v["job_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);

    let r = call(a, "POST", &format!("{base}/reserve"), "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["message"], "job reserved successfully");
    let job = &v["job"];
    assert_eq!(
        keys(job),
        ["id", "resource_path", "seq", "payload", "created_at", "visible_at", "reserve_until", "attempts"]
    );
    assert_eq!((&job["id"], &job["payload"], &job["attempts"]), (&json!(id), &json!("am9i"), &json!(1)));
    assert_eq!(job["resource_path"], "t1/ns1/queue/c24");
    let r = call(a, "POST", &format!("{base}/reserve"), "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"no jobs available\"}\n");

    let r = call(a, "POST", &format!("{base}/jobs/{id}/ack"), "").await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"job acknowledged successfully\"}\n");

    let policy = r#"{"max_attempts":1,"initial_backoff_seconds":1,"max_backoff_seconds":1,"backoff_multiplier":1.0,"backoff_strategy":"fixed"}"#;
    let r = call(a, "PUT", &format!("{base}/retry-policy"), policy).await;
    assert_eq!(r.body, "{\"status\":\"ok\",\"message\":\"retry policy set successfully\"}\n");
    let r = call(a, "GET", &format!("{base}/retry-policy"), "").await;
    assert_eq!(
        r.body,
        "{\"status\":\"ok\",\"policy\":{\"max_attempts\":1,\"initial_backoff_seconds\":1,\"max_backoff_seconds\":1,\
         \"backoff_multiplier\":1,\"backoff_strategy\":\"fixed\"}}\n"
    );

    let id2 = call(a, "POST", &format!("{base}/jobs"), r#"{"payload":"cG9pc29u"}"#).await.json()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(call(a, "POST", &format!("{base}/reserve"), "").await.json()["job"]["id"], json!(id2));
    let r = call(a, "POST", &format!("{base}/jobs/{id2}/nack"), "").await;
    r.assert_error(412, &format!("job {id2} exceeded max attempts (1/1) in queue t1/ns1/queue/c24"));

    let r = call(a, "GET", &format!("{base}/dlq/jobs"), "").await;
    let v = r.json();
    assert_eq!(keys(&v), ["status", "jobs"]);
    assert_eq!(v["status"], "ok");
    let dlq = v["jobs"].as_array().unwrap();
    assert_eq!(dlq.len(), 1);
    // D10: the full Job, in nanoseconds, with the DLQ path and the x-flowmesh-* headers.
    assert_eq!(dlq[0]["payload"], "cG9pc29u");
    assert_eq!(dlq[0]["resource_path"], "t1/ns1/queue/c24-dlq");
    assert_eq!(dlq[0]["headers"]["x-flowmesh-original-job-id"], json!(id2));
    assert!(dlq[0]["created_at"].as_i64().unwrap() > 1_000_000_000_000_000_000);
    let dlq_id = dlq[0]["id"].as_str().unwrap().to_string();
    let r = call(a, "POST", &format!("{base}/dlq/jobs/{dlq_id}/replay"), "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(keys(&v), ["status", "message", "job_id", "seq"]);
    assert_eq!(
        (&v["status"], &v["message"], &v["seq"]),
        (&json!("ok"), &json!("job replayed successfully"), &json!(2))
    );
    assert_ne!(v["job_id"], json!(id2));
    assert_eq!(call(a, "GET", &format!("{base}/dlq/jobs"), "").await.json()["jobs"], json!([]), "D12");

    call(a, "POST", &format!("{base}/jobs"), r#"{"payload":""}"#).await.assert_error(400, "payload cannot be empty");

    let r = call(a, "GET", &format!("{base}/stats"), "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["message"], "queue statistics retrieved successfully");
    assert_eq!(
        keys(&v["stats"]),
        ["total_jobs", "pending_jobs", "in_flight_jobs", "completed_jobs", "failed_jobs", "oldest_job_age_seconds"]
    );
    assert_eq!((&v["stats"]["total_jobs"], &v["stats"]["pending_jobs"]), (&json!(3), &json!(1)));
    assert_eq!((&v["stats"]["completed_jobs"], &v["stats"]["failed_jobs"]), (&json!(1), &json!(1)));
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn queue_route_errors_bodies_and_query_overrides() {
    let srv = server(&["t1/ns1/queue/q", "t1/ns1/queue/p"]).await;
    let a = srv.admin_addr();
    let base = "/api/v1/queues/t1/ns1/q";
    let missing = "/api/v1/queues/t1/ns1/missing";
    let nf = "queue not found: t1/ns1/queue/missing";

    // Enqueue.
    let jobs = format!("{base}/jobs");
    call(a, "POST", &jobs, "").await.assert_error(400, "invalid request body: EOF");
    call(a, "POST", &jobs, r#"{"headers":{"a":"b"}}"#).await.assert_error(400, "payload cannot be empty");
    call(a, "POST", &jobs, r#"{"payload":"eA==","delay_seconds":-1}"#)
        .await
        .assert_error(400, "delay_seconds cannot be negative");
    call(a, "POST", &format!("{missing}/jobs"), r#"{"payload":"eA=="}"#).await.assert_error(404, nf);
    let r = call(a, "POST", &jobs, r#"{"payload":"eA==","delay_seconds":1.5}"#).await;
    assert_eq!(r.status, 400, "an integer field takes no fraction, as in Go");

    // Reserve: visibility from the body or (overriding it) the query; unparsable query values are ignored.
    let reserve = format!("{base}/reserve");
    let too_long = "visibility_timeout_seconds cannot exceed 43200 (12 hours)";
    call(a, "POST", &format!("{reserve}?visibility_timeout=43201"), "").await.assert_error(400, too_long);
    call(a, "POST", &reserve, r#"{"visibility_timeout_seconds":43201}"#).await.assert_error(400, too_long);
    call(a, "POST", &format!("{reserve}?visibility_timeout=abc"), r#"{"visibility_timeout_seconds":43201}"#)
        .await
        .assert_error(400, too_long);
    let r =
        call(a, "POST", &format!("{reserve}?visibility_timeout=10"), r#"{"visibility_timeout_seconds":43201}"#).await;
    assert_eq!(r.json()["message"], "no jobs available");
    let r = call(a, "POST", &reserve, "[1,2]").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().starts_with("invalid request body: "));
    call(a, "POST", &format!("{missing}/reserve"), "").await.assert_error(404, nf);

    // Long poll from the query: empty after the wait, or the job enqueued meanwhile (D2).
    let t = Instant::now();
    let r = call(a, "POST", &format!("{reserve}?long_poll_timeout=1"), "").await;
    assert_eq!(r.json()["message"], "no jobs available");
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
    let t = Instant::now();
    let poll = tokio::spawn(async move {
        call(a, "POST", "/api/v1/queues/t1/ns1/q/reserve", r#"{"long_poll_timeout_seconds":5}"#).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = call(a, "POST", &jobs, r#"{"payload":"bG9uZw==","headers":{"h":"v"}}"#).await.json()["job_id"].clone();
    let v = poll.await.unwrap().json();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!((&v["job"]["id"], &v["job"]["headers"]), (&id, &json!({"h": "v"})));
    let id = id.as_str().unwrap().to_string();

    // ACK is idempotent; NACK needs an in-flight job; both need the queue.
    assert_eq!(call(a, "POST", &format!("{base}/jobs/deadbeef/ack"), "").await.status, 200);
    assert_eq!(call(a, "POST", &format!("{base}/jobs/{id}/ack"), r#"{"job_id":"ignored"}"#).await.status, 200);
    call(a, "POST", &format!("{missing}/jobs/{id}/ack"), "").await.assert_error(404, nf);
    call(a, "POST", &format!("{base}/jobs/{id}/nack"), "")
        .await
        .assert_error(404, &format!("job {id} not found in queue t1/ns1/queue/q"));
    call(a, "POST", &format!("{missing}/jobs/{id}/nack"), "").await.assert_error(404, nf);

    // NACK with an explicit delay from the optional body: the job is pending but not visible.
    let id = call(a, "POST", &jobs, r#"{"payload":"bg=="}"#).await.json()["job_id"].clone();
    assert_eq!(call(a, "POST", &reserve, "").await.json()["job"]["id"], id);
    let r = call(a, "POST", &format!("{base}/jobs/{}/nack", id.as_str().unwrap()), r#"{"delay_seconds":30}"#).await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"job NACKed successfully\"}\n");
    assert_eq!(call(a, "POST", &reserve, "").await.json()["message"], "no jobs available");
    let stats = call(a, "GET", &format!("{base}/stats"), "").await.json();
    assert_eq!((&stats["stats"]["pending_jobs"], &stats["stats"]["in_flight_jobs"]), (&json!(1), &json!(0)));
    call(a, "GET", &format!("{missing}/stats"), "").await.assert_error(404, nf);

    // Receive: `max_jobs` from the body or the query (which wins), always a `jobs` list.
    let p = "/api/v1/queues/t1/ns1/p";
    for i in 0..5 {
        call(
            a,
            "POST",
            &format!("{p}/jobs"),
            &format!(r#"{{"payload":"{}"}}"#, ["MA==", "MQ==", "Mg==", "Mw==", "NA=="][i]),
        )
        .await;
    }
    let r = call(a, "POST", &format!("{p}/receive"), r#"{"max_jobs":2}"#).await;
    let v = r.json();
    assert_eq!(v["message"], "jobs received successfully");
    let seqs: Vec<_> = v["jobs"].as_array().unwrap().iter().map(|j| j["seq"].clone()).collect();
    assert_eq!(seqs, [json!(0), json!(1)]);
    let v = call(a, "POST", &format!("{p}/receive?max_jobs=1"), r#"{"max_jobs":3}"#).await.json();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1);
    let v = call(a, "POST", &format!("{p}/receive?max_jobs=500"), "").await.json();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2);
    let r = call(a, "POST", &format!("{p}/receive"), "").await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"jobs received successfully\",\"jobs\":[]}\n");
    call(a, "POST", &format!("{p}/receive?visibility_timeout=43201"), "").await.assert_error(400, too_long);
    call(a, "POST", &format!("{missing}/receive"), "").await.assert_error(404, nf);

    // Retry policy: the engine's checks in order, flat body, existence.
    let rp = format!("{base}/retry-policy");
    call(a, "PUT", &rp, "").await.assert_error(400, "invalid request body: EOF");
    call(a, "PUT", &rp, "{}").await.assert_error(400, "initial_backoff_seconds must be positive");
    let bad = |m: i32, i: i64, x: i64, mul: f64, s: &str| {
        json!({"max_attempts": m, "initial_backoff_seconds": i, "max_backoff_seconds": x, "backoff_multiplier": mul, "backoff_strategy": s})
            .to_string()
    };
    for (body, message) in [
        (bad(-1, 1, 1, 1.0, "fixed"), "max_attempts cannot be negative"),
        (bad(1, 2, 1, 1.0, "fixed"), "max_backoff_seconds must be >= initial_backoff_seconds"),
        (bad(1, 1, 1, 0.0, "fixed"), "backoff_multiplier must be positive"),
        (bad(1, 1, 1, 1.0, "random"), "backoff_strategy must be one of: fixed, linear, exponential"),
        (bad(1, 1, 31_536_001, 1.0, "fixed"), "max_backoff_seconds cannot exceed 31536000 (1 year)"),
    ] {
        call(a, "PUT", &rp, &body).await.assert_error(400, message);
    }
    call(a, "PUT", &format!("{missing}/retry-policy"), &bad(1, 1, 1, 1.0, "fixed")).await.assert_error(404, nf);
    call(a, "GET", &format!("{missing}/retry-policy"), "").await.assert_error(404, nf);
    // The default policy, with Go's whole-float form.
    let r = call(a, "GET", &rp, "").await;
    assert!(r.body.contains("\"backoff_multiplier\":2,"), "{}", r.body);
    assert_eq!(r.json()["policy"]["max_attempts"], 3);

    // DLQ: missing queue 404 (D11), max_jobs ignored when not a positive integer, unknown DLQ job 404.
    call(a, "GET", &format!("{missing}/dlq/jobs"), "").await.assert_error(404, nf);
    assert_eq!(
        call(a, "GET", &format!("{base}/dlq/jobs?max_jobs=x"), "").await.json(),
        json!({"status": "ok", "jobs": []})
    );
    assert_eq!(call(a, "GET", &format!("{base}/dlq/jobs?max_jobs=-4"), "").await.status, 200);
    call(a, "POST", &format!("{missing}/dlq/jobs/00000000000000000000000000000000/replay"), "")
        .await
        .assert_error(404, nf);
    let r = call(a, "POST", &format!("{base}/dlq/jobs/00000000000000000000000000000000/replay"), "").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].as_str().unwrap().contains("t1/ns1/queue/q-dlq"), "{}", r.body);
    srv.shutdown().await.unwrap();
}

/// The HTTP parts of C14 (policy in the listing), C15 (the DLQ queue and `dlq` config in the listing) and C16
/// (no `-dlq` appears for a queue that never dead-lettered: D11).
#[tokio::test]
async fn c14_c15_c16_queue_listing() {
    let srv = server(&["t1/ns1/queue/c14", "t1/ns1/queue/c15", "t1/ns1/queue/c16", "t2/ns9/queue/other"]).await;
    let a = srv.admin_addr();
    let policy = json!({"max_attempts": 5, "initial_backoff_seconds": 2, "max_backoff_seconds": 120, "backoff_multiplier": 3.0, "backoff_strategy": "linear"});
    assert_eq!(call(a, "PUT", "/api/v1/queues/t1/ns1/c14/retry-policy", &policy.to_string()).await.status, 200);

    let one = json!({"max_attempts": 1, "initial_backoff_seconds": 1, "max_backoff_seconds": 1, "backoff_multiplier": 1.0, "backoff_strategy": "fixed"});
    call(a, "PUT", "/api/v1/queues/t1/ns1/c15/retry-policy", &one.to_string()).await;
    let j =
        call(a, "POST", "/api/v1/queues/t1/ns1/c15/jobs", r#"{"payload":"cG9pc29u","headers":{"a":"b"}}"#).await.json();
    call(a, "POST", "/api/v1/queues/t1/ns1/c15/reserve", "").await;
    let r =
        call(a, "POST", &format!("/api/v1/queues/t1/ns1/c15/jobs/{}/nack", j["job_id"].as_str().unwrap()), "").await;
    assert_eq!(r.status, 412);
    assert_eq!(call(a, "GET", "/api/v1/queues/t1/ns1/c16/dlq/jobs", "").await.json()["jobs"], json!([]));

    let v = call(a, "GET", "/api/v1/queues", "").await.json();
    assert_eq!(v["message"], "queues retrieved successfully");
    // Sorted by path (D15); the DLQ is an ordinary queue; nothing was created for c16 (D11).
    assert_eq!(names(&v["queues"]), ["c14", "c15", "c15-dlq", "c16", "other"]);
    let find = |n: &str| v["queues"].as_array().unwrap().iter().find(|q| q["name"] == n).unwrap().clone();
    // Go writes the whole multiplier without a fraction.
    let written = json!({"max_attempts": 5, "initial_backoff_seconds": 2, "max_backoff_seconds": 120, "backoff_multiplier": 3, "backoff_strategy": "linear"});
    assert_eq!(find("c14")["retry_policy"], written);
    assert_eq!(find("c15")["dlq"]["enabled"], true);
    assert_eq!(find("c15")["dlq"]["dlq_path"], "t1/ns1/queue/c15-dlq");
    let dlq_stats = call(a, "GET", "/api/v1/queues/t1/ns1/c15-dlq/stats", "").await.json();
    assert_eq!((&dlq_stats["stats"]["total_jobs"], &dlq_stats["stats"]["pending_jobs"]), (&json!(1), &json!(1)));

    // `tenant` and `namespace` are exact filters.
    let v = call(a, "GET", "/api/v1/queues/?tenant=t2", "").await.json();
    assert_eq!(names(&v["queues"]), ["other"]);
    let v = call(a, "GET", "/api/v1/queues?tenant=t1&namespace=ns9", "").await.json();
    assert_eq!(v["queues"], json!([]));
    srv.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- C25

#[tokio::test]
async fn c25_kv() {
    let srv = server(&["t1/ns1/kv/c25"]).await;
    let a = srv.admin_addr();
    let key = "/api/v1/kv/t1/ns1/c25/keys/k";

    let r = call(a, "PUT", key, r#"{"value":"djE="}"#).await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"key-value pair set successfully\"}\n");
    let r = call(a, "GET", key, "").await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"value retrieved successfully\",\"value\":\"djE=\"}\n");
    let r = call(a, "HEAD", key, "").await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = call(a, "DELETE", key, "").await;
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"key deleted successfully\"}\n");
    let r = call(a, "HEAD", key, "").await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
    call(a, "GET", key, "").await.assert_error(404, "key k not found in KV store t1/ns1/kv/c25");

    // `?ttl=` in Go's duration form applies when the body has no TTL; the body's TTL wins over it.
    assert_eq!(call(a, "PUT", "/api/v1/kv/t1/ns1/c25/keys/t?ttl=1s", r#"{"value":"eA=="}"#).await.status, 200);
    let r = call(a, "PUT", "/api/v1/kv/t1/ns1/c25/keys/b?ttl=1s", r#"{"value":"eA==","ttl_seconds":100}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(call(a, "PUT", "/api/v1/kv/t1/ns1/c25/keys/h?ttl=500ms", r#"{"value":"eA=="}"#).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(call(a, "GET", "/api/v1/kv/t1/ns1/c25/keys/t", "").await.status, 404);
    assert_eq!(call(a, "GET", "/api/v1/kv/t1/ns1/c25/keys/b", "").await.status, 200);
    assert_eq!(call(a, "GET", "/api/v1/kv/t1/ns1/c25/keys/h", "").await.status, 200, "500ms truncates to no TTL");
    call(a, "DELETE", "/api/v1/kv/t1/ns1/c25/keys/b", "").await;
    call(a, "DELETE", "/api/v1/kv/t1/ns1/c25/keys/h", "").await;

    call(a, "PUT", key, r#"{"value":""}"#).await.assert_error(400, "value cannot be empty");
    let r = call(a, "GET", "/api/v1/kv/t1/ns1/c25/keys?prefix=", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "{\"status\":\"success\",\"message\":\"keys listed successfully\",\"keys\":[]}\n");

    let v = call(a, "GET", "/api/v1/kv", "").await.json();
    assert_eq!(v["message"], "KV stores retrieved successfully");
    assert!(names(&v["stores"]).contains(&"c25".to_string()));
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn kv_route_errors_and_keys() {
    let srv = server(&["t1/ns1/kv/s"]).await;
    let a = srv.admin_addr();
    let base = "/api/v1/kv/t1/ns1/s";
    let missing = "/api/v1/kv/t1/ns1/missing";
    let nf = "KV store not found: t1/ns1/kv/missing";

    call(a, "PUT", &format!("{base}/keys/k"), "").await.assert_error(400, "invalid request body: EOF");
    call(a, "PUT", &format!("{base}/keys/k"), "{}").await.assert_error(400, "value cannot be empty");
    call(a, "PUT", &format!("{base}/keys/k"), r#"{"value":"eA==","ttl_seconds":31536001}"#)
        .await
        .assert_error(400, "ttl_seconds cannot exceed 31536000 (1 year)");
    call(a, "PUT", &format!("{base}/keys/k?ttl=8761h"), r#"{"value":"eA=="}"#)
        .await
        .assert_error(400, "ttl_seconds cannot exceed 31536000 (1 year)");
    call(a, "PUT", &format!("{base}/keys/k"), r#"{"value":"not base64"}"#)
        .await
        .assert_error(400, "invalid request body: illegal base64 data at input byte 3");
    call(a, "PUT", &format!("{missing}/keys/k"), r#"{"value":"eA=="}"#).await.assert_error(404, nf);
    call(a, "GET", &format!("{missing}/keys/k"), "").await.assert_error(404, nf);
    call(a, "DELETE", &format!("{missing}/keys/k"), "").await.assert_error(404, nf);
    call(a, "GET", &format!("{missing}/keys"), "").await.assert_error(404, nf);
    assert_eq!(call(a, "HEAD", &format!("{missing}/keys/k"), "").await.status, 404);
    // Deleting a key that is not there succeeds; an unparsable `?ttl=` is ignored.
    assert_eq!(call(a, "DELETE", &format!("{base}/keys/nope"), "").await.status, 200);
    assert_eq!(call(a, "PUT", &format!("{base}/keys/k?ttl=soon"), r#"{"value":"eA=="}"#).await.status, 200);

    // The key is the whole remainder after /keys/ (slashes and percent-escapes included).
    for k in ["user:2", "user:10", "order/1", "user:1", "a.b"] {
        let path = format!("{base}/keys/{}", k.replace(':', "%3A"));
        assert_eq!(call(a, "PUT", &path, r#"{"value":"eA=="}"#).await.status, 200, "{k}");
    }
    assert_eq!(call(a, "GET", &format!("{base}/keys/order/1"), "").await.json()["value"], "eA==");
    let v = call(a, "GET", &format!("{base}/keys"), "").await.json();
    assert_eq!(v["keys"], json!(["a.b", "k", "order/1", "user:1", "user:10", "user:2"]));
    let v = call(a, "GET", &format!("{base}/keys?prefix=user%3A"), "").await.json();
    assert_eq!(v["keys"], json!(["user:1", "user:10", "user:2"]));
    srv.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- routing

#[tokio::test]
async fn exact_routing_and_not_found() {
    let srv = server(&["t1/ns1/stream/s", "t1/ns1/queue/q", "t1/ns1/kv/k"]).await;
    let a = srv.admin_addr();
    for list in
        ["/api/v1/streams", "/api/v1/streams/", "/api/v1/queues", "/api/v1/queues/", "/api/v1/kv", "/api/v1/kv/"]
    {
        assert_eq!(call(a, "GET", list, "").await.status, 200, "{list}");
    }
    // Unknown paths, wrong shapes and unsupported methods on known paths: 404 with the JSON error body.
    for (method, path) in [
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v1/streams/t1/ns1"),
        ("GET", "/api/v1/streams/t1/ns1/s"),
        ("GET", "/api/v1/streams/t1/ns1/s/events/"),
        ("DELETE", "/api/v1/streams/t1/ns1/s/events"),
        ("GET", "/api/v1/streams/t1/ns1/s/events"),
        ("POST", "/api/v1/streams"),
        ("POST", "/api/v1/queues/t1/ns1/q/jobs/x/ack/more"),
        ("GET", "/api/v1/queues/t1/ns1/q/jobs/x/ack"),
        ("POST", "/api/v1/queues/t1/ns1/q/enqueue"),
        ("POST", "/api/v1/queues/t1/ns1"),
        ("POST", "/api/v1/kv/t1/ns1/k/keys/x"),
        ("GET", "/api/v1/kv/t1/ns1/k"),
    ] {
        let r = call(a, method, path, "").await;
        r.assert_error(404, "404 page not found");
    }
    // Outside /api/ the 404 stays Go's plain text; /health itself answers any method.
    let r = call(a, "GET", "/health/x", "").await;
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
    assert_eq!(call(a, "DELETE", "/health", "").await.status, 200);
    assert_eq!(call(a, "POST", "/ready", "").await.json()["ready"], true);
    srv.shutdown().await.unwrap();
}

/// Reads one HTTP/1.1 answer with a `content-length` from a kept-alive connection.
async fn read_answer(s: &mut tokio::net::TcpStream) -> Reply {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(raw[..end].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                .map_or(0, |(_, v)| v.trim().parse().unwrap());
            if raw.len() >= end + 4 + len {
                let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                let body = String::from_utf8(raw[end + 4..end + 4 + len].to_vec()).unwrap();
                return Reply(http1::Reply { status, head, body });
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the server closed the connection; read so far: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
}

/// An answer given without reading the request's body (no route, a route that takes none, a malformed path) must
/// not close a kept-alive connection: the body arrives after the headers here, as it does from most clients, and
/// the next request on the same connection is answered.
#[tokio::test]
async fn answers_that_ignore_the_body_keep_the_connection() {
    let srv = server(&["t1/ns1/queue/q"]).await;
    let a = srv.admin_addr();
    let body = r#"{"job_id":"ignored"}"#;
    for (path, status) in [
        ("/api/v1/queues/t1/ns1/q/jobs/x/ack", 200),
        ("/api/v1/queues/t1/ns1/q/dlq/jobs/x/replay", 404),
        ("/api/v1/nope", 404),
        ("/api/v1/streams/t1/ns1/events", 400),
        ("/elsewhere", 404),
    ] {
        let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nHost: herald\r\nContent-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(body.as_bytes()).await.unwrap();
        assert_eq!(read_answer(&mut s).await.status, status, "{path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: herald\r\n\r\n").await.unwrap();
        let r = read_answer(&mut s).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "{\"status\":{\"code\":200,\"message\":\"healthy\"}}\n"),
            "{path}"
        );
    }

    srv.shutdown().await.unwrap();
}

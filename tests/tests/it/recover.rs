//! Recover (`POST /v1/webhooks/{id}/recover`) on the real `hookline serve` binary: after a
//! scripted outage every exhausted delivery is redelivered once, with its original
//! `webhook-id` and attempt numbers going on, by a background job whose progress
//! `GET /v1/jobs/{id}` reports; a dry run counts first; bad windows are refused naming the
//! field; a finished job cannot be cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::timestamp::rfc3339;
use hookline_tests::receiver::{Reply, TestReceiver};
use hookline_tests::{free_port, temp_db, ServeProcess};
use serde_json::{json, Value};

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `hookline serve` (retries 10 ms apart: three failed attempts exhaust a delivery), a
/// webhook on a receiver that answers 503 until `up` is set, and `events` events published
/// and exhausted.
struct Outage {
    up: Arc<AtomicBool>,
    receiver: TestReceiver,
    db: std::path::PathBuf,
    server: ServeProcess,
    base: String,
    token: String,
    http: reqwest::Client,
    id: String,
    started: time::OffsetDateTime,
    event_ids: Vec<String>,
}

const OUTAGE_ENV: [(&str, &str); 2] = [
    ("HOOKLINE_RETRY_SCHEDULE_MS", "10,10"),
    ("RUST_LOG", "warn"),
];

async fn outage(name: &str, events: usize) -> Outage {
    let up = Arc::new(AtomicBool::new(false));
    let is_up = up.clone();
    let receiver = TestReceiver::start(move |req, _| {
        if req.method == "HEAD" || is_up.load(Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(503)
        }
    })
    .await;
    let db = temp_db(name);
    let port = free_port();
    let server = ServeProcess::start(&ServeProcess::binary("debug"), &db, port, &OUTAGE_ENV);
    let (base, token) = (format!("http://127.0.0.1:{port}"), server.token.clone());
    let http = reqwest::Client::new();
    let started = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let (status, hook) = send(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/webhooks?appId=A1"),
        &token,
        Some(json!({"name": "crm", "url": format!("{}/hook", receiver.url), "eventTypes": ["ticket.created"]})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().expect("id").to_owned();
    let mut event_ids = Vec::new();
    for i in 0..events {
        let (status, body) = send(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/events"),
            &token,
            Some(json!({"type": "ticket.created", "urn": format!("urn:allthings:app:A1:ticket:C:T{i}"), "data": {"i": i}})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        event_ids.push(body["id"].as_str().expect("event id").to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stats) = send(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/webhooks/{id}/stats?since={}", rfc3339(started)),
            &token,
            None,
        )
        .await;
        if stats["failed"] == json!(events * 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outage did not exhaust every delivery: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Outage {
        up,
        receiver,
        db,
        server,
        base,
        token,
        http,
        id,
        started,
        event_ids,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_recovered_once_per_delivery_by_a_job() {
    let events = 4;
    let Outage {
        up,
        receiver,
        db,
        server,
        base,
        token,
        http,
        id,
        started,
        event_ids,
    } = outage("recover", events).await;
    let during_outage = receiver.requests().len();
    up.store(true, Ordering::SeqCst);
    let since = rfc3339(started);

    // Bad windows: each refused naming its field.
    for (body, field) in [
        (json!({"since": "yesterday"}), "since"),
        (
            json!({"since": since, "until": "2999-01-01T00:00:00Z"}),
            "until",
        ),
        (json!({"since": "2999-01-01T00:00:00Z"}), "since"),
        (json!({"since": "2001-01-01T00:00:00Z"}), "since"),
        (
            json!({"since": since, "until": rfc3339(started - time::Duration::hours(1))}),
            "since",
        ),
    ] {
        let (status, problem) = send(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/webhooks/{id}/recover"),
            &token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }

    // A dry run counts, and starts nothing.
    let (status, dry) = send(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/webhooks/{id}/recover"),
        &token,
        Some(json!({"since": since, "dryRun": true})),
    )
    .await;
    assert_eq!((status, dry.clone()), (200, json!({"matched": events})));
    assert_eq!(receiver.requests().len(), during_outage);

    let (status, started_job) = send(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/webhooks/{id}/recover"),
        &token,
        Some(json!({"since": since})),
    )
    .await;
    assert_eq!(status, 202, "{started_job}");
    assert_eq!(started_job["matched"], events);
    let job_id = started_job["jobId"].as_str().expect("jobId").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let (status, job) = send(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/jobs/{job_id}"),
            &token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "done" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (job["done"].clone(), job["total"].clone()),
        (json!(events), json!(events)),
        "{job}"
    );
    assert_eq!(job["kind"], "recover");
    assert!(
        job["startedAt"].is_string() && job["finishedAt"].is_string(),
        "{job}"
    );

    // Each delivery once more, with its original webhook-id, as attempt 4.
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        let after: Vec<_> = receiver
            .requests()
            .into_iter()
            .skip(during_outage)
            .filter(|r| r.method == "POST")
            .collect();
        if after.len() >= events || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut ids: Vec<String> = recovered
        .iter()
        .map(|r| r.header("webhook-id").expect("webhook-id").to_owned())
        .collect();
    ids.sort();
    let mut expected = event_ids.clone();
    expected.sort();
    assert_eq!(
        ids, expected,
        "each exhausted delivery once, with its webhook-id"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = send(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/webhooks/{id}/deliveries?status=delivered&limit=100"),
            &token,
            None,
        )
        .await;
        let attempts: Vec<u64> = page["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["attempt"].as_u64()).collect())
            .unwrap_or_default();
        if attempts.len() == events {
            assert!(
                attempts.iter().all(|&n| n == 4),
                "attempt numbers go on: {attempts:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recovered attempts were not logged: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // GraphQL answers the same job, and a dry run there counts what is left: nothing.
    let (status, gql) = send(
        &http,
        reqwest::Method::POST,
        format!("{base}/graphql"),
        &token,
        Some(json!({
            "query": "query($id: ID!) { job(id: $id) { id kind webhookId state done total since until startedAt finishedAt } }",
            "variables": {"id": job_id},
        })),
    )
    .await;
    assert_eq!(status, 200, "{gql}");
    let g = &gql["data"]["job"];
    for field in [
        "id",
        "kind",
        "webhookId",
        "state",
        "done",
        "total",
        "since",
        "until",
        "startedAt",
        "finishedAt",
    ] {
        assert_eq!(g[field], job[field], "GraphQL's {field}: {gql}");
    }
    let (_, gql) = send(
        &http,
        reqwest::Method::POST,
        format!("{base}/graphql"),
        &token,
        Some(json!({
            "query": "mutation($w: ID!, $since: String!) { recoverWebhookDeliveries(webhookId: $w, since: $since, dryRun: true) { success code matched job { id } } }",
            "variables": {"w": id, "since": since},
        })),
    )
    .await;
    assert_eq!(
        gql["data"]["recoverWebhookDeliveries"],
        json!({"success": true, "code": "OK", "matched": 0, "job": null}),
        "{gql}"
    );

    // Nothing is left to recover; a finished job cannot be cancelled; unknown jobs are 404.
    let (status, again) = send(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/webhooks/{id}/recover"),
        &token,
        Some(json!({"since": since})),
    )
    .await;
    assert_eq!((status, again), (200, json!({"matched": 0})));
    let (status, problem) = send(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/jobs/{job_id}/cancel"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = send(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/jobs/job_01JDK7Z3Q8W6V0N4B2C9D5E7F0"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Another App's editor sees neither the job nor the webhook.
    let minted = std::process::Command::new(ServeProcess::binary("debug"))
        .args(["token", "--app", "A2", "--sub", "someone-else", "--db"])
        .arg(&db)
        .output()
        .expect("hookline token runs");
    let other = String::from_utf8_lossy(&minted.stdout).trim().to_owned();
    let (status, _) = send(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/jobs/{job_id}"),
        &other,
        None,
    )
    .await;
    assert_eq!(status, 404);
    drop(server);
}

/// The same on the AWS path: the three handlers on moto, the chunks riding the SQS events
/// queue to the ingest handler, the recovered deliveries keeping their `webhook-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn the_aws_handlers_recover_an_outage_on_moto() {
    use hookline_core::retry::RetryPolicy;
    use hookline_deliver::DeliverSettings;
    use hookline_tests::stack::{self, call, eventually, principal};
    let up = Arc::new(AtomicBool::new(false));
    let is_up = up.clone();
    let receiver = TestReceiver::start(move |req, _| {
        if req.method == "HEAD" || is_up.load(Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(500)
        }
    })
    .await;
    let stack = stack::moto(
        "recover",
        DeliverSettings {
            policy: RetryPolicy {
                schedule: vec![Duration::from_secs(1); 2],
                ..RetryPolicy::default()
            },
            ..DeliverSettings::default()
        },
    )
    .await;
    let who = principal("integrator", "edit-app:A1 publish-events:A1");
    let started = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let (status, hook) = call(
        &*stack,
        &who,
        "POST",
        "/v1/webhooks?appId=A1",
        Some(json!({"name": "crm", "url": format!("{}/hook", receiver.url), "eventTypes": ["ticket.created"]})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().expect("id").to_owned();
    let events = [
        "evt_01JDK7Z3Q8W6V0N4B2C9D5E7A1",
        "evt_01JDK7Z3Q8W6V0N4B2C9D5E7A2",
        "evt_01JDK7Z3Q8W6V0N4B2C9D5E7A3",
    ];
    for (i, e) in events.iter().enumerate() {
        stack::publish(
            &*stack,
            &who,
            e,
            "ticket.created",
            &format!("urn:allthings:app:A1:ticket:C:T{i}"),
        )
        .await;
    }
    let path = format!("/v1/webhooks/{id}/deliveries?status=exhausted&limit=100");
    eventually("every delivery exhausted", || async {
        let (_, page) = call(&*stack, &who, "GET", &path, None).await;
        (page["items"].as_array().map_or(0, Vec::len) == events.len()).then_some(())
    })
    .await;
    let during_outage = receiver.requests().len();
    up.store(true, Ordering::SeqCst);
    let since = rfc3339(started);
    let recover = format!("/v1/webhooks/{id}/recover");
    let (status, dry) = call(
        &*stack,
        &who,
        "POST",
        &recover,
        Some(json!({"since": since, "dryRun": true})),
    )
    .await;
    assert_eq!((status, dry), (200, json!({"matched": events.len()})));
    let (status, job) = call(
        &*stack,
        &who,
        "POST",
        &recover,
        Some(json!({"since": since})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job_path = format!("/v1/jobs/{}", job["jobId"].as_str().expect("jobId"));
    let done = eventually("the job finished", || async {
        let (_, job) = call(&*stack, &who, "GET", &job_path, None).await;
        (job["state"] == "done").then_some(job)
    })
    .await;
    assert_eq!(
        (done["done"].clone(), done["total"].clone()),
        (json!(3), json!(3)),
        "{done}"
    );
    let mut ids = eventually("each delivery arrived once more", || async {
        let ids: Vec<String> = receiver
            .requests()
            .into_iter()
            .skip(during_outage)
            .filter(|r| r.method == "POST")
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect();
        (ids.len() >= events.len()).then_some(ids)
    })
    .await;
    ids.sort();
    assert_eq!(
        ids,
        events.to_vec(),
        "each exhausted delivery once, with its webhook-id"
    );
    stack.stop().await;
}

/// A recover started with `hookline recover` survives a SIGKILL of `hookline serve` midway:
/// the restarted serve runs the remaining chunks and the job ends done, every exhausted
/// delivery received again (a chunk cut off by the kill may repeat: at least once, with the
/// same `webhook-id`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_from_the_cli_survives_a_restart_midway() {
    // 150 deliveries x 3 attempts: five chunks of 100 attempts, a second apart.
    let events = 150;
    let Outage {
        up,
        receiver,
        db,
        server,
        base,
        token,
        http,
        id,
        started,
        ..
    } = outage("recover-restart", events).await;
    let binary = ServeProcess::binary("debug");
    let env = OUTAGE_ENV;
    let during_outage = receiver.requests().len();
    up.store(true, Ordering::SeqCst);

    // A bad window from the CLI: refused, naming the flag.
    let refused = std::process::Command::new(&binary)
        .args([
            "recover",
            "--webhook",
            &id,
            "--since",
            "2999-01-01T00:00:00Z",
            "--db",
        ])
        .arg(&db)
        .output()
        .expect("hookline recover runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--since"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let dry = std::process::Command::new(&binary)
        .args([
            "recover",
            "--webhook",
            &id,
            "--since",
            &rfc3339(started),
            "--dry-run",
            "--db",
        ])
        .arg(&db)
        .output()
        .expect("hookline recover runs");
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success() && said.contains(&format!("{events} deliveries")),
        "{said}"
    );
    let detached = std::process::Command::new(&binary)
        .args([
            "recover",
            "--webhook",
            &id,
            "--since",
            &rfc3339(started),
            "--detach",
            "--db",
        ])
        .arg(&db)
        .output()
        .expect("hookline recover runs");
    let said = String::from_utf8_lossy(&detached.stdout).into_owned();
    assert!(
        detached.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&detached.stderr)
    );
    let job_id = said
        .split_whitespace()
        .find(|w| w.starts_with("job_"))
        .unwrap_or_else(|| panic!("the job id in {said}"))
        .to_owned();

    // One unfinished job per webhook: a second recover or a backfill is refused meanwhile.
    for what in ["recover", "backfill"] {
        let (status, problem) = send(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/webhooks/{id}/{what}"),
            &token,
            Some(json!({"since": rfc3339(started)})),
        )
        .await;
        assert_eq!(status, 409, "a second job ({what}): {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&job_id)),
            "the refusal names the unfinished job: {problem}"
        );
    }

    // Midway: at least one chunk ran, not all of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, job) = send(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/jobs/{job_id}"),
            &token,
            None,
        )
        .await;
        let done = job["done"].as_u64().unwrap_or_default();
        assert!(
            job["state"] != "done",
            "the job ended before the kill: {job}"
        );
        if done > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no chunk ran: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server); // SIGKILL
    let port = free_port();
    let server = ServeProcess::start(&binary, &db, port, &env);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let (status, job) = send(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/jobs/{job_id}"),
            &server.token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "done" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish after the restart: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (job["done"].clone(), job["total"].clone()),
        (json!(events), json!(events)),
        "{job}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ids: Vec<String> = receiver
            .requests()
            .into_iter()
            .skip(during_outage)
            .filter(|r| r.method == "POST")
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect();
        ids.sort();
        let received = ids.len();
        ids.dedup();
        if ids.len() == events {
            // A chunk the kill cut off may have been sent twice, never more.
            assert!(
                received <= events + 100,
                "{received} POSTs for {events} deliveries"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {events} deliveries came back",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
}

/// The job runner's rules, chunk by chunk on the embedded ports (no workers: the test hands
/// each chunk to `Jobs::run_chunk` itself): a stale copy of a chunk does nothing, a cancelled
/// job runs no further chunk, and a job whose webhook was deleted meanwhile ends failed,
/// saying why.
#[tokio::test]
async fn chunks_run_once_cancel_stops_and_a_deleted_webhook_fails_the_job() {
    use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId};
    use hookline_core::event::EventId;
    use hookline_core::job::{JobChunk, JobState};
    use hookline_core::jobs::Jobs;
    use hookline_core::ports::{AttemptLog as _, WebhookStore as _};
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    let ports = hookline_tests::embedded_ports(&db);
    let jobs = Jobs::from_ports(&ports);
    let now = time::OffsetDateTime::now_utc();
    let since = now - time::Duration::hours(1);
    let mut started = Vec::new();
    for _ in 0..2 {
        let hook = hookline_tests::webhook(&["urn:allthings:app:A1:*"], &["ticket.created"], true);
        db.create(&hook).await.expect("create");
        // 150 exhausted deliveries: two chunks of 100 attempts.
        let attempts: Vec<Attempt> = (0..150)
            .map(|i| {
                let event = EventId::generate();
                Attempt {
                    attempt_id: ulid::Ulid::new().to_string(),
                    webhook_id: hook.id.clone(),
                    delivery_id: DeliveryId::for_pair(&event, &hook.id),
                    event_id: event,
                    app_id: None,
                    event_type: None,
                    attempt: 6,
                    at: now - time::Duration::seconds(i),
                    status: AttemptStatus::Exhausted,
                    response_status: Some(503),
                    error: None,
                    latency_ms: 1,
                    response_excerpt: String::new(),
                    next_retry_at: None,
                    backfill: false,
                }
            })
            .collect();
        db.record_many(&attempts, now + time::Duration::days(1))
            .await
            .expect("record");
        let recovery = jobs
            .recover(&hook, since, now, false, "tester")
            .await
            .expect("started");
        assert_eq!(recovery.matched, 150);
        started.push((hook, recovery.job.expect("a job")));
    }
    let chunk = |job: &hookline_core::job::Job, n| JobChunk {
        job: job.id.clone(),
        chunk: n,
    };
    let state = |id| {
        let jobs = jobs.clone();
        async move { jobs.get(&id).await.expect("get").expect("job") }
    };

    // The first job: chunk 0 runs once; its copy does nothing; the webhook is deleted before
    // chunk 1, which fails the job.
    let (hook, job) = &started[0];
    jobs.run_chunk(&chunk(job, 0)).await.expect("chunk 0");
    let after_one = state(job.id.clone()).await;
    assert_eq!((after_one.state, after_one.done), (JobState::Running, 100));
    jobs.run_chunk(&chunk(job, 0)).await.expect("a stale copy");
    assert_eq!(
        state(job.id.clone()).await,
        after_one,
        "a stale copy changes nothing"
    );
    db.delete(&hook.id, hook.version).await.expect("delete");
    jobs.run_chunk(&chunk(job, 1)).await.expect("chunk 1");
    let failed = state(job.id.clone()).await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("was deleted")),
        "{failed:?}"
    );

    // The second job: cancelled after chunk 0, chunk 1 does nothing.
    let (_, job) = &started[1];
    jobs.run_chunk(&chunk(job, 0)).await.expect("chunk 0");
    let cancelled = jobs.cancel(&job.id).await.expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    jobs.run_chunk(&chunk(job, 1)).await.expect("chunk 1");
    let after = state(job.id.clone()).await;
    assert_eq!((after.state, after.done), (JobState::Cancelled, 100));
    assert!(matches!(
        jobs.cancel(&job.id).await,
        Err(hookline_core::jobs::JobError::Ended(..))
    ));
}

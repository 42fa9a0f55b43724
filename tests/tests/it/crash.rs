//! Crash run: the real `hookline serve` binary, killed with SIGKILL at several moments while
//! events are being accepted, fanned out and delivered, and restarted on the same store.
//! Nothing accepted (202) is lost, and the SQLite file passes `PRAGMA integrity_check`.
//!
//! Reduced size here; `HOOKLINE_CHAOS_FULL=1` runs 50 webhooks x 10 000 events on the release
//! binary (`cargo build --release -p hookline` first).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hookline_core::adapters::sqlite::Database;
use hookline_tests::receiver::TestReceiver;
use hookline_tests::{free_port, ServeProcess};

fn full_size() -> bool {
    std::env::var("HOOKLINE_CHAOS_FULL").is_ok_and(|v| v == "1")
}

/// The debug binary; at full size the release one, with a fast retry schedule.
fn start(db: &Path, port: u16) -> ServeProcess {
    let profile = if full_size() { "release" } else { "debug" };
    ServeProcess::start(
        &ServeProcess::binary(profile),
        db,
        port,
        &[
            ("HOOKLINE_RETRY_SCHEDULE_MS", "10,20,40,80,160"),
            ("HOOKLINE_DELIVERY_TIMEOUT_MS", "2000"),
            (
                "HOOKLINE_DELIVER_WORKERS",
                if full_size() { "16" } else { "4" },
            ),
            ("RUST_LOG", "warn"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_accepted_and_the_store_stays_intact() {
    let full = full_size();
    let (webhooks, events) = if full { (50, 10_000) } else { (3, 240) };
    let receiver = TestReceiver::always(200).await;
    let dir = std::env::temp_dir().join(hookline_tests::unique_name("crash"));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("hookline.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start(&db, port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    for i in 0..webhooks {
        let r = client
            .post(format!("{base}/v1/webhooks?appId=K1"))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({"name": format!("w{i}"), "url": format!("{}/w/{i}", receiver.url), "eventTypes": ["*"]}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 201);
    }

    // Kill at three moments spread over the run, while workers are busy.
    let kills = [events / 4, events / 2, events * 3 / 4];
    let mut accepted = Vec::new();
    let started = Instant::now();
    for i in 0..events {
        if kills.contains(&i) {
            server.child.kill().expect("SIGKILL");
            server.child.wait().expect("reaped");
            server = start(&db, port);
        }
        let body = serde_json::json!({"id": format!("evt_crash_{i}"), "type": "user.registered", "urn": format!("urn:allthings:app:K1:user:U{i}"), "data": {}});
        match client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&server.token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == 202 => accepted.push(format!("evt_crash_{i}")),
            Ok(r) => panic!("event {i}: {}", r.status()),
            Err(e) => panic!("event {i}: the server is up between kills: {e}"),
        }
    }

    // Every accepted event reaches every webhook.
    let deadline = Instant::now() + Duration::from_secs(if full { 1800 } else { 120 });
    loop {
        let got: std::collections::BTreeSet<(String, String)> = receiver
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .filter_map(|r| {
                r.header("webhook-id")
                    .map(|id| (r.path.clone(), id.to_owned()))
            })
            .collect();
        let missing: Vec<(usize, &String)> = (0..webhooks)
            .flat_map(|w| accepted.iter().map(move |e| (w, e)))
            .filter(|(w, e)| !got.contains(&(format!("/w/{w}"), (*e).clone())))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted deliveries never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let stopped = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    assert!(server.child.wait().expect("exits").success());
    let check = Database::open(&db)
        .expect("reopen")
        .integrity_check()
        .await
        .expect("check");
    assert_eq!(check, "ok");
    println!(
        "crash: {} events accepted x {webhooks} webhooks, all delivered across {} SIGKILLs in {seconds:.1} s; integrity_check ok",
        accepted.len(),
        kills.len()
    );
}

/// What a crash leaves in the store is taken back by the next owner at once: an event claim
/// (its fan-out was under way) and a receive lease written back to the table.
#[tokio::test]
async fn a_restarting_owner_releases_claims_and_leases_at_once() {
    use hookline_core::event::Event;
    use hookline_core::ports::EventLog;
    let path = hookline_tests::temp_db("recover");
    let rules = hookline_core::event::IntakeRules {
        namespace: &hookline_core::urn::Namespace::default(),
        catalog: hookline_core::event_type::Catalog::builtin(),
    };
    let body = r#"{"id":"evt_rec","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:C:T","data":{}}"#;
    let event =
        Event::from_intake(body.as_bytes(), rules, time::OffsetDateTime::now_utc()).expect("event");
    let in_a_day = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    {
        // A first life: the event accepted, then its fan-out claimed; the process dies.
        let db = Database::open(&path).expect("open");
        let queue = hookline_core::adapters::sqlite::SqliteQueue::new(db.clone(), "events", None);
        queue.send(body, Duration::ZERO, None).await.expect("send");
        db.claim(&event, in_a_day, Duration::from_secs(60))
            .await
            .expect("claim");
    }
    {
        // A second life receives the message found on start (its lease is written back),
        // and dies too.
        let db = Database::open(&path).expect("open");
        let queue = hookline_core::adapters::sqlite::SqliteQueue::new(db.clone(), "events", None);
        let got = queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1);
    }
    // Without the lock: the lease and the claim hold (another owner may be alive).
    {
        let db = Database::open(&path).expect("open");
        let queue = hookline_core::adapters::sqlite::SqliteQueue::new(db.clone(), "events", None);
        assert!(queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty());
    }
    let (db, recovered) = Database::open_owned(&path).expect("open as owner");
    assert_eq!((recovered.claims, recovered.messages), (1, 1));
    let queue = hookline_core::adapters::sqlite::SqliteQueue::new(db.clone(), "events", None);
    let got = queue
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1, "visible at once");
    let claim = db
        .claim(&event, in_a_day, Duration::from_secs(60))
        .await
        .expect("claim");
    assert!(
        matches!(claim, hookline_core::ports::EventClaim::Unfinished),
        "the crashed run's claim no longer holds it: {claim:?}"
    );
}

/// SIGKILL right after a burst was answered 202, restart: every accepted event is delivered
/// without waiting out a lease (60 s claims, 30 s visibility). Prints the recovery time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_accepted_before_a_sigkill_are_delivered_right_after_the_restart() {
    let receiver = TestReceiver::always(200).await;
    let dir = std::env::temp_dir().join(hookline_tests::unique_name("crash-recover"));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("hookline.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start(&db, port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for i in 0..3 {
        let r = client
            .post(format!("{base}/v1/webhooks?appId=R1"))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({"name": format!("w{i}"), "url": format!("{}/w/{i}", receiver.url), "eventTypes": ["*"]}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 201);
    }
    // A burst, all at once, then SIGKILL the moment the last 202 arrives.
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = client.clone();
        let (base, token) = (base.clone(), server.token.clone());
        posts.spawn(async move {
            let body = serde_json::json!({"id": format!("evt_rk_{i}"), "type": "user.registered", "urn": format!("urn:allthings:app:R1:user:U{i}"), "data": {}});
            let r = client
                .post(format!("{base}/v1/events"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("post");
            (r.status() == 202).then(|| format!("evt_rk_{i}"))
        });
    }
    let accepted: Vec<String> = posts.join_all().await.into_iter().flatten().collect();
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    assert!(!accepted.is_empty());
    let restarted = Instant::now();
    let server = start(&db, port);
    let missing = |got: &std::collections::BTreeSet<(String, String)>| -> usize {
        (0..3)
            .flat_map(|w| accepted.iter().map(move |e| (format!("/w/{w}"), e.clone())))
            .filter(|pair| !got.contains(pair))
            .count()
    };
    let deadline = restarted + Duration::from_secs(30);
    let recovery = loop {
        let got: std::collections::BTreeSet<(String, String)> = receiver
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .filter_map(|r| {
                r.header("webhook-id")
                    .map(|id| (r.path.clone(), id.to_owned()))
            })
            .collect();
        let left = missing(&got);
        if left == 0 {
            break restarted.elapsed();
        }
        // Half the claim lease: anything slower waited one out.
        assert!(
            Instant::now() < deadline,
            "{left} accepted deliveries still missing {} s after the restart",
            restarted.elapsed().as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let recovered_line = server
        .said
        .iter()
        .find(|l| l.contains("recovered:"))
        .cloned()
        .unwrap_or_else(|| "  (nothing was in flight at the kill)".into());
    println!(
        "crash recovery: {} events x 3 webhooks accepted before SIGKILL, all delivered {:.0} ms after the restart began (start included); {}",
        accepted.len(),
        recovery.as_secs_f64() * 1000.0,
        recovered_line.trim_start_matches(' ')
    );
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
}

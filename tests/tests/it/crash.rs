//! Crash run: the real `hookline serve` binary, killed with SIGKILL at several moments while
//! events are being accepted, fanned out and delivered, and restarted on the same store.
//! Nothing accepted (202) is lost, and the SQLite file passes `PRAGMA integrity_check`.
//!
//! Reduced size here; `HOOKLINE_CHAOS_FULL=1` runs 50 webhooks x 10 000 events on the release
//! binary (`cargo build --release -p hookline` first).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookline_core::adapters::sqlite::Database;
use hookline_tests::receiver::TestReceiver;

/// The debug binary; at full size the release one (`cargo build --release -p hookline`).
fn binary() -> PathBuf {
    let profile = if full_size() { "release" } else { "debug" };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(profile)
        .join("hookline");
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` (./tests/run.sh) builds the debug one; `cargo build [--release] -p hookline` builds it",
        path.display()
    );
    path
}

fn full_size() -> bool {
    std::env::var("HOOKLINE_CHAOS_FULL").is_ok_and(|v| v == "1")
}

struct Server {
    child: Child,
    token: String,
}

fn start(db: &Path, port: u16) -> Server {
    let mut child = Command::new(binary())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--db"])
        .arg(db)
        .env("HOOKLINE_RETRY_SCHEDULE_MS", "10,20,40,80,160")
        .env("HOOKLINE_DELIVERY_TIMEOUT_MS", "2000")
        .env(
            "HOOKLINE_DELIVER_WORKERS",
            if full_size() { "16" } else { "4" },
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hookline serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut token = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(t) = line.trim().strip_prefix("export HOOKLINE_TOKEN=") {
            token = t.to_owned();
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    assert!(!token.is_empty(), "serve printed no token");
    Server { child, token }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
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

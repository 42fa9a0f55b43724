//! The `hookline` binary as a newcomer runs it: `serve` prints what it promises, keeps its store
//! to itself and stops cleanly on Ctrl-C; `token` mints a token that `serve` accepts; help,
//! version, completions and argument errors come from clap; `listen` receives webhooks.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn temp_db(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("hookline-cli-{name}-{nanos}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("hookline.db")
}

#[test]
fn serve_prints_its_address_store_and_token_then_stops_on_ctrl_c() {
    let db = temp_db("serve");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hookline starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8 line");
        let done = line.contains("Ctrl-C");
        lines.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(
        text.contains("Hookline listening on http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains(&format!("store:  {}", db.display())),
        "{text}"
    );
    assert!(text.contains("export HOOKLINE_TOKEN=ey"), "{text}");
    assert!(text.contains("private targets ALLOWED"), "{text}");
    assert!(
        text.contains("deliveries: 5 retries after 30s, 2m, 8m, 32m, 2h (±20% jitter), delivery timeout 10s, 16 workers"),
        "serve prints the schedule and timeouts it runs with: {text}"
    );
    assert!(
        text.contains("intake: up to 1000 deliveries waiting for a first attempt, then 429"),
        "serve prints its backpressure limit: {text}"
    );
    assert!(text.contains("valid with this store only"), "{text}");
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("Hookline listening on "))
        .expect("url line")
        .to_owned();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("export HOOKLINE_TOKEN="))
        .expect("token line")
        .to_owned();

    // The printed token works against the printed address.
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{url}/v1/webhooks?appId=A1"))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");

    // A token minted by `hookline token` on the same store is accepted too.
    let minted = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args([
            "token",
            "--app",
            "A1",
            "--permission",
            "edit-app",
            "--sub",
            "ci",
            "--db",
        ])
        .arg(&db)
        .output()
        .expect("hookline token runs");
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let minted = String::from_utf8_lossy(&minted.stdout).trim().to_owned();
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {minted}"))
        .arg(format!("{url}/v1/webhooks?appId=A2"))
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "403",
        "the minted token holds edit-app:A1 only"
    );

    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let output = child.wait_with_output().expect("exits");
    assert!(
        output.status.success(),
        "exit after Ctrl-C: {:?}",
        output.status
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in logs that do not go to a terminal: {log}"
    );
}

#[test]
fn bad_arguments_are_explained() {
    for args in [
        &["serve", "--port", "1"][..],
        &["token"][..],
        &["frobnicate"][..],
        &["token", "--app", "A1", "--permission", "root"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(args)
            .arg("--db")
            .arg(temp_db("args"))
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error:") && err.contains("--help"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn dlq_list_and_replay_on_the_embedded_store() {
    let db = temp_db("dlq");
    let missing = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["dlq", "list", "--db"])
        .arg(&db)
        .output()
        .expect("runs");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains(&format!("no Hookline store at {}", db.display())),
        "it says where it looked: {}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(
        !db.exists(),
        "commands other than serve never create a store"
    );
    hookline_core::adapters::sqlite::Database::open(&db).expect("a store");
    let list = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["dlq", "list", "--queue", "deliveries", "--db"])
        .arg(&db)
        .output()
        .expect("runs");
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains("0 message(s) in deliveries-dlq of"));
    let replay = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["dlq", "replay", "--queue", "events", "--limit", "5", "--db"])
        .arg(&db)
        .output()
        .expect("runs");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(String::from_utf8_lossy(&replay.stdout)
        .contains("replayed 0 message(s) from events-dlq to events"));
    let bad = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["dlq", "replay", "--webhook", "nope", "--db"])
        .arg(&db)
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a webhook id"));
}

fn hookline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .output()
        .expect("hookline runs")
}

#[test]
fn help_version_completions_and_argument_errors() {
    let help = hookline(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for command in [
        "serve",
        "token",
        "dlq",
        "keys",
        "listen",
        "completions",
        "bench",
    ] {
        assert!(text.contains(command), "--help names {command}: {text}");
    }
    let serve = String::from_utf8_lossy(&hookline(&["serve", "--help"]).stdout).into_owned();
    for env in [
        "HOOKLINE_ADDR",
        "HOOKLINE_DB",
        "HOOKLINE_DELIVER_WORKERS",
        "HOOKLINE_RETRY_SCHEDULE_MS",
        "HOOKLINE_DELIVERY_TIMEOUT_MS",
        "HOOKLINE_URN_NAMESPACE",
        "HOOKLINE_ALLOW_HTTP",
        "HOOKLINE_ALLOW_PRIVATE_TARGETS",
        "HOOKLINE_ONE_URL_PER_EVENT",
        "HOOKLINE_PERMISSIONS_CLAIM",
    ] {
        assert!(serve.contains(env), "serve --help shows {env}: {serve}");
    }
    let listen = String::from_utf8_lossy(&hookline(&["listen", "--help"]).stdout).into_owned();
    for flag in ["--addr", "--secret", "--status", "--json"] {
        assert!(listen.contains(flag), "{listen}");
    }
    let version = hookline(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("hookline {}", env!("CARGO_PKG_VERSION"))
    );
    let bad = hookline(&["serve", "--deliver-workers", "many"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("invalid value 'many' for '--deliver-workers <N>'"));
    let bad = hookline(&["listen", "--status", "700"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an HTTP status code"));
    let completions = hookline(&["completions", "bash"]);
    assert!(String::from_utf8_lossy(&completions.stdout).contains("_hookline()"));
    // A closed pipe ends the output, not in a panic.
    let piped = Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; {} --help | head -1; {} completions zsh | head -1",
                env!("CARGO_BIN_EXE_hookline"),
                env!("CARGO_BIN_EXE_hookline")
            ),
        ])
        .output()
        .expect("bash runs");
    assert!(
        !String::from_utf8_lossy(&piped.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
}

#[test]
fn a_host_name_is_a_valid_address_and_a_second_serve_on_one_store_refuses() {
    let db = temp_db("lock");
    let mut first = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--addr", "localhost:0", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hookline starts");
    let stdout = first.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let listening = lines.next().expect("a line").expect("utf-8");
    assert!(
        listening.starts_with("Hookline listening on http://"),
        "{listening}"
    );
    let second = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(&db)
        .output()
        .expect("runs");
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("in use by another `hookline serve`"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

/// `hookline listen`: HEAD answered, scripted statuses in turn, signatures checked with the
/// secret, one line per delivery with its attempt count.
#[test]
fn listen_answers_checks_signatures_and_scripts_statuses() {
    use hookline_core::signing::{signature_header, Secret};
    let secret = Secret::generate().expect("rng");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args([
            "listen",
            "--addr",
            "127.0.0.1:0",
            "--status",
            "500,200",
            "--secret",
        ])
        .arg(secret.expose())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hookline listen starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let url = first
        .split("on ")
        .nth(1)
        .expect("the address")
        .trim()
        .to_owned();
    let curl = |method: &str, headers: &[String], body: &str| -> String {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method]);
        if method == "HEAD" {
            c.arg("-I");
        }
        for h in headers {
            c.args(["-H", h]);
        }
        if !body.is_empty() {
            c.args(["--data-binary", body]);
        }
        let out = c.arg(&url).output().expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("HEAD", &[], ""), "200");
    let body = r#"{"id":"evt_1","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:CAT7:T99","data":{}}"#;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = |sig: String| {
        vec![
            "webhook-id: evt_1".to_owned(),
            format!("webhook-timestamp: {now}"),
            format!("webhook-signature: {sig}"),
            "content-type: application/json".to_owned(),
        ]
    };
    let good = signature_header(std::slice::from_ref(&secret), "evt_1", now, body.as_bytes());
    assert_eq!(
        curl("POST", &signed(good.clone()), body),
        "500",
        "first scripted status"
    );
    assert_eq!(curl("POST", &signed(good), body), "200", "then the next");
    let other = Secret::generate().expect("rng");
    let bad = signature_header(std::slice::from_ref(&other), "evt_1", now, body.as_bytes());
    assert_eq!(
        curl("POST", &signed(bad), body),
        "200",
        "the last one repeats"
    );
    let _ = child.kill();
    let _ = child.wait();
    let printed: Vec<String> = lines.map_while(Result::ok).collect();
    let text = printed.join("\n");
    assert!(text.contains("HEAD /  200  endpoint check"), "{text}");
    let deliveries: Vec<&String> = printed.iter().filter(|l| l.contains("evt_1")).collect();
    assert_eq!(deliveries.len(), 3, "{text}");
    assert!(
        deliveries[0].contains("ticket.created")
            && deliveries[0].contains("urn:allthings:app:A1:ticket:CAT7:T99")
            && deliveries[0].contains("attempt 1")
            && deliveries[0].contains("answered 500")
            && deliveries[0].contains("signature ok"),
        "{}",
        deliveries[0]
    );
    assert!(deliveries[1].contains("attempt 2") && deliveries[1].contains("answered 200"));
    assert!(deliveries[2].contains("signature BAD"), "{}", deliveries[2]);
}

/// The README's run command, `cargo run --release -p hookline -- serve`, names no binary: the
/// package must say which of its two it runs.
#[test]
fn cargo_run_starts_hookline_not_the_benchmarks() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("Cargo.toml");
    assert!(
        manifest.contains("default-run = \"hookline\""),
        "functions/local/Cargo.toml must set default-run = \"hookline\""
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    assert!(readme.contains("cargo run --release -p hookline -- serve"));
}

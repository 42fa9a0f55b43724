//! The `hookline` binary as a newcomer runs it: `serve` prints what it promises and stops
//! cleanly on Ctrl-C; `token` mints a token that `serve` accepts.

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
    assert!(String::from_utf8_lossy(&output.stderr).contains("shutting down"));
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
            err.contains("hookline:") && err.contains("usage:"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn dlq_list_and_replay_on_the_embedded_store() {
    let db = temp_db("dlq");
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
    assert!(String::from_utf8_lossy(&list.stdout).contains("0 message(s) in deliveries-dlq"));
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

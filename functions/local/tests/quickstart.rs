//! The README's quickstart session, run as written: the real `hookline serve` binary on a
//! scratch store, and the block's own `hookline listen` as the receiver, which must print
//! `signature ok` for the event it got.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn quickstart_session() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README");
    let after = readme
        .split("<!-- quickstart-session")
        .nth(1)
        .expect("README has the quickstart-session marker");
    let block = after
        .split("```sh\n")
        .nth(1)
        .expect("a sh block after the marker");
    block.split("```").next().expect("closed block").to_owned()
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn the_readme_session_works_as_written_with_hookline_listen() {
    let session = quickstart_session();
    assert!(session.contains("127.0.0.1:8080") && session.contains("127.0.0.1:9000"));
    assert!(session.contains("hookline listen"));
    let dir = std::env::temp_dir().join(format!(
        "hookline-quickstart-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut serve = Running(
        Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["serve", "--addr", "127.0.0.1:0", "--db"])
            .arg(dir.join("hookline.db"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("hookline serve starts"),
    );
    let stdout = serve.0.stdout.take().expect("stdout");
    let (mut base, mut token) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = BufReader::new(stdout).lines();
    while base.is_none() || token.is_none() {
        assert!(
            Instant::now() < deadline,
            "serve printed no address and token"
        );
        let line = lines.next().expect("serve prints").expect("utf-8");
        if let Some(url) = line.strip_prefix("Hookline listening on http://") {
            base = Some(url.trim().to_owned());
        } else if let Some(t) = line.trim().strip_prefix("export HOOKLINE_TOKEN=") {
            token = Some(t.to_owned());
        }
    }
    // Keep draining: a closed pipe would fail serve's later prints.
    std::thread::spawn(move || for _ in lines {});
    let (base, token) = (base.expect("address"), token.expect("token"));

    let listen_at = format!("127.0.0.1:{}", free_port());
    let script = session
        .replace("127.0.0.1:8080", &base)
        .replace("127.0.0.1:9000", &listen_at);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_hookline"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .env("HOOKLINE_TOKEN", &token)
        .env("PATH", path)
        .output()
        .expect("bash runs (curl must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "session failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("created wh_"), "{stdout}");
    assert!(
        stdout.contains("\"secret\":\"whsec_"),
        "the create answer shows the secret: {stdout}"
    );
    assert!(
        stdout.contains("\"urns\":[\"urn:allthings:app:A1:*\"]"),
        "the PATCH answer shows the widened URN: {stdout}"
    );
    assert!(
        stdout.contains("\"status\":\"delivered\""),
        "the delivery log shows the event delivered: {stdout}"
    );
    assert!(stdout.contains("deleted: 204"), "{stdout}");
    assert!(
        stdout.contains("HEAD /  200  endpoint check"),
        "the listener answered the endpoint check: {stdout}"
    );
    let delivery = stdout
        .lines()
        .find(|l| l.contains("ticket.created"))
        .unwrap_or_else(|| panic!("the listener printed the delivery: {stdout}"));
    assert!(
        delivery.contains("urn:allthings:app:A1:ticket:CAT7:T99")
            && delivery.contains("attempt 1")
            && delivery.contains("signature ok"),
        "{delivery}"
    );
    assert!(!stdout.contains("signature BAD"), "{stdout}");
}

#[test]
fn a_session_without_a_token_fails_loudly() {
    let session = quickstart_session();
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{session}"))
        .env_remove("HOOKLINE_TOKEN")
        .output()
        .expect("bash runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("export the token hookline serve printed"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

//! The README's sessions, run as written: the real `hookline serve` binary on a scratch store,
//! and each block's own `hookline listen` as the receiver. The quickstart's listener must print
//! `signature ok` for the event it got; the GraphQL block is the platform's public
//! `registerWebhook` example, and an event must then reach its URL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `sh` block after the README's `<!-- {marker}` comment.
fn readme_block(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README");
    let after = readme
        .split(&format!("<!-- {marker}"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has the {marker} marker"));
    let block = after
        .split("```sh\n")
        .nth(1)
        .expect("a sh block after the marker");
    block.split("```").next().expect("closed block").to_owned()
}

fn quickstart_session() -> String {
    readme_block("quickstart-session")
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

/// `hookline serve` on a scratch store with `env` set: the running child, its `HOST:PORT`,
/// its token and its store.
fn serve(env: &[(&str, &str)]) -> (Running, String, String, std::path::PathBuf) {
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
            .envs(env.iter().copied())
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
    (
        serve,
        base.expect("address"),
        token.expect("token"),
        dir.join("hookline.db"),
    )
}

/// Runs a README block against a fresh `hookline serve`, its listener on a free port: stdout.
fn run_session(session: &str) -> String {
    run_session_with(session, &[])
}

/// [`run_session`] with `serve` started with `serve_env`; the block's `hookline` commands use
/// the same store (`HOOKLINE_DB`), as they would run beside it.
fn run_session_with(session: &str, serve_env: &[(&str, &str)]) -> String {
    assert!(session.contains("127.0.0.1:8080") && session.contains("127.0.0.1:9000"));
    assert!(session.contains("hookline listen"));
    let (_serve, base, token, db) = serve(serve_env);
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
        .env("HOOKLINE_DB", &db)
        .env("PATH", path)
        .output()
        .expect("bash runs (curl must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "session failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    unmix(&stdout)
}

/// The session's stdout with each of the listener's lines on a line of its own. The listener
/// and curl share the terminal, and curl's answers end without a newline (the block's `echo`
/// adds it), so a delivery printed in between lands after an answer on the same line.
fn unmix(stdout: &str) -> String {
    // A listener line starts with its clock: `HH:MM:SS  `.
    fn clock_at(line: &[u8], i: usize) -> bool {
        let digit = |k: usize| line.get(i + k).is_some_and(u8::is_ascii_digit);
        [0, 1, 3, 4, 6, 7].into_iter().all(digit)
            && line.get(i + 2) == Some(&b':')
            && line.get(i + 5) == Some(&b':')
            && line.get(i + 8..i + 10) == Some(b"  ".as_slice())
    }
    let mut out = String::with_capacity(stdout.len());
    for line in stdout.lines() {
        let bytes = line.as_bytes();
        let mut start = 0;
        for i in 1..bytes.len() {
            if clock_at(bytes, i) {
                out.push_str(&line[start..i]);
                out.push('\n');
                start = i;
            }
        }
        out.push_str(&line[start..]);
        out.push('\n');
    }
    out
}

#[test]
fn unmix_puts_a_listener_line_on_its_own() {
    let mixed = "{\"id\":\"evt_1\"}11:29:24  evt_1  ticket.created  urn  attempt 1\n\nnext\n";
    assert_eq!(
        unmix(mixed),
        "{\"id\":\"evt_1\"}\n11:29:24  evt_1  ticket.created  urn  attempt 1\n\nnext\n"
    );
    assert_eq!(unmix("11:29:24  HEAD /  200\n"), "11:29:24  HEAD /  200\n");
}

#[test]
fn the_readme_session_works_as_written_with_hookline_listen() {
    let stdout = run_session(&quickstart_session());
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
        .find(|l| l.contains("ticket.created") && !l.starts_with('{'))
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

/// The platform's public `registerWebhook` example, verbatim but for host, token and URL,
/// against `hookline serve`; then a published event reaches that URL.
#[test]
fn the_readme_graphql_session_registers_with_the_public_example() {
    let session = readme_block("graphql-session");
    let example = r#"--data-binary '{"query":"mutation RegisterNewWebhook($webhook:RegisterWebhookInput!){registerWebhook(webhook:$webhook){code message success}}","variables":{"webhook":{"description":"An example webhook","events":["ticket.created","ticket.updated"],"url":"http://127.0.0.1:9000/","urns":["urn:allthings:app:A1:*"]}}}'"#;
    assert!(
        session.contains(example),
        "the README block carries the public example as documented"
    );
    // The block as written, then a look at what it left behind.
    let stdout = run_session(&format!(
        "{session}\necho leftover: $(curl -sS --fail-with-body 'http://127.0.0.1:8080/v1/webhooks?appId=A1' -H \"Authorization: Bearer $HOOKLINE_TOKEN\")\n"
    ));
    assert!(
        stdout.contains(r#"{"data":{"deleteWebhook":{"code":"OK","success":true}}}"#),
        "the block deletes what it registered: {stdout}"
    );
    let leftover = stdout
        .lines()
        .find(|l| l.starts_with("leftover: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        leftover.contains(r#""items":[]"#),
        "no webhook is left behind: {leftover}"
    );
    assert!(
        stdout.contains(r#"{"data":{"registerWebhook":{"code":"OK","message":"webhook wh_"#)
            && stdout.contains(r#" registered","success":true}}}"#),
        "{stdout}"
    );
    assert!(stdout.contains(r#""totalCount":1"#), "{stdout}");
    assert!(
        stdout.contains(r#""description":"An example webhook""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"{"status":"DELIVERED","attempt":1,"result":{"statusCode":200"#),
        "the delivery log shows the event delivered: {stdout}"
    );
    let delivery = stdout
        .lines()
        .find(|l| l.contains("ticket.created") && !l.starts_with('{'))
        .unwrap_or_else(|| panic!("the listener printed the delivery: {stdout}"));
    assert!(
        delivery.contains("urn:allthings:app:A1:ticket:CAT7:T99") && delivery.contains("attempt 1"),
        "{delivery}"
    );
}

/// The README's lifecycle session, against `serve` started as its first line says: a failing
/// endpoint is disabled after the window, enabled again, and a revoked grant suspends it.
#[test]
fn the_readme_lifecycle_session_disables_enables_and_suspends() {
    let session = readme_block("lifecycle-session");
    assert!(session.contains("HOOKLINE_DISABLE_AFTER=2s HOOKLINE_DISABLE_MIN_FAILURES=3"));
    let stdout = run_session_with(
        &session,
        &[
            ("HOOKLINE_DISABLE_AFTER", "2s"),
            ("HOOKLINE_DISABLE_MIN_FAILURES", "3"),
        ],
    );
    let answers: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let [disabled, enabled, revoked, suspended, restored] = &answers[..] else {
        panic!("five JSON answers expected: {stdout}");
    };
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert_eq!(disabled["disabledReason"], "failing");
    assert_eq!(disabled["lastError"], "the endpoint answered 400");
    assert_eq!(disabled["failing"]["failures"], 4);
    assert_eq!(enabled["enabled"], true, "{enabled}");
    assert!(enabled.get("failing").is_none(), "{enabled}");
    assert_eq!(revoked["webhooks"][0], disabled["id"], "{revoked}");
    assert_eq!(suspended["suspended"][0]["reason"], "permission revoked");
    assert_eq!(restored["revoked"], false, "{restored}");
}

#[test]
fn the_readme_rules_session_filters_and_shows_the_rules() {
    let stdout = run_session(&readme_block("rules-session"));
    let answers: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let [webhook, log] = &answers[..] else {
        panic!("two JSON answers expected: {stdout}");
    };
    assert_eq!(
        webhook["filter"],
        serde_json::json!({"data": {"priority": ["high", "urgent"]}})
    );
    assert_eq!(
        webhook["retry"],
        serde_json::json!({"schedule": ["10s", "1m"], "maxAttempts": 3})
    );
    assert_eq!(webhook["rateLimit"]["perSecond"], 2);
    assert_eq!(webhook["ordering"], "per-urn");
    let statuses: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(statuses, ["delivered", "delivered"], "{log}");
    // The listener's lines (the API's JSON answers name the event type too).
    let received = stdout
        .lines()
        .filter(|l| l.contains("ticket.created") && !l.starts_with('{'))
        .count();
    assert_eq!(
        received, 2,
        "only the high and urgent events reached the listener: {stdout}"
    );
}

/// The README's copy of `hookline --help` is what the binary prints, to the last line.
#[test]
fn the_readmes_help_is_the_binarys() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README");
    let copy = readme
        .split("$ hookline --help\n")
        .nth(1)
        .and_then(|rest| rest.split("\n$ hookline --version").next())
        .expect("the README shows `$ hookline --help` followed by `$ hookline --version`");
    let help = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("--help")
        .output()
        .expect("hookline --help runs");
    assert!(help.status.success());
    let printed = String::from_utf8(help.stdout).expect("utf-8");
    assert_eq!(
        copy.trim_end(),
        printed.trim_end(),
        "README's `hookline --help` differs from the binary's: paste the output of `hookline --help` there"
    );
}

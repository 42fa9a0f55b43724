//! Metrics as an operator reads them: the real `hookline serve` binary after a scripted run
//! (N delivered, M retried, K dead-lettered), `GET /metrics` parsed by Prometheus's own text
//! parser (Python `prometheus_client.parser`, from the test venv); its counters are N, M, K.
//! And `/metrics` refuses callers without `read-metrics:*` with problem+json.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hookline_tests::receiver::{Reply, TestReceiver};
use hookline_tests::{free_port, temp_db, ServeProcess};
use serde_json::{json, Value};

fn python() -> String {
    std::env::var("HOOKLINE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("HOOKLINE_TEST_PYTHON is not set: run ./tests/run.sh, which installs the test venv with prometheus_client and names its python")
    })
}

/// Every sample of a scrape, `name{label="v",...}` → value, as `prometheus_client` parses it.
fn parse(python: &str, text: &str) -> BTreeMap<String, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let out = hookline_tests::run_python(python, SCRIPT, text.as_bytes());
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus_client from the test venv: ./tests/run.sh installs it and runs this with --include-ignored"]
async fn a_scrape_after_a_scripted_run_counts_what_happened() {
    let python = python();
    // /ok answers 200; /flaky 503 to the first copy of each delivery, then 200; /down 500 to
    // every delivery. Saves probe with HEAD, answered 200 everywhere.
    let receiver = TestReceiver::start(|req, _| {
        if req.method == "HEAD" || req.path.starts_with("/ok") {
            return Reply::status(200);
        }
        Reply::status(if req.path.starts_with("/down") {
            500
        } else {
            200
        })
    })
    .await;
    let flaky_seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let seen = flaky_seen.clone();
    let flaky = TestReceiver::start(move |req, _| {
        if req.method == "HEAD" {
            return Reply::status(200);
        }
        let id = req.header("webhook-id").unwrap_or_default().to_owned();
        let first = seen.lock().expect("lock").insert(id);
        Reply::status(if first { 503 } else { 200 })
    })
    .await;
    let db = temp_db("metrics-scrape");
    let port = free_port();
    let server = ServeProcess::start(
        &ServeProcess::binary("debug"),
        &db,
        port,
        &[
            // Two retries: a delivery failing three times is dead-lettered.
            ("HOOKLINE_RETRY_SCHEDULE_MS", "10,10"),
            ("RUST_LOG", "warn"),
        ],
    );
    assert!(
        server
            .said
            .iter()
            .any(|l| l.contains(&format!("metrics: http://127.0.0.1:{port}/metrics"))),
        "serve says where the metrics are: {:?}",
        server.said
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // Without a token: 401; with one lacking read-metrics: 403; both problem+json.
    let anonymous = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let minted = std::process::Command::new(ServeProcess::binary("debug"))
        .args(["token", "--app", "A1", "--db"])
        .arg(&db)
        .output()
        .expect("hookline token runs");
    let editor = String::from_utf8_lossy(&minted.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let refused = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&editor)
        .send()
        .await
        .expect("get");
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.expect("problem");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("read-metrics")),
        "{body}"
    );

    for (app, url) in [
        ("A1", format!("{}/ok", receiver.url)),
        ("A2", format!("{}/flaky", flaky.url)),
        ("A3", format!("{}/down", receiver.url)),
    ] {
        let created = http
            .post(format!("{base}/v1/webhooks?appId={app}"))
            .bearer_auth(&server.token)
            .json(&json!({"name": app, "url": url, "eventTypes": ["ticket.created"]}))
            .send()
            .await
            .expect("create");
        assert_eq!(
            created.status(),
            201,
            "{}",
            created.text().await.unwrap_or_default()
        );
    }
    // N = 3 (A1) + 2 (A2, each after one 503) delivered, M = 2 (A2) + 2 (A3) retried,
    // K = 1 (A3) dead-lettered; 6 events accepted, 1 refused.
    for (app, n) in [("A1", 3), ("A2", 2), ("A3", 1)] {
        for i in 0..n {
            let r = http
                .post(format!("{base}/v1/events"))
                .bearer_auth(&server.token)
                .json(&json!({"type": "ticket.created", "urn": format!("urn:allthings:app:{app}:ticket:C:T{i}"), "data": {}}))
                .send()
                .await
                .expect("publish");
            assert_eq!(r.status(), 202);
        }
    }
    let r = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(&server.token)
        .json(&json!({"type": "ticket.created", "urn": "not a urn", "data": {}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 422);

    let scrape = || async {
        let r = http
            .get(format!("{base}/metrics"))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("scrape");
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")));
        parse(&python, &r.text().await.expect("text"))
    };
    let attempts = |s: &BTreeMap<String, f64>, outcome: &str| {
        sample(
            s,
            &format!("hookline_delivery_attempts_total{{outcome=\"{outcome}\"}}"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let s = scrape().await;
        if (attempts(&s, "delivered"), attempts(&s, "dead_lettered")) == (5.0, 1.0)
            || Instant::now() > deadline
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let counts: Vec<(&str, f64)> = [
        "delivered",
        "retrying",
        "dead_lettered",
        "failed",
        "delayed",
        "gone",
        "skipped",
    ]
    .into_iter()
    .map(|o| (o, attempts(&samples, o)))
    .collect();
    assert_eq!(
        counts,
        vec![
            ("delivered", 5.0),
            ("retrying", 4.0),
            ("dead_lettered", 1.0),
            ("failed", 0.0),
            ("delayed", 0.0),
            ("gone", 0.0),
            ("skipped", 0.0)
        ],
        "attempts by outcome"
    );
    let published = |o: &str| {
        sample(
            &samples,
            &format!("hookline_events_published_total{{outcome=\"{o}\"}}"),
        )
    };
    assert_eq!(
        (
            published("accepted"),
            published("rejected"),
            published("duplicate")
        ),
        (6.0, 1.0, 0.0)
    );
    assert_eq!(sample(&samples, "hookline_fanout_matches_total{}"), 6.0);
    let class = |c: &str| {
        sample(
            &samples,
            &format!("hookline_delivery_responses_total{{status_class=\"{c}\"}}"),
        )
    };
    assert_eq!((class("2xx"), class("5xx"), class("4xx")), (5.0, 5.0, 0.0));
    assert_eq!(
        sample(&samples, "hookline_endpoint_checks_total{result=\"ok\"}"),
        3.0
    );
    // Histograms: one observation per answered attempt; one per acknowledged delivery.
    assert_eq!(
        sample(
            &samples,
            "hookline_delivery_attempt_duration_seconds_count{}"
        ),
        10.0
    );
    assert_eq!(
        sample(&samples, "hookline_delivery_latency_seconds_count{}"),
        5.0
    );
    assert_eq!(
        sample(
            &samples,
            "hookline_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        10.0
    );
    // Gauges: the dead-lettered delivery waits in the DLQ; nothing else is queued.
    assert_eq!(
        sample(&samples, "hookline_dlq_depth{queue=\"deliveries-dlq\"}"),
        1.0
    );
    assert!(samples.contains_key("hookline_queue_depth{queue=\"deliveries\"}"));
    assert!(
        samples.contains_key("hookline_queue_oldest_message_age_seconds{queue=\"deliveries-dlq\"}")
    );
    assert!(
        sample(
            &samples,
            "hookline_queue_oldest_message_age_seconds{queue=\"deliveries-dlq\"}"
        ) >= 0.0
    );
    // No label carries an id.
    for key in samples.keys() {
        assert!(!key.contains("wh_") && !key.contains("evt_"), "{key}");
    }
    drop(server);
}

/// The README block of `lang` after its `<!-- {marker}` comment.
fn readme_block(marker: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let after = readme
        .split(&format!("<!-- {marker}"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has the {marker} marker"));
    let block = after
        .split(&format!("```{lang}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("a {lang} block after {marker}"));
    block.split("```").next().expect("closed block").to_owned()
}

/// The README's operator section as written: its `hookline token` command mints a token into
/// the file its Prometheus scrape config names, and that config (target, path, credentials
/// file) scrapes a real `hookline serve`; its alert rules and its metric table name exactly
/// the metrics that exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_scrape_config_and_token_command_scrape_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let config: serde_yaml::Value = serde_yaml::from_str(&readme_block("scrape-config", "yaml"))
        .expect("scrape config is YAML");
    let job = &config["scrape_configs"][0];
    let credentials_file = job["authorization"]["credentials_file"]
        .as_str()
        .expect("authorization.credentials_file");
    let target = job["static_configs"][0]["targets"][0]
        .as_str()
        .expect("a target");
    assert_eq!(
        target, "127.0.0.1:8080",
        "the target is serve's default address"
    );
    let path = job["metrics_path"].as_str().expect("metrics_path");

    // The token command as written, its stdout redirected to the file the config reads.
    let command = readme
        .lines()
        .find(|l| l.starts_with("hookline token ") && l.contains("read-metrics"))
        .expect("the README mints a read-metrics token");
    let (args, file) = command.split_once(" > ").expect("redirected to a file");
    assert_eq!(
        file.trim(),
        credentials_file,
        "the token goes where the config reads it"
    );
    let db = temp_db("metrics-readme");
    let args: Vec<String> = args
        .split_whitespace()
        .skip(1)
        .map(|a| a.trim_matches('\'').to_owned())
        .collect();
    // Where `hookline serve` keeps its store, as the README runs it.
    let port = free_port();
    let server = ServeProcess::start(
        &ServeProcess::binary("debug"),
        &db,
        port,
        &[("RUST_LOG", "warn")],
    );
    let minted = std::process::Command::new(ServeProcess::binary("debug"))
        .args(&args)
        .arg("--db")
        .arg(&db)
        .output()
        .expect("hookline token runs");
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    // Prometheus trims the credentials file's surrounding whitespace; nothing else may be in it.
    let token = String::from_utf8(minted.stdout).expect("utf-8");
    let token = token.trim();
    assert_eq!(
        token.split('.').count(),
        3,
        "stdout holds only the token: {token}"
    );

    let scraped = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("scrape");
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.expect("text");
    // Counters start at zero, so a fresh serve already shows them.
    assert!(
        text.contains("hookline_delivery_attempts_total{outcome=\"delivered\"} 0"),
        "{text}"
    );
    assert!(text.contains("hookline_fanout_matches_total 0"), "{text}");
    for metric in hookline_core::telemetry::CATALOG {
        assert!(
            readme.contains(&format!("| `{}` |", metric.name)),
            "{} in README's table",
            metric.name
        );
    }
    drop(server);

    let rules: serde_yaml::Value =
        serde_yaml::from_str(&readme_block("alert-rules", "yaml")).expect("alert rules are YAML");
    let names: Vec<&str> = hookline_core::telemetry::CATALOG
        .iter()
        .map(|m| m.name)
        .collect();
    let mut named = 0;
    for rule in rules["groups"][0]["rules"].as_sequence().expect("rules") {
        let expr = rule["expr"].as_str().expect("expr");
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("hookline_") {
                assert!(
                    names.contains(&word),
                    "{word} in an alert rule is not a metric"
                );
                named += 1;
            }
        }
    }
    assert!(named >= 3, "the rules name metrics");
}

//! Small runs of every `hookline bench` command, so they cannot rot. They check that each
//! run completes and counts right (every delivery arrived, every function answered); they
//! assert nothing about time, which on shared machines is noise.

use std::path::{Path, PathBuf};
use std::process::Command;

fn hookline(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .arg("--json")
        .output()
        .expect("hookline runs");
    assert!(
        out.status.success(),
        "hookline {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "hookline {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn bench_runs_the_floor_and_the_pipeline_and_counts_every_delivery() {
    let r = hookline(&[
        "bench",
        "--webhooks",
        "3",
        "--events",
        "150",
        "--rate",
        "100",
        "--rate-events",
        "40",
    ]);
    assert_eq!(r["floor"]["deliveries"], 450, "{r:#}");
    assert_eq!(r["pipeline"]["deliveries"], 450, "{r:#}");
    assert_eq!(
        r["concurrency"], 160,
        "16 delivery consumers x batches of 10"
    );
    assert!(r["ratio"].as_f64().is_some_and(|x| x > 0.0), "{r:#}");
    assert!(r["pipeline"]["process"]["peak_rss_mib"]
        .as_f64()
        .is_some_and(|x| x > 0.0));
    assert_eq!(r["offered_load"]["events"], 40);
    let o = &r["offered_load"];
    let l = &o["latency"];
    assert!(l["p50_ms"].as_f64() <= l["p99_ms"].as_f64(), "{l}");
    // Each pair's wait after the 202 is within its wait from the accepted POST, which is
    // within its wait from the first POST: so are their percentiles.
    let p99 = |k: &str| o[k]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(
        p99("queued_latency") <= p99("accepted_latency")
            && p99("accepted_latency") <= p99("latency"),
        "{o:#}"
    );
}

#[test]
fn bench_soak_samples_and_loses_nothing() {
    let r = hookline(&[
        "bench",
        "soak",
        "--minutes",
        "0.5",
        "--probe-secs",
        "4",
        "--sample-secs",
        "5",
    ]);
    assert_eq!(r["lost"], 0, "{r:#}");
    let samples = r["samples"].as_array().expect("samples");
    assert!(samples.len() >= 5, "{r:#}");
    assert!(samples
        .iter()
        .all(|s| s["rss_mib"].as_f64().is_some_and(|x| x > 0.0)));
    assert!(r["rate"].as_u64().is_some_and(|x| x >= 1), "{r:#}");
    assert!(r["verdict"]
        .as_str()
        .is_some_and(|v| v.contains("nothing lost")));
}

#[test]
fn bench_idle_measures_a_quiet_window_and_every_wake() {
    let r = hookline(&[
        "bench",
        "idle",
        "--quiet-secs",
        "3",
        "--wakes",
        "5",
        "--pause-ms",
        "300",
    ]);
    // Figures are for BENCHMARKS.md, not asserted: this checks that the run measured.
    assert!(r["quiet_cpu_s"].as_f64().is_some_and(|x| x >= 0.0), "{r:#}");
    assert!(
        r["wake"]["max_ms"].as_f64().is_some_and(|x| x > 0.0),
        "{r:#}"
    );
    assert!(
        r["end_to_end"]["p50_ms"].as_f64() >= r["wake"]["p50_ms"].as_f64(),
        "{r:#}"
    );
}

#[test]
fn bench_refuses_an_empty_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["bench", "--events", "0"])
        .output()
        .expect("hookline runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'--events <EVENTS>'") && err.contains("at least 1"),
        "{err}"
    );
}

/// Where cargo put this build's binaries (`target/debug` under `cargo test`).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_hookline"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

#[test]
#[ignore = "needs moto and the workspace's Lambda binaries: ./tests/run.sh builds and starts both"]
fn cold_start_launches_every_function_against_the_runtime_api_emulator() {
    let dir = bin_dir();
    for binary in ["api", "ingest", "deliver", "empty-lambda"] {
        assert!(
            dir.join(binary).exists(),
            "{} is missing: cargo build --workspace --bins",
            dir.join(binary).display()
        );
    }
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/events");
    let r = hookline(&[
        "bench",
        "cold-start",
        "--runs",
        "2",
        "--bin-dir",
        dir.to_str().expect("utf-8 path"),
        "--events-dir",
        events.to_str().expect("utf-8 path"),
    ]);
    let rows = r.as_array().expect("one row per function");
    let names: Vec<&str> = rows.iter().filter_map(|f| f["function"].as_str()).collect();
    assert_eq!(
        names,
        ["empty-lambda", "api", "api graphql", "ingest", "deliver"]
    );
    assert_eq!(rows[2]["binary"], "api");
    for row in rows {
        assert_eq!(row["runs"], 2, "{row}");
        assert!(row["size_bytes"].as_u64().is_some_and(|s| s > 0), "{row}");
    }
    // Each answered its fixture as it does in AWS: the api with an HTTP response (the
    // fixture's token is not trusted without API Gateway's authorizer context; GraphQL's
    // answers 200 with data), ingest and deliver with a partial batch response that has no
    // failures.
    assert!(
        rows[1]["sample_response"]
            .as_str()
            .is_some_and(|s| s.contains("statusCode")),
        "{}",
        rows[1]
    );
    assert!(
        rows[2]["sample_response"]
            .as_str()
            .is_some_and(|s| s.contains("\"statusCode\":200")),
        "{}",
        rows[2]
    );
    for row in &rows[3..] {
        assert!(
            row["sample_response"]
                .as_str()
                .is_some_and(|s| s.contains("\"batchItemFailures\":[]")),
            "{row}"
        );
    }
}

#[test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
fn cost_counts_every_aws_request_of_the_pipeline_and_prices_it() {
    let r = hookline(&["bench", "cost", "--webhooks", "3", "--events", "12"]);
    assert_eq!(r["deliveries"], 36, "{r:#}");
    let requests = |component: &str, action: &str| {
        r["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["component"] == component && a["action"] == action)
            .and_then(|a| a["requests"].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(requests("api", "SendMessage"), 12, "one per event: {r:#}");
    assert!(requests("ingest", "SendMessageBatch") >= 12, "{r:#}");
    assert!(requests("poller", "ReceiveMessage") > 0, "{r:#}");
    assert!(
        requests("deliver", "BatchWriteItem") >= 1,
        "attempts recorded in batches: {r:#}"
    );
    let write_units = |component: &str, action: &str| {
        r["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["component"] == component && a["action"] == action)
            .and_then(|a| a["write_units"].as_f64())
            .unwrap_or(0.0)
    };
    assert!(
        write_units("deliver", "BatchWriteItem") >= 36.0,
        "an attempt record per delivery: {r:#}"
    );
    // Events ride in their delivery messages and webhook documents are cached: fewer
    // reads than deliveries (one per webhook, plus what concurrent first reads and an
    // expiring copy add).
    assert!(
        requests("deliver", "GetItem") < 36,
        "deliver reads less than once per delivery: {r:#}"
    );
    // Routes come from the cache: a version read per batch, the App's items once.
    assert!(
        requests("ingest", "Query") <= 2,
        "the App's routes read once, not per event: {r:#}"
    );
    let functions = r["functions"].as_array().expect("functions");
    assert_eq!(functions[0]["invocations"], 12);
    assert!(
        r["usd_per_million"].as_f64().is_some_and(|x| x > 0.0),
        "{r:#}"
    );
    assert!(r["prices_as_of"]
        .as_str()
        .is_some_and(|p| p.starts_with("20")));
}

#[test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
fn cost_prices_an_sqs_destination_and_what_sts_and_the_integrators_queue_add() {
    let r = hookline(&[
        "bench",
        "cost",
        "--webhooks",
        "2",
        "--events",
        "6",
        "--sqs-destination",
    ]);
    assert_eq!(r["deliveries"], 12, "{r:#}");
    let d = &r["destination"];
    assert_eq!(
        d["sqs_per_delivery"], 1.0,
        "one SendMessage per delivery: {r:#}"
    );
    let sts = d["sts_per_delivery"].as_f64().expect("sts");
    assert!(
        sts > 0.0 && sts < 0.5,
        "the role assumed once, not per delivery: {r:#}"
    );
    let hookline_sqs = r["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["item"] == "SQS requests")
        .and_then(|l| l["per_delivery"].as_f64())
        .expect("SQS line");
    let own: u64 = r["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["service"] == "SQS" && a["component"] != "destination")
        .filter_map(|a| a["billed_requests"].as_u64())
        .sum();
    assert!(
        (hookline_sqs - own as f64 / 12.0).abs() < 1e-9,
        "Hookline's SQS line counts its own queues, not the integrator's: {r:#}"
    );
}

//! The Lambdas' metrics: each function binary, launched as Lambda launches it (the Runtime
//! API emulator of `hookline-bench`) on moto with an `infra/events` fixture, writes CloudWatch
//! Embedded Metric Format lines to stdout for what the invocation did. Each line is checked
//! against the EMF specification's required shape: `_aws.Timestamp` in ms, `CloudWatchMetrics`
//! directives with a namespace, dimension sets whose keys are root members holding strings,
//! and metric definitions whose values are root members holding a number or up to 100.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use hookline_core::telemetry::CATALOG;
use serde_json::Value;

/// Checks one EMF document; returns its metrics as `name{dim=value,...}` → values.
fn check_emf(line: &str) -> Result<Vec<(String, Vec<f64>)>, String> {
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let root = doc.as_object().ok_or("not an object")?;
    let aws = root["_aws"].as_object().ok_or("_aws is not an object")?;
    let ts = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("_aws.Timestamp is not a whole number")?;
    if ts < 1_600_000_000_000 {
        return Err(format!("_aws.Timestamp {ts} is not in milliseconds"));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("_aws.CloudWatchMetrics is not a non-empty array")?;
    let mut out = Vec::new();
    for d in directives {
        let namespace = d["Namespace"].as_str().unwrap_or_default();
        if namespace != hookline_core::adapters::emf::NAMESPACE {
            return Err(format!("namespace {namespace:?}"));
        }
        let sets = d["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        let mut dims = Vec::new();
        for set in sets {
            let keys = set.as_array().ok_or("a DimensionSet is not an array")?;
            if keys.len() > 30 {
                return Err("a DimensionSet has more than 30 keys".into());
            }
            for key in keys {
                let key = key.as_str().ok_or("a dimension key is not a string")?;
                let value = root
                    .get(key)
                    .and_then(Value::as_str)
                    .ok_or(format!("dimension {key} is not a root string member"))?;
                dims.push(format!("{key}={value}"));
            }
        }
        let metrics = d["Metrics"]
            .as_array()
            .filter(|m| !m.is_empty() && m.len() <= 100)
            .ok_or("Metrics is not an array of 1 to 100 definitions")?;
        for m in metrics {
            let name = m["Name"].as_str().ok_or("a metric has no Name")?;
            if name.is_empty() || name.len() > 1024 {
                return Err(format!("metric name {name:?}"));
            }
            if let Some(unit) = m.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is not a string")?;
                if !["Seconds", "Count", "None", "Milliseconds", "Bytes"].contains(&unit) {
                    return Err(format!("{name}: unit {unit}"));
                }
            }
            let values = match &root.get(name) {
                Some(Value::Number(n)) => vec![n.as_f64().ok_or("not a number")?],
                Some(Value::Array(a)) if !a.is_empty() && a.len() <= 100 => a
                    .iter()
                    .map(|v| v.as_f64().ok_or(format!("{name}: a value is not a number")))
                    .collect::<Result<_, _>>()?,
                _ => return Err(format!("{name} has no root value")),
            };
            out.push((format!("{name}{{{}}}", dims.join(",")), values));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and the Lambda binaries: ./tests/run.sh builds and starts both and runs this with --include-ignored"]
async fn each_lambda_writes_its_metrics_as_valid_emf_lines() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug");
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events");
    let env = hookline_bench::coldstart::lambda_env()
        .await
        .expect("moto resources");
    // What each fixture's invocation must have counted (and how much).
    let cases = [
        (
            "api",
            "api-publish-event.json",
            "hookline_events_published_total{outcome=accepted}",
            1.0,
        ),
        // The batch's garbage record goes to the events DLQ.
        (
            "ingest",
            "sqs-ingest-batch.json",
            "hookline_events_published_total{outcome=rejected}",
            1.0,
        ),
        // No such webhook on a fresh table: each delivery is skipped.
        (
            "deliver",
            "sqs-deliver-batch.json",
            "hookline_delivery_attempts_total{outcome=skipped}",
            1.0,
        ),
    ];
    for (binary, fixture, expected, at_least) in cases {
        let path = bin.join(binary);
        assert!(
            path.exists(),
            "{} is missing: cargo build --workspace --bins",
            path.display()
        );
        let event = Bytes::from(std::fs::read(events.join(fixture)).expect("fixture"));
        let (response, stdout) = hookline_bench::coldstart::invoke_once(&path, event, &env)
            .await
            .unwrap_or_else(|e| panic!("{binary} <- {fixture}: {e}"));
        let mut seen: BTreeMap<String, f64> = BTreeMap::new();
        let mut documents = 0;
        for line in stdout.lines().filter(|l| l.contains("\"_aws\"")) {
            documents += 1;
            let metrics = check_emf(line)
                .unwrap_or_else(|e| panic!("{binary}: not an EMF document ({e}): {line}"));
            for (key, values) in metrics {
                let name = key.split('{').next().unwrap_or_default();
                assert!(
                    CATALOG.iter().any(|m| m.name == name),
                    "{binary} wrote {name}, which is not in the vocabulary"
                );
                *seen.entry(key).or_default() += values.iter().sum::<f64>();
            }
        }
        assert!(
            documents > 0,
            "{binary} <- {fixture} wrote no EMF line (response {response}); stdout:\n{stdout}"
        );
        assert!(
            seen.get(expected).is_some_and(|v| *v >= at_least),
            "{binary} <- {fixture}: {expected} missing or below {at_least} in {seen:?}"
        );
    }
}

#[test]
fn the_shape_check_refuses_what_the_specification_refuses() {
    let good = r#"{"_aws":{"Timestamp":1800000000000,"CloudWatchMetrics":[{"Namespace":"Hookline","Dimensions":[["outcome"]],"Metrics":[{"Name":"hookline_delivery_attempts_total"}]}]},"outcome":"delivered","hookline_delivery_attempts_total":3}"#;
    assert_eq!(
        check_emf(good).expect("valid"),
        vec![(
            "hookline_delivery_attempts_total{outcome=delivered}".to_owned(),
            vec![3.0]
        )]
    );
    for bad in [
        good.replace("1800000000000", "1800000000"),
        good.replace(r#","outcome":"delivered""#, ""),
        good.replace(r#","hookline_delivery_attempts_total":3"#, ""),
        good.replace(r#""Namespace":"Hookline","#, ""),
        good.replace(
            r#""CloudWatchMetrics":[{"#,
            r#""CloudWatchMetrics":[],"x":[{"#,
        ),
    ] {
        assert!(check_emf(&bad).is_err(), "{bad}");
    }
}

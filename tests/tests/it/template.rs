//! `template.yaml` against the code: every environment variable a function reads is set for
//! it, every parameter is used, the queues' redrive matches the retry policy, visibility
//! timeouts respect AWS's 6 x function timeout rule, the binaries exist, and API Gateway
//! routes every documented operation (and GraphQL) to the api behind the right authorizer.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is YAML (long-form intrinsics, no ! tags)")
}

/// `"HOOKLINE_..."` string literals in a source file.
fn env_vars_read(source: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(source)).expect("source");
    text.split("\"HOOKLINE_")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .map(|name| format!("HOOKLINE_{name}"))
        .collect()
}

fn env_vars_set(t: &Value, function: &str) -> BTreeSet<String> {
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    let own = &t["Resources"][function]["Properties"]["Environment"]["Variables"];
    [globals, own]
        .into_iter()
        .filter_map(Value::as_mapping)
        .flat_map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned))
        .collect()
}

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some("Ref"), Value::String(name)) => {
                        out.insert(name.clone());
                    }
                    (Some("Fn::Sub"), Value::String(s)) => {
                        out.extend(
                            s.split("${")
                                .skip(1)
                                .filter_map(|r| r.split('}').next())
                                .map(str::to_owned),
                        );
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[test]
fn every_environment_variable_a_function_reads_is_set() {
    let t = template();
    let functions = [
        // Every function reads its table and queues with AwsResources::from_env (adapters/aws),
        // and its TLS roots follow adapters/tls.rs.
        (
            "ApiFunction",
            &[
                "functions/api/src/main.rs",
                "functions/api/src/settings.rs",
                "shared/src/target.rs",
                "shared/src/adapters/aws/mod.rs",
                "shared/src/adapters/tls.rs",
            ][..],
        ),
        (
            "IngestFunction",
            &[
                "functions/ingest/src/main.rs",
                "shared/src/adapters/aws/mod.rs",
                "shared/src/adapters/tls.rs",
            ][..],
        ),
        (
            "DeliverFunction",
            // DeliverSettings::from_env and DisablePolicy::from_env read the delivery settings.
            &[
                "functions/deliver/src/main.rs",
                "functions/deliver/src/lib.rs",
                "shared/src/webhook/state.rs",
                "shared/src/target.rs",
                "shared/src/adapters/aws/mod.rs",
                "shared/src/adapters/tls.rs",
            ][..],
        ),
    ];
    for (function, sources) in functions {
        let read: BTreeSet<String> = sources.iter().flat_map(|s| env_vars_read(s)).collect();
        assert!(
            read.contains("HOOKLINE_TABLE"),
            "{function}: scanning found {read:?}"
        );
        let set = env_vars_set(&t, function);
        let missing: Vec<_> = read.difference(&set).collect();
        assert!(
            missing.is_empty(),
            "{function} reads {missing:?} but the template does not set them"
        );
    }
}

#[test]
fn every_parameter_is_used() {
    let t = template();
    let mut used = BTreeSet::new();
    for section in ["Globals", "Resources", "Outputs"] {
        refs(&t[section], &mut used);
    }
    let params = t["Parameters"].as_mapping().expect("parameters");
    for name in params.keys().filter_map(Value::as_str) {
        assert!(used.contains(name), "parameter {name} is never used");
    }
}

#[test]
fn queues_follow_the_retry_policy_and_the_visibility_rule() {
    let t = template();
    let default_receives = t["Parameters"]["MaxReceiveCount"]["Default"]
        .as_u64()
        .expect("default");
    assert_eq!(
        default_receives,
        u64::from(hookline_core::retry::RetryPolicy::default().max_receive_count())
    );
    let backstop = t["Parameters"]["DeliveriesBackstopReceiveCount"]["Default"]
        .as_u64()
        .expect("default");
    assert_eq!(
        backstop,
        u64::from(hookline_core::rules::backstop_receive_count(
            &hookline_core::retry::RetryPolicy::default()
        )),
        "the deliveries queues' redrive stays above any webhook's attempts"
    );
    for (queue, dlq, function, receives, source) in [
        (
            "EventsQueue",
            "EventsDeadLetterQueue",
            "IngestFunction",
            "MaxReceiveCount",
            "Events",
        ),
        (
            "DeliveriesQueue",
            "DeliveriesDeadLetterQueue",
            "DeliverFunction",
            "DeliveriesBackstopReceiveCount",
            "Deliveries",
        ),
        (
            "OrderedDeliveriesQueue",
            "OrderedDeliveriesDeadLetterQueue",
            "DeliverFunction",
            "DeliveriesBackstopReceiveCount",
            "OrderedDeliveries",
        ),
    ] {
        let props = &t["Resources"][queue]["Properties"];
        assert_eq!(props["RedrivePolicy"]["maxReceiveCount"]["Ref"], receives);
        assert_eq!(
            props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0],
            dlq
        );
        let visibility = props["VisibilityTimeout"].as_u64().expect("visibility");
        let timeout = t["Resources"][function]["Properties"]["Timeout"]
            .as_u64()
            .expect("timeout");
        assert!(
            visibility >= 6 * timeout,
            "{queue}: visibility {visibility} < 6 x {function}'s {timeout} s"
        );
        let source = &t["Resources"][function]["Properties"]["Events"][source];
        assert_eq!(
            source["Properties"]["FunctionResponseTypes"][0],
            "ReportBatchItemFailures"
        );
        assert_eq!(source["Properties"]["Queue"]["Fn::GetAtt"][0], queue);
    }
    let dlq_retention = t["Resources"]["DeliveriesDeadLetterQueue"]["Properties"]
        ["MessageRetentionPeriod"]
        .as_u64();
    assert_eq!(dlq_retention, Some(1_209_600));
    for fifo in ["OrderedDeliveriesQueue", "OrderedDeliveriesDeadLetterQueue"] {
        assert_eq!(
            t["Resources"][fifo]["Properties"]["FifoQueue"].as_bool(),
            Some(true),
            "{fifo} is FIFO (ordered delivery needs MessageGroupId)"
        );
    }
}

#[test]
fn functions_build_the_workspace_binaries_for_arm64() {
    let t = template();
    assert_eq!(t["Globals"]["Function"]["Runtime"], "provided.al2023");
    assert_eq!(t["Globals"]["Function"]["Architectures"][0], "arm64");
    for (function, crate_dir) in [
        ("ApiFunction", "functions/api"),
        ("IngestFunction", "functions/ingest"),
        ("DeliverFunction", "functions/deliver"),
    ] {
        let metadata = &t["Resources"][function]["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda");
        let binary = metadata["BuildProperties"]["Binary"]
            .as_str()
            .expect("binary");
        let manifest =
            std::fs::read_to_string(root().join(crate_dir).join("Cargo.toml")).expect("manifest");
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "{crate_dir} has no bin {binary}"
        );
    }
}

#[test]
fn no_policy_grants_wildcard_actions_or_resources() {
    let t = template();
    let resources = t["Resources"].as_mapping().expect("resources");
    for (name, resource) in resources {
        let Some(policies) = resource["Properties"]["Policies"].as_sequence() else {
            continue;
        };
        for statement in policies
            .iter()
            .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
        {
            let text = serde_yaml::to_string(&statement).expect("yaml");
            assert!(
                !text.contains("'*'") && !text.contains(":*\n"),
                "{name:?} grants a wildcard: {text}"
            );
        }
    }
}

#[test]
fn the_cost_benchmark_prices_the_template_memory_sizes_and_batch_sizes() {
    use hookline_bench::cost::{
        API_MEMORY_MB, DELIVER_MEMORY_MB, INGEST_MEMORY_MB, SQS_BATCH_SIZE,
    };
    let t = template();
    for (function, memory) in [
        ("ApiFunction", API_MEMORY_MB),
        ("IngestFunction", INGEST_MEMORY_MB),
        ("DeliverFunction", DELIVER_MEMORY_MB),
    ] {
        assert_eq!(
            t["Resources"][function]["Properties"]["MemorySize"].as_u64(),
            Some(u64::from(memory)),
            "{function}: hookline_bench::cost prices another memory size"
        );
    }
    for parameter in ["IngestBatchSize", "DeliverBatchSize"] {
        assert_eq!(
            t["Parameters"][parameter]["Default"].as_i64(),
            Some(i64::from(SQS_BATCH_SIZE)),
            "{parameter}"
        );
    }
}

/// API Gateway routes every documented operation (and GraphQL at the root, as the platform's
/// public example posts there) to the api function, behind the JWT authorizer unless the
/// document marks it public: the most specific route wins, as in API Gateway.
#[test]
fn api_gateway_routes_every_documented_operation_to_the_api() {
    let t = template();
    let events = t["Resources"]["ApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("ApiFunction has events");
    // (path, method, public)
    let routes: Vec<(String, String, bool)> = events
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Path"].as_str().expect("Path").to_owned(),
                p["Method"].as_str().expect("Method").to_ascii_uppercase(),
                p["Auth"]["Authorizer"] == "NONE",
            )
        })
        .collect();
    let route_of = |path: &str, method: &str| {
        let methods = |r: &&(String, String, bool)| r.1 == method || r.1 == "ANY";
        routes
            .iter()
            .filter(methods)
            .find(|r| r.0 == path)
            .or_else(|| {
                routes.iter().filter(methods).find(|r| {
                    r.0.strip_suffix("{proxy+}")
                        .is_some_and(|prefix| path.starts_with(prefix))
                })
            })
            .unwrap_or_else(|| panic!("{method} {path} is not routed to the api function"))
    };
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("functions/api/openapi.json")).expect("openapi"),
    )
    .expect("JSON");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let public = op["security"] == serde_json::json!([{}]);
            let route = route_of(path, &method.to_ascii_uppercase());
            assert_eq!(
                route.2, public,
                "{method} {path}: the authorizer must be off exactly where the document says public"
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked} operations");
    let root_route = route_of("/", "POST");
    assert_eq!(root_route.0, "/", "POST / is GraphQL, routed as itself");
    assert!(!root_route.2, "behind the authorizer");
    // The console's page and files are public (its API calls carry the user's token).
    let root_page = route_of("/", "GET");
    assert!(
        root_page.0 == "/" && root_page.2,
        "GET / (to the console) is public"
    );
    for path in ["/console", "/console/console.js", "/console/console.css"] {
        let route = route_of(path, "GET");
        assert!(
            route.0.starts_with("/console"),
            "{path} goes to {}",
            route.0
        );
        assert!(route.2, "GET {path} needs no token");
    }
}

/// The dashboard is JSON once CloudFormation substitutes it, and it and the failure-rate
/// alarm only chart metrics the functions write (`telemetry::CATALOG`) or SQS's own.
#[test]
fn the_dashboard_and_the_failure_rate_alarm_read_metrics_that_exist() {
    use hookline_core::telemetry::{CATALOG, DELIVERY_ATTEMPTS};
    let t = template();
    let resources = &t["Resources"];
    let body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
        .as_str()
        .expect("the dashboard body is a Fn::Sub string");
    // Every `${Name}` (queue names, the region) becomes a plain word.
    let mut substituted = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("a closed ${...}") + start;
        substituted.push_str(&rest[..start]);
        substituted.push('x');
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    let dashboard: serde_json::Value =
        serde_json::from_str(&substituted).expect("the dashboard is JSON");
    let widgets = dashboard["widgets"].as_array().expect("widgets");
    assert!(
        widgets.len() >= 5,
        "throughput, success rate, latency, queues, DLQs"
    );
    let mut charted = 0;
    for widget in widgets {
        for metric in widget["properties"]["metrics"].as_array().expect("metrics") {
            let (Some(namespace), Some(name)) = (metric[0].as_str(), metric[1].as_str()) else {
                continue; // an expression
            };
            charted += 1;
            match namespace {
                "Hookline" => assert!(
                    CATALOG.iter().any(|m| m.name == name && !m.serve_only),
                    "the dashboard charts {name}, which no function writes"
                ),
                "AWS/SQS" => {}
                other => panic!("unexpected namespace {other}"),
            }
        }
    }
    assert!(charted >= 20, "{charted} metrics charted");
    let alarm = &resources["DeliveryFailureRateAlarm"]["Properties"];
    let metrics = alarm["Metrics"].as_sequence().expect("metric math");
    let outcomes: Vec<&str> = metrics
        .iter()
        .map(|m| &m["MetricStat"]["Metric"])
        .filter(|m| !m.is_null())
        .map(|m| {
            assert_eq!(m["Namespace"].as_str(), Some("Hookline"));
            assert_eq!(m["MetricName"].as_str(), Some(DELIVERY_ATTEMPTS));
            m["Dimensions"][0]["Value"].as_str().expect("outcome")
        })
        .collect();
    let attempts = CATALOG
        .iter()
        .find(|m| m.name == DELIVERY_ATTEMPTS)
        .expect("listed");
    for outcome in &outcomes {
        assert!(attempts.values.contains(outcome), "{outcome}");
    }
    assert_eq!(outcomes.len(), 5, "delivered and every failing outcome");
}

//! Every `HOOKLINE_*` setting parses the same way in every binary: the `api`, `ingest` and
//! `deliver` Lambdas read their environment with the core's one reader, `hookline serve`
//! takes the same words as flags (and as the same variables, through clap), so a value that
//! works for one works for all, and a value one refuses, all refuse.

use clap::Parser as _;
use hookline::cli::{Cli, Command, ServeArgs};
use hookline_api::settings::Settings;
use hookline_core::config::Env;
use hookline_core::target::EgressProxy;
use hookline_deliver::{target_policy, DeliverSettings};
use hookline_ingest::IngestSettings;

fn serve_args(args: &[&str]) -> Result<ServeArgs, String> {
    let mut argv = vec!["hookline", "serve"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv)
        .map_err(|e| e.to_string())?
        .command
    {
        Command::Serve(args) => Ok(args),
        _ => Err("not serve".into()),
    }
}

#[test]
fn every_flag_parses_the_same_way_in_every_binary() {
    let words = [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("false", false),
        ("0", false),
        ("no", false),
        ("Off", false),
    ];
    for (word, expected) in words {
        let env = Env::from_pairs([
            ("HOOKLINE_ALLOW_PRIVATE_TARGETS", word),
            ("HOOKLINE_ALLOW_HTTP", word),
            ("HOOKLINE_ONE_URL_PER_EVENT", word),
            ("HOOKLINE_METRICS_APP_LABEL", word),
        ]);
        let ingest = IngestSettings::from_env(&env).expect("ingest");
        let api = Settings::from_env(&env, false).expect("api");
        let deliver = target_policy(&env).expect("deliver");
        let serve = serve_args(&[
            "--allow-private-targets",
            word,
            "--allow-http",
            word,
            "--one-url-per-event",
            word,
            "--metrics-app-label",
            word,
        ])
        .expect("serve");
        assert_eq!(
            (
                api.metrics_app_label,
                ingest.metrics_app_label,
                serve.settings.metrics_app_label
            ),
            (expected, expected, expected),
            "HOOKLINE_METRICS_APP_LABEL={word}"
        );
        assert_eq!(
            (
                api.targets.allow_private,
                deliver.allow_private,
                serve.settings.allow_private_targets
            ),
            (expected, expected, expected),
            "HOOKLINE_ALLOW_PRIVATE_TARGETS={word}"
        );
        assert_eq!(
            (api.allow_http, serve.settings.allow_http),
            (expected, expected),
            "HOOKLINE_ALLOW_HTTP={word}"
        );
        assert_eq!(
            (api.one_url_per_event, serve.settings.one_url_per_event),
            (expected, expected),
            "HOOKLINE_ONE_URL_PER_EVENT={word}"
        );
    }
    let env = Env::from_pairs([("HOOKLINE_ALLOW_PRIVATE_TARGETS", "maybe")]);
    let api = Settings::from_env(&env, false).expect_err("api refuses maybe");
    let deliver = target_policy(&env).expect_err("deliver refuses maybe");
    assert_eq!(
        (api.name, deliver.name),
        (
            "HOOKLINE_ALLOW_PRIVATE_TARGETS",
            "HOOKLINE_ALLOW_PRIVATE_TARGETS"
        )
    );
    assert!(
        serve_args(&["--allow-private-targets", "maybe"]).is_err(),
        "serve refuses maybe"
    );
}

#[test]
fn durations_counts_and_namespaces_parse_the_same_way_in_every_binary() {
    let env = Env::from_pairs([
        ("HOOKLINE_SECRET_OVERLAP", "90m"),
        ("HOOKLINE_DISABLE_AFTER", "2d"),
        ("HOOKLINE_DISABLE_MIN_FAILURES", "4"),
        ("HOOKLINE_URN_NAMESPACE", "acme"),
    ]);
    let api = Settings::from_env(&env, false).expect("api");
    let deliver = DeliverSettings::from_env(&env).expect("deliver");
    let ingest = IngestSettings::from_env(&env).expect("ingest");
    let serve = serve_args(&[
        "--secret-overlap",
        "90m",
        "--disable-after",
        "2d",
        "--disable-min-failures",
        "4",
        "--urn-namespace",
        "acme",
    ])
    .expect("serve");
    assert_eq!(api.secret_overlap, serve.settings.secret_overlap);
    assert_eq!(api.secret_overlap, time::Duration::minutes(90));
    assert_eq!(deliver.disable, serve.delivery().disable);
    assert_eq!(deliver.disable.min_failures, 4);
    assert_eq!(
        (
            api.namespace.as_str(),
            ingest.namespace.as_str(),
            serve.settings.urn_namespace.as_str()
        ),
        ("acme", "acme", "acme")
    );
    for (name, bad) in [
        ("HOOKLINE_SECRET_OVERLAP", "soon"),
        ("HOOKLINE_DISABLE_AFTER", "soon"),
        ("HOOKLINE_DISABLE_MIN_FAILURES", "-1"),
        ("HOOKLINE_URN_NAMESPACE", "not a nid"),
    ] {
        let env = Env::from_pairs([(name, bad)]);
        let refused = Settings::from_env(&env, false).is_err()
            || DeliverSettings::from_env(&env).is_err()
            || IngestSettings::from_env(&env).is_err();
        assert!(refused, "{name}={bad} was taken by every Lambda");
        let flag = format!(
            "--{}",
            name.trim_start_matches("HOOKLINE_")
                .to_lowercase()
                .replace('_', "-")
        );
        assert!(
            serve_args(&[&flag, bad]).is_err(),
            "serve took {flag} {bad}"
        );
    }
}

/// `HOOKLINE_RETENTION` is one value for the api (windows), ingest (event TTL), deliver
/// (attempt TTL) and serve (all three and the sweeper), from 1 hour to 400 days.
#[test]
fn retention_is_read_alike_and_bounded() {
    let env = Env::from_pairs([("HOOKLINE_RETENTION", "36h")]);
    let api = Settings::from_env(&env, false).expect("api");
    let deliver = DeliverSettings::from_env(&env).expect("deliver");
    let ingest = IngestSettings::from_env(&env).expect("ingest");
    let serve = serve_args(&["--retention", "36h"]).expect("serve");
    let hours = |d: std::time::Duration| d.as_secs() / 3600;
    assert_eq!(
        (
            hours(api.retention.duration()),
            hours(deliver.retention.duration()),
            hours(ingest.retention.duration()),
            hours(serve.settings.settings().retention.duration())
        ),
        (36, 36, 36, 36)
    );
    let unset = Env::from_pairs([("HOOKLINE_URN_NAMESPACE", "allthings")]);
    assert_eq!(
        Settings::from_env(&unset, false)
            .expect("api")
            .retention
            .describe(),
        "30 days"
    );
    for bad in ["59m", "401d", "forever"] {
        let env = Env::from_pairs([("HOOKLINE_RETENTION", bad)]);
        for refused in [
            Settings::from_env(&env, false).map(|_| ()),
            DeliverSettings::from_env(&env).map(|_| ()),
            IngestSettings::from_env(&env).map(|_| ()),
        ] {
            let e = refused.expect_err("refused");
            assert_eq!(e.name, "HOOKLINE_RETENTION", "{e}");
        }
        assert!(
            serve_args(&["--retention", bad]).is_err(),
            "serve took {bad}"
        );
    }
}

#[test]
fn destinations_and_the_egress_proxy_are_read_alike_by_the_api_and_serve() {
    let env = Env::from_pairs([
        ("HOOKLINE_DESTINATION_PARTITIONS", "aws,aws-us-gov"),
        ("HOOKLINE_DESTINATION_REGIONS", "eu-west-1"),
        ("HOOKLINE_AWS_PRINCIPAL", "arn:aws:iam::123456789012:root"),
        ("HOOKLINE_EGRESS_PROXY", "http://proxy.internal:3128"),
    ]);
    let api = Settings::from_env(&env, false).expect("api");
    let serve = serve_args(&[
        "--destination-partitions",
        "aws,aws-us-gov",
        "--destination-regions",
        "eu-west-1",
        "--aws-principal",
        "arn:aws:iam::123456789012:root",
        "--egress-proxy",
        "http://proxy.internal:3128",
    ])
    .expect("serve")
    .settings
    .settings();
    assert_eq!(api.destinations, serve.destinations);
    assert_eq!(api.aws_principal, serve.aws_principal);
    assert_eq!(api.egress_proxy, serve.egress_proxy);
    assert!(api.egress_proxy.is_some());
    let proxy_env = Env::from_pairs([("HOOKLINE_EGRESS_PROXY", "https://proxy:3128")]);
    let refused = Settings::from_env(&proxy_env, false).expect_err("api refuses https");
    assert_eq!(refused.name, "HOOKLINE_EGRESS_PROXY");
    assert!(
        EgressProxy::from_env(&proxy_env).is_err(),
        "deliver refuses it alike"
    );
    assert!(serve_args(&["--egress-proxy", "https://proxy:3128"]).is_err());
    assert!(serve_args(&["--destination-regions", "EU West"]).is_err());
}

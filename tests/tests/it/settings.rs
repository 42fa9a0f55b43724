//! Every `HOOKLINE_*` setting parses the same way in every binary: the `api`, `ingest` and
//! `deliver` Lambdas read their environment with the core's one reader, `hookline serve`
//! takes the same words as flags (and as the same variables, through clap), so a value that
//! works for one works for all, and a value one refuses, all refuse.

use clap::Parser as _;
use hookline::cli::{Cli, Command, ServeArgs};
use hookline_api::settings::Settings;
use hookline_core::config::Env;
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

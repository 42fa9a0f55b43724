//! Property-based fuzzing (stable toolchain): the URN parser, the event envelope and webhook
//! validation never panic on any input, and what they accept survives parse → print → parse.

use std::collections::BTreeMap;

use hookline_core::event::{Event, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::target::TargetPolicy;
use hookline_core::urn::{Namespace, Urn, UrnPattern};
use hookline_core::webhook::{NewWebhook, WebhookPatch, WebhookRules};
use proptest::prelude::*;

fn rules() -> IntakeRules<'static> {
    static NS: std::sync::LazyLock<Namespace> = std::sync::LazyLock::new(Namespace::default);
    IntakeRules {
        namespace: &NS,
        catalog: Catalog::builtin(),
    }
}

fn webhook_rules() -> WebhookRules<'static> {
    static NS: std::sync::LazyLock<Namespace> = std::sync::LazyLock::new(Namespace::default);
    WebhookRules {
        namespace: &NS,
        catalog: Catalog::builtin(),
        allow_http: false,
        targets: TargetPolicy::PUBLIC_ONLY,
        ordered: true,
        destinations: None,
    }
}

/// Strings near the grammar: URN-ish prefixes with hostile tails.
fn urnish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(urn|URN|uRn):(allthings|other|):(app|App|)(:[A-Za-z0-9._~*%: -]{0,12}){0,20}",
        "urn:allthings:app:[A-Za-z0-9]{1,4}(:[A-Za-z0-9._~-]{1,8}){0,17}(:\\*)?",
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "ticket.created",
            "urn:allthings:app:A1:ticket:T1",
            "evt_1",
            "2025-11-24T16:00:00Z",
            "*"
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "type",
                    "urn",
                    "timestamp",
                    "data",
                    "extra",
                    "name",
                    "url"
                ])
                .prop_map(String::from),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn urn_parsing_never_panics_and_round_trips(input in urnish()) {
        if let Ok(urn) = Urn::parse_default(&input) {
            prop_assert_eq!(Urn::parse_default(&urn.to_string()).expect("reparse"), urn);
        }
        if let Ok(pattern) = UrnPattern::parse_default(&input) {
            prop_assert_eq!(UrnPattern::parse_default(&pattern.to_string()).expect("reparse"), pattern);
        }
    }

    #[test]
    fn the_envelope_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Event::from_intake(&body, rules(), time::OffsetDateTime::now_utc());
    }

    #[test]
    fn accepted_envelopes_round_trip_through_their_delivered_body(value in json_value()) {
        let body = serde_json::to_vec(&value).expect("serializes");
        if let Ok(event) = Event::from_intake(&body, rules(), time::OffsetDateTime::now_utc()) {
            let printed = String::from_utf8(event.delivery_body().expect("body")).expect("utf8");
            let again = Event::from_intake(printed.as_bytes(), rules(), time::OffsetDateTime::now_utc()).expect("reparse");
            prop_assert_eq!(again, event);
        }
    }

    #[test]
    fn structured_envelopes_never_panic(
        id in prop::option::of(any::<String>()),
        event_type in any::<String>(),
        urn in urnish(),
        timestamp in prop::option::of(any::<String>()),
    ) {
        let mut body = serde_json::json!({"type": event_type, "urn": urn, "data": {}});
        if let Some(id) = id { body["id"] = id.into(); }
        if let Some(ts) = timestamp { body["timestamp"] = ts.into(); }
        let _ = Event::from_intake(body.to_string().as_bytes(), rules(), time::OffsetDateTime::now_utc());
    }

    #[test]
    fn webhook_validation_never_panics_and_reports_fields(
        name in any::<String>(),
        url in prop_oneof![any::<String>(), "https?://[a-z0-9.:@\\[\\]%-]{0,40}/?[ -~]{0,20}"],
        event_types in prop::collection::vec(prop_oneof![any::<String>(), "[a-z.*-]{0,20}"], 0..4),
        urns in prop::option::of(prop::collection::vec(urnish(), 0..4)),
        headers in prop::option::of(prop::collection::btree_map(any::<String>(), any::<String>(), 0..7)),
    ) {
        let input = NewWebhook { name, url, event_types, urns, custom_headers: headers.clone(), enabled: None, secret: None, ..Default::default() };
        match input.validate(&webhook_rules(), Some("A1")) {
            Ok(spec) => {
                prop_assert!(!spec.urns.is_empty() && !spec.event_types.is_empty());
                // What was accepted is accepted again when written back as a patch.
                let patch = WebhookPatch {
                    name: Some(spec.name.clone()),
                    url: spec.endpoint.url().map(ToString::to_string),
                    event_types: Some(spec.event_types.iter().map(ToString::to_string).collect()),
                    urns: Some(spec.urns.iter().map(ToString::to_string).collect()),
                    custom_headers: Some(spec.custom_headers.iter().map(|h| (h.name.clone(), match &h.value { hookline_core::sealed::Protected::Plain(v) => v.clone(), hookline_core::sealed::Protected::Sealed(_) => unreachable!("validation gives plaintext") })).collect::<BTreeMap<_, _>>()),
                    enabled: None,
                    ..Default::default()
                };
                prop_assert_eq!(patch.apply(&spec, &webhook_rules()).expect("round trip"), spec);
            }
            Err(errors) => prop_assert!(!errors.errors().is_empty()),
        }
    }
}

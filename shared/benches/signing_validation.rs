//! Signing a 1 KiB delivery (one secret, and two during a rotation), verifying it as a
//! receiver does, validating a webhook body (valid, and failing on every field), and parsing
//! an intake envelope: the per-request CPU work of the api and deliver functions.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hookline_core::event::{Event, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::signing::{signature_header, verify, Secret};
use hookline_core::target::TargetPolicy;
use hookline_core::urn::Namespace;
use hookline_core::webhook::{NewWebhook, WebhookRules};

fn signing(c: &mut Criterion) {
    let body = vec![b'x'; 1024];
    let one = vec![Secret::generate().expect("secret")];
    let two = vec![
        Secret::generate().expect("secret"),
        Secret::generate().expect("secret"),
    ];
    let (id, ts) = ("evt_01JDK7Z3Q8W6V0N4B2C9D5E7F1", 1_732_000_000);
    c.bench_function("sign_1kib_one_secret", |b| {
        b.iter(|| signature_header(black_box(&one), id, ts, black_box(&body)))
    });
    c.bench_function("sign_1kib_two_secrets", |b| {
        b.iter(|| signature_header(black_box(&two), id, ts, black_box(&body)))
    });
    let header = signature_header(&one, id, ts, &body);
    c.bench_function("verify_1kib", |b| {
        b.iter(|| {
            verify(
                black_box(&one),
                id,
                ts,
                black_box(&body),
                black_box(&header),
                ts,
                300,
            )
        })
    });
}

fn validation(c: &mut Criterion) {
    let namespace = Namespace::default();
    let rules = WebhookRules {
        namespace: &namespace,
        catalog: Catalog::builtin(),
        allow_http: false,
        targets: TargetPolicy::PUBLIC_ONLY,
        ordered: true,
        destinations: None,
    };
    let valid = NewWebhook {
        name: "CRM sync".into(),
        url: "https://crm.example.com/hooks/allthings".into(),
        event_types: vec!["ticket.*".into(), "booking.cancelled".into()],
        urns: Some(vec![
            "urn:allthings:app:A1:ticket:CAT7:*".into(),
            "urn:allthings:app:A2:*".into(),
        ]),
        custom_headers: Some(BTreeMap::from([("X-Tenant".into(), "acme".into())])),
        enabled: None,
        secret: None,
        ..Default::default()
    };
    if let Err(e) = valid.validate(&rules, Some("A1")) {
        panic!("the valid webhook is refused: {e:?}");
    }
    c.bench_function("validate_webhook_valid", |b| {
        b.iter(|| black_box(&valid).validate(&rules, Some("A1")).is_ok())
    });
    let invalid = NewWebhook {
        name: String::new(),
        url: "http://10.0.0.1/hooks".into(),
        event_types: vec!["no.such-type".into()],
        urns: Some(vec!["urn:other:app:A1".into()]),
        custom_headers: Some(BTreeMap::from([("Authorization".into(), "x".into())])),
        enabled: None,
        secret: None,
        ..Default::default()
    };
    assert!(invalid.validate(&rules, Some("A1")).is_err());
    c.bench_function("validate_webhook_every_field_fails", |b| {
        b.iter(|| black_box(&invalid).validate(&rules, Some("A1")).is_err())
    });
    let intake = IntakeRules {
        namespace: &namespace,
        catalog: Catalog::builtin(),
    };
    let envelope = serde_json::to_vec(&serde_json::json!({
        "type": "ticket.created",
        "urn": "urn:allthings:app:A1:ticket:CAT7:T99",
        "data": {"title": "Leaking tap", "pad": "x".repeat(800)},
    }))
    .expect("json");
    let now = time::OffsetDateTime::now_utc();
    c.bench_function("parse_intake_envelope_1kib", |b| {
        b.iter(|| Event::from_intake(black_box(&envelope), intake, now).is_ok())
    });
}

criterion_group!(benches, signing, validation);
criterion_main!(benches);

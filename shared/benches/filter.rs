//! Payload filters: one pattern against a 1 KiB event (issue 18's goal: ≤ 2 µs), matching and
//! not; and a pattern's check on save.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hookline_core::event::{Event, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::filter::Filter;
use hookline_core::urn::Namespace;
use serde_json::json;
use time::OffsetDateTime;

/// A `ticket.created` of about 1 KiB: the fields a property-management ticket carries.
fn event(priority: &str) -> Event {
    let body = json!({
        "id": "evt_01KB0V9ZQ3A5X7C2M4N6P8R0T1",
        "type": "ticket.created",
        "urn": "urn:allthings:app:5f1a9c3e2b7d4a0012345678:ticket:CAT7:T99",
        "data": {
            "ticketId": "T99",
            "title": "Water leaking under the kitchen sink",
            "description": "The pipe below the sink drips steadily since this morning; a bucket is under it. Please send a plumber before noon if you can.",
            "priority": priority,
            "status": "open",
            "category": {"id": "CAT7", "name": "Plumbing", "parent": "Repairs"},
            "amount": 240.5,
            "currency": "EUR",
            "tags": ["kitchen", "water", "urgent-visit", "tenant-reported"],
            "unit": {"id": "U-1204", "floor": 3, "building": "B2", "address": "Hauptstrasse 12, 8001 Zürich"},
            "reporter": {"id": "user-77", "name": "Jana Muster", "email": "jana.muster@example.com", "phone": "+41 44 000 00 00"},
            "assignee": null,
            "createdAt": "2026-11-26T09:41:00Z",
            "channel": "app-ios",
            "locale": "de-CH",
            "building": {"manager": "Property Services AG", "hotline": "+41 44 111 22 33"},
            "attachments": [
                {"id": "att-1", "name": "sink.jpg", "size": 482113},
                {"id": "att-2", "name": "pipe.jpg", "size": 391870}
            ]
        }
    });
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    let bytes = body.to_string();
    assert!(
        (1000..1200).contains(&bytes.len()),
        "about 1 KiB: {}",
        bytes.len()
    );
    Event::from_intake(bytes.as_bytes(), rules, OffsetDateTime::now_utc()).expect("event")
}

fn pattern() -> serde_json::Value {
    json!({
        "type": [{"prefix": "ticket."}],
        "data": {
            "priority": ["high", "urgent"],
            "amount": [{"numeric": [">", 100, "<=", 10000]}],
            "category": {"name": [{"equals-ignore-case": "plumbing"}]},
            "tags": ["water"],
            "assignee": [null],
            "status": [{"anything-but": ["closed", "cancelled"]}]
        }
    })
}

fn bench(c: &mut Criterion) {
    let filter = Filter::parse(&pattern(), "filter").expect("valid pattern");
    let hit = event("urgent");
    let miss = event("low");
    assert!(filter.matches(&hit));
    assert!(!filter.matches(&miss));
    c.bench_function("filter: 6-field pattern, 1 KiB event, matching", |b| {
        b.iter(|| black_box(&filter).matches(black_box(&hit)))
    });
    c.bench_function("filter: 6-field pattern, 1 KiB event, not matching", |b| {
        b.iter(|| black_box(&filter).matches(black_box(&miss)))
    });
    let source = pattern();
    c.bench_function("filter: check a pattern on save", |b| {
        b.iter(|| Filter::parse(black_box(&source), "filter").is_ok())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

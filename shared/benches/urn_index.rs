//! `UrnIndex` with 100 000 patterns in one App: one match, and building the index.
//! Goal (issue 2): one match ≤ 50 µs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hookline_core::urn::{Urn, UrnIndex, UrnPattern};

/// 100 000 patterns of mixed depth in App `5f1a9c3e2b7d4a0012345678`, shaped like the seeds'
/// filters: whole App, resource families, ticket categories, single tickets and bookings.
fn patterns() -> Vec<(UrnPattern, u32)> {
    let app = "5f1a9c3e2b7d4a0012345678";
    let mut out = Vec::with_capacity(100_000);
    let mut id = 0u32;
    let mut push = |s: String, out: &mut Vec<(UrnPattern, u32)>| {
        out.push((UrnPattern::parse_default(&s).expect("valid pattern"), id));
        id += 1;
    };
    for _ in 0..100 {
        push(format!("urn:allthings:app:{app}:*"), &mut out);
    }
    for family in ["ticket", "booking", "registration-code", "user"] {
        for _ in 0..100 {
            push(format!("urn:allthings:app:{app}:{family}:*"), &mut out);
        }
    }
    for cat in 0..5_000 {
        push(
            format!("urn:allthings:app:{app}:ticket:CAT{cat}:*"),
            &mut out,
        );
    }
    let mut n = 0u64;
    while out.len() < 100_000 {
        n += 1;
        let pattern = match n % 4 {
            0 => format!("urn:allthings:app:{app}:ticket:CAT{}:T{n}", n % 5_000),
            1 => format!("urn:allthings:app:{app}:ticket:CAT{}:T{n}:*", n % 5_000),
            2 => format!("urn:allthings:app:{app}:booking:ASSET{}:B{n}", n % 700),
            _ => format!("urn:allthings:app:{app}:user:U{n}:*"),
        };
        push(pattern, &mut out);
    }
    out
}

fn bench(c: &mut Criterion) {
    let patterns = patterns();
    let index: UrnIndex<u32> = patterns.iter().cloned().collect();
    let urn = Urn::parse_default("urn:allthings:app:5f1a9c3e2b7d4a0012345678:ticket:CAT7:T5007")
        .expect("valid urn");
    let matched = index.matches(&urn).len();
    assert!(
        matched >= 200,
        "the benchmark URN should match the broad patterns, got {matched}"
    );
    c.bench_function("urn_index_match_100k_patterns", |b| {
        b.iter(|| black_box(index.matches(black_box(&urn))).len())
    });
    let miss = Urn::parse_default(
        "urn:allthings:app:5f1a9c3e2b7d4a0012345678:ticket:CAT7:T999999:comment:C1",
    )
    .expect("valid urn");
    c.bench_function("urn_index_match_deep_miss_100k_patterns", |b| {
        b.iter(|| black_box(index.matches(black_box(&miss))).len())
    });
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("urn_index_build_100k_patterns", |b| {
        b.iter(|| black_box(patterns.iter().cloned().collect::<UrnIndex<u32>>()).len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

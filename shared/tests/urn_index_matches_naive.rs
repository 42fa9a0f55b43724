//! `UrnIndex` returns exactly what checking every pattern one by one returns.

use std::collections::BTreeSet;

use hookline_core::urn::{Urn, UrnIndex, UrnPattern};
use proptest::prelude::*;

/// Small alphabets so random patterns and URNs overlap often.
fn app() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["A1", "A2", "A10"])
}
fn segments() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop::sample::select(vec!["ticket", "booking", "CAT7", "CAT70", "T99", "x"]),
        0..5,
    )
}

fn pattern() -> impl Strategy<Value = UrnPattern> {
    (app(), segments(), any::<bool>()).prop_map(|(app, segs, wildcard)| {
        let mut s = format!("urn:allthings:app:{app}");
        for seg in segs {
            s.push(':');
            s.push_str(seg);
        }
        if wildcard {
            s.push_str(":*");
        }
        UrnPattern::parse_default(&s).expect("generated pattern is valid")
    })
}

fn event_urn() -> impl Strategy<Value = Urn> {
    (app(), segments()).prop_map(|(app, segs)| {
        let mut s = format!("urn:allthings:app:{app}");
        for seg in segs {
            s.push(':');
            s.push_str(seg);
        }
        Urn::parse_default(&s).expect("generated URN is valid")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn index_equals_naive_matcher(
        patterns in prop::collection::vec((pattern(), 0u16..20), 0..30),
        urns in prop::collection::vec(event_urn(), 1..8),
    ) {
        let index: UrnIndex<u16> = patterns.iter().cloned().collect();
        for urn in &urns {
            let got: BTreeSet<u16> = index.matches(urn).into_iter().copied().collect();
            let got_len = index.matches(urn).len();
            let naive: BTreeSet<u16> = patterns.iter().filter(|(p, _)| p.matches(urn)).map(|(_, id)| *id).collect();
            prop_assert_eq!(&got, &naive, "urn {}", urn);
            prop_assert_eq!(got_len, naive.len(), "each id once");
        }
    }

    #[test]
    fn urn_parse_print_parse_round_trips(urn in event_urn()) {
        prop_assert_eq!(Urn::parse_default(&urn.to_string()).expect("reparse"), urn);
    }

    #[test]
    fn urn_parser_never_panics(input in "\\PC{0,64}|urn:allthings:app:[A-Za-z0-9:*% ._~-]{0,40}") {
        let _ = Urn::parse_default(&input);
        let _ = UrnPattern::parse_default(&input);
    }
}

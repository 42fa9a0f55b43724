//! Subscription rules on both paths (issue 18): payload filters (each operator; a
//! non-matching event is never sent; a malformed pattern is a 422 naming its path), a
//! webhook's own retry schedule observed by a scripted receiver, a rate limit never exceeded
//! while every delivery arrives, and ordered delivery kept while the receiver fails the first
//! attempt of every third event.
//!
//! Embedded: `hookline serve`'s composition with its workers. Moto: the three handlers with
//! pumps for the events queue, the deliveries queue and the FIFO deliveries queue, and the
//! DynamoDB rate limiter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::auth::Principal;
use hookline_deliver::DeliverSettings;
use hookline_tests::receiver::{Captured, Reply, TestReceiver};
use hookline_tests::stack::{
    call, create, delivered_ids, eventually, is_probe, principal, publish, Stack,
};
use serde_json::{json, Value};

async fn embedded(name: &str) -> Box<dyn Stack> {
    hookline_tests::stack::embedded(
        name,
        hookline_tests::local_settings(),
        DeliverSettings::default(),
    )
    .await
}

async fn moto(name: &str) -> Box<dyn Stack> {
    hookline_tests::stack::moto(name, DeliverSettings::default()).await
}

fn admin() -> Principal {
    principal("admin", "edit-app:A1 publish-events:A1")
}

/// The event POSTs `rx` got on `path` (probes left out), in arrival order.
fn posts_on(rx: &TestReceiver, path: &str) -> Vec<Captured> {
    rx.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path && !is_probe(r))
        .collect()
}

fn event_id(r: &Captured) -> String {
    r.header("webhook-id").unwrap_or_default().to_owned()
}

/// A webhook's attempt log, newest first.
async fn attempts(stack: &dyn Stack, who: &Principal, id: &str) -> Vec<Value> {
    let (status, page) = call(
        stack,
        who,
        "GET",
        &format!("/v1/webhooks/{id}/deliveries?limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn payload_filters(stack: &dyn Stack) {
    let who = admin();
    let rx = TestReceiver::always(200).await;
    // One webhook per operator; each wants e1 only, but `low`, which wants e2 only.
    let filters: BTreeMap<&str, Value> = BTreeMap::from([
        ("exact", json!({"data": {"priority": ["high"]}})),
        ("prefix", json!({"data": {"site": [{"prefix": "pro"}]}})),
        ("suffix", json!({"data": {"file": [{"suffix": ".pdf"}]}})),
        (
            "ignore-case",
            json!({"data": {"region": [{"equals-ignore-case": "eu-west"}]}}),
        ),
        (
            "anything-but",
            json!({"data": {"site": [{"anything-but": {"prefix": "test-"}}]}}),
        ),
        (
            "numeric",
            json!({"data": {"amount": [{"numeric": [">", 100, "<=", 150]}]}}),
        ),
        ("exists", json!({"data": {"note": [{"exists": false}]}})),
        ("any-of", json!({"data": {"tags": ["vip", "gold"]}})),
        (
            "envelope",
            json!({"type": ["ticket.created"], "urn": [{"prefix": "urn:allthings:app:A1:ticket:CAT7:"}]}),
        ),
        ("low", json!({"data": {"priority": ["low", "urgent"]}})),
    ]);
    let mut ids = BTreeMap::new();
    for (name, filter) in &filters {
        let id = create(stack, &who, json!({"name": name, "url": format!("{}/{name}", rx.url), "eventTypes": ["ticket.*"], "urns": ["urn:allthings:app:A1:*"], "filter": filter})).await;
        ids.insert(*name, id);
    }
    let (_, shown) = call(
        stack,
        &who,
        "GET",
        &format!("/v1/webhooks/{}", ids["numeric"]),
        None,
    )
    .await;
    assert_eq!(
        shown["filter"], filters["numeric"],
        "the API shows the pattern as given"
    );

    let (status, e1) = call(stack, &who, "POST", "/v1/events", Some(json!({"id": "f1", "type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T1", "data": {"priority": "high", "amount": 150, "file": "a.pdf", "site": "prod", "region": "EU-West", "tags": ["x", "vip"]}}))).await;
    assert_eq!(status, 202, "{e1}");
    let (status, e2) = call(stack, &who, "POST", "/v1/events", Some(json!({"id": "f2", "type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT8:T2", "data": {"priority": "low", "amount": 101.5, "file": "a.txt", "site": "test-1", "region": "us", "tags": ["x"], "note": "n"}}))).await;
    assert_eq!(status, 202, "{e2}");
    // e2 matches `numeric` too (101.5 is in (100, 150]).
    let want = |name: &str| -> Vec<&str> {
        match name {
            "low" => vec!["f2"],
            "numeric" => vec!["f1", "f2"],
            _ => vec!["f1"],
        }
    };
    for name in filters.keys() {
        let path = format!("/{name}");
        eventually(&format!("{name} receiving {:?}", want(name)), || async {
            (posts_on(&rx, &path).len() >= want(name).len()).then_some(())
        })
        .await;
    }
    // Everything was fanned out with the events above; give a wrong delivery time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in filters.keys() {
        let mut got: Vec<String> = posts_on(&rx, &format!("/{name}"))
            .iter()
            .map(event_id)
            .collect();
        got.sort();
        assert_eq!(
            got,
            want(name),
            "{name} got exactly the events its filter matches"
        );
        let log = attempts(stack, &who, &ids[name]).await;
        assert_eq!(
            log.len(),
            want(name).len(),
            "{name}: nothing else was attempted: {log:?}"
        );
    }

    // A malformed pattern: 422 naming the path of the bad part; nothing created.
    let (status, problem) = call(stack, &who, "POST", "/v1/webhooks", Some(json!({"name": "bad", "url": format!("{}/bad", rx.url), "eventTypes": ["*"], "urns": ["urn:allthings:app:A1:*"], "filter": {"data": {"amount": [{"numeric": [">", "x"]}], "level": "high"}}}))).await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["filter.data.amount[0].numeric", "filter.data.level"]
    );
    // PATCH replaces the filter; null removes it.
    let id = &ids["exact"];
    let (status, w) = call(
        stack,
        &who,
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({"filter": null})),
    )
    .await;
    assert_eq!(status, 200, "{w}");
    assert!(w.get("filter").is_none(), "{w}");
}

async fn retry_schedule(stack: &dyn Stack) {
    let who = admin();
    let rx = TestReceiver::start(|r, _| {
        if r.method == "HEAD" || is_probe(r) {
            Reply::status(200)
        } else {
            Reply::status(503)
        }
    })
    .await;
    let (status, w) = call(stack, &who, "POST", "/v1/webhooks", Some(json!({"name": "own schedule", "url": format!("{}/r", rx.url), "eventTypes": ["ticket.*"], "urns": ["urn:allthings:app:A1:*"], "retry": {"schedule": ["1s", "2s", "4s"]}}))).await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(
        w["retry"],
        json!({"schedule": ["1s", "2s", "4s"], "maxAttempts": 4})
    );
    let id = w["id"].as_str().expect("id").to_owned();
    publish(
        stack,
        &who,
        "r1",
        "ticket.created",
        "urn:allthings:app:A1:ticket:C:T",
    )
    .await;
    let log = eventually("the delivery exhausted after 4 attempts", || async {
        let log = attempts(stack, &who, &id).await;
        log.first()
            .is_some_and(|a| a["status"] == "exhausted")
            .then_some(log)
    })
    .await;
    let statuses: Vec<&str> = log
        .iter()
        .rev()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(statuses, ["retrying", "retrying", "retrying", "exhausted"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tries = posts_on(&rx, "/r");
    assert_eq!(tries.len(), 4, "4 attempts in all, none after");
    // The webhook's steps, not the deployment's 30 s / 2 min / 8 min: each gap is its step
    // ±20% jitter, plus polling (SQS hides in whole seconds).
    for (i, step) in [1.0_f64, 2.0, 4.0].into_iter().enumerate() {
        let gap = tries[i + 1].at.duration_since(tries[i].at).as_secs_f64();
        assert!(
            gap >= step * 0.8 - 0.05 && gap <= step * 1.2 + 2.0,
            "gap {} was {gap:.2} s, the step is {step} s",
            i + 1
        );
    }
}

async fn rate_limit(stack: &dyn Stack) {
    const PER_SECOND: usize = 5;
    const EVENTS: usize = 20;
    let who = admin();
    let rx = TestReceiver::always(200).await;
    let id = create(stack, &who, json!({"name": "limited", "url": format!("{}/l", rx.url), "eventTypes": ["ticket.*"], "urns": ["urn:allthings:app:A1:*"], "rateLimit": {"perSecond": PER_SECOND}})).await;
    for i in 0..EVENTS {
        publish(
            stack,
            &who,
            &format!("l{i}"),
            "ticket.created",
            "urn:allthings:app:A1:ticket:C:T",
        )
        .await;
    }
    eventually("every rate-limited delivery arriving", || async {
        (posts_on(&rx, "/l").len() >= EVENTS).then_some(())
    })
    .await;
    let got = posts_on(&rx, "/l");
    let mut ids: Vec<String> = got.iter().map(event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), EVENTS, "each delivery arrived, once");
    // Slots are 1/N s apart, so any window of 1 s holds at most N starts, plus one whose
    // arrival was a little late (the documented burst).
    let times: Vec<Instant> = got.iter().map(|r| r.at).collect();
    for (i, start) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        assert!(
            within <= PER_SECOND + 1,
            "{within} deliveries within 1 s of delivery {i}"
        );
    }
    let span = times[EVENTS - 1].duration_since(times[0]);
    assert!(
        span >= Duration::from_secs(3),
        "20 deliveries at 5/s took only {span:?}"
    );
    // The waits show in the attempt log.
    let log = attempts(stack, &who, &id).await;
    assert!(
        log.iter()
            .any(|a| a["status"] == "delayed" && a["nextRetryAt"].is_string()),
        "some deliveries waited for a later slot: {log:?}"
    );
}

/// The URN of an event a request carried.
fn urn_of(r: &Captured) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|b| b["urn"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Publishes 9 events, each once the previous one's first attempt arrived (so the next is
/// queued while a failed one waits for its retry); odd ones about ticket T1, even ones about
/// T2. Per ordering group (the webhook, or the webhook and URN), the attempts must arrive
/// in publishing order, a failed first attempt followed by its retry before the next event.
async fn ordering(stack: &dyn Stack, ordering: &str) {
    const EVENTS: usize = 9;
    let who = admin();
    let prefix = if ordering == "per-urn" { "ou" } else { "ow" };
    // Every third event's first attempt fails; its retry succeeds.
    let seen: Arc<std::sync::Mutex<BTreeMap<String, usize>>> = Arc::default();
    let tries = seen.clone();
    let rx = TestReceiver::start(move |r, _| {
        if r.method == "HEAD" || is_probe(r) {
            return Reply::status(200);
        }
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        let n: usize = id
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .parse()
            .unwrap_or(0);
        let mut seen = tries.lock().expect("lock");
        let count = seen.entry(id).or_default();
        *count += 1;
        Reply::status(if n.is_multiple_of(3) && *count == 1 {
            500
        } else {
            200
        })
    })
    .await;
    let path = format!("/{ordering}");
    create(stack, &who, json!({"name": "ordered", "url": format!("{}{path}", rx.url), "eventTypes": ["ticket.*"], "urns": ["urn:allthings:app:A1:*"], "ordering": ordering, "retry": {"schedule": ["1s"], "maxAttempts": 5}})).await;
    let urn = |i: usize| format!("urn:allthings:app:A1:ticket:C:T{}", 2 - i % 2);
    for i in 1..=EVENTS {
        let id = format!("{prefix}{i}");
        publish(stack, &who, &id, "ticket.created", &urn(i)).await;
        eventually(&format!("the first attempt of {id}"), || async {
            posts_on(&rx, &path)
                .iter()
                .any(|r| event_id(r) == id)
                .then_some(())
        })
        .await;
    }
    eventually("every ordered delivery acknowledged", || async {
        (delivered_ids(&rx).len() >= EVENTS + EVENTS / 3).then_some(())
    })
    .await;
    let got = posts_on(&rx, &path);
    let groups: Vec<String> = if ordering == "per-urn" {
        vec![urn(1), urn(2)]
    } else {
        vec![String::new()]
    };
    for group in groups {
        let in_group = |u: &str| group.is_empty() || u == group;
        let got: Vec<String> = got
            .iter()
            .filter(|r| in_group(&urn_of(r)))
            .map(event_id)
            .collect();
        let want: Vec<String> = (1..=EVENTS)
            .filter(|i| in_group(&urn(*i)))
            .flat_map(|i| {
                let id = format!("{prefix}{i}");
                // A failed first attempt is followed by its retry before anything else.
                if i.is_multiple_of(3) {
                    vec![id.clone(), id]
                } else {
                    vec![id]
                }
            })
            .collect();
        assert_eq!(
            got, want,
            "{ordering} {group}: each event after the previous one was acknowledged"
        );
    }
}

#[tokio::test]
async fn payload_filters_embedded() {
    let stack = embedded("rules-filters").await;
    payload_filters(stack.as_ref()).await;
    stack.stop().await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn payload_filters_on_moto() {
    let stack = moto("rules-filters").await;
    payload_filters(stack.as_ref()).await;
    stack.stop().await;
}

#[tokio::test]
async fn a_webhooks_own_retry_schedule_embedded() {
    let stack = embedded("rules-retry").await;
    retry_schedule(stack.as_ref()).await;
    stack.stop().await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn a_webhooks_own_retry_schedule_on_moto() {
    let stack = moto("rules-retry").await;
    retry_schedule(stack.as_ref()).await;
    stack.stop().await;
}

// Two worker threads: the receiver's timestamps do not wait behind the deliverer's work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_kept_and_nothing_is_dropped_embedded() {
    let stack = embedded("rules-rate").await;
    rate_limit(stack.as_ref()).await;
    stack.stop().await;
}

// Two worker threads: the receiver's timestamps do not wait behind the deliverer's work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn a_rate_limit_is_kept_and_nothing_is_dropped_on_moto() {
    let stack = moto("rules-rate").await;
    rate_limit(stack.as_ref()).await;
    stack.stop().await;
}

#[tokio::test]
async fn ordered_delivery_survives_failures_embedded() {
    let stack = embedded("rules-order").await;
    ordering(stack.as_ref(), "per-webhook").await;
    ordering(stack.as_ref(), "per-urn").await;
    stack.stop().await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn ordered_delivery_survives_failures_on_moto() {
    let stack = moto("rules-order").await;
    ordering(stack.as_ref(), "per-webhook").await;
    ordering(stack.as_ref(), "per-urn").await;
    stack.stop().await;
}

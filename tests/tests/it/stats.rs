//! A webhook's health (`GET /v1/webhooks/{id}/stats`, GraphQL `Webhook.stats`): the same
//! scripted attempt log on the embedded store and on DynamoDB (moto) gives the same numbers,
//! GraphQL's equal REST's, and a bad `since` is refused naming the parameter.

use std::sync::Arc;

use bytes::Bytes;
use hookline_api::auth::Caller;
use hookline_api::Api;
use hookline_core::adapters::sqlite::Database;
use hookline_core::auth::Principal;
use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId};
use hookline_core::event::EventId;
use hookline_core::ports::Ports;
use hookline_core::webhook::Webhook;
use serde_json::{json, Value};
use time::OffsetDateTime;

fn editor() -> Caller {
    Caller::Principal(Principal::from_claims(
        "tester",
        Some(&Value::String("edit-app:A1".into())),
    ))
}

/// The scripted run, as (minutes before now, status, answer, latency ms).
const RUN: [(i64, AttemptStatus, Option<u16>, u64); 9] = [
    (250, AttemptStatus::Delivered, Some(200), 12),
    (200, AttemptStatus::Retrying, Some(503), 40),
    (199, AttemptStatus::Delivered, Some(200), 15),
    (130, AttemptStatus::Retrying, None, 0),
    (129, AttemptStatus::Exhausted, Some(500), 90),
    (70, AttemptStatus::Failed, Some(404), 8),
    (60, AttemptStatus::Delayed, None, 0),
    (30, AttemptStatus::Delivered, Some(204), 20),
    (5, AttemptStatus::Delivered, Some(200), 25),
];

fn attempts(webhook: &Webhook, now: OffsetDateTime) -> Vec<Attempt> {
    RUN.iter()
        .enumerate()
        .map(|(i, (ago, status, code, ms))| {
            let at = now - time::Duration::minutes(*ago);
            let event =
                EventId::parse(&format!("evt_01JDK7Z3Q8W6V0N4B2C9D5E7F{i}")).expect("event id");
            Attempt {
                // Time-ordered ids: the log lists newest first by them.
                attempt_id: ulid::Ulid::from_datetime(at.into()).to_string(),
                webhook_id: webhook.id.clone(),
                delivery_id: DeliveryId::for_pair(&event, &webhook.id),
                event_id: event,
                app_id: None,
                event_type: None,
                attempt: 1,
                at,
                status: *status,
                response_status: *code,
                error: code.is_none().then(|| "timed out".to_owned()),
                latency_ms: *ms,
                response_excerpt: String::new(),
                next_retry_at: None,
                backfill: false,
            }
        })
        .collect()
}

async fn stored(ports: &Ports, now: OffsetDateTime) -> Webhook {
    let webhook = hookline_tests::webhook(&["urn:allthings:app:A1:*"], &["ticket.created"], true);
    ports.webhooks.create(&webhook).await.expect("created");
    ports
        .attempts
        .record_many(&attempts(&webhook, now), now + time::Duration::days(1))
        .await
        .expect("recorded");
    webhook
}

fn api(ports: &Ports) -> Api {
    let settings = hookline_tests::local_settings();
    let http = hookline_core::adapters::http::ReqwestSender::new(settings.targets, "Hookline/test")
        .expect("client");
    Api::from_ports(ports, Arc::new(http), settings, None)
}

async fn get(api: &Api, path: &str) -> (u16, Value) {
    let request = http::Request::builder()
        .uri(path)
        .body(Bytes::new())
        .expect("request");
    let response = api.handle(request, editor()).await;
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body()).expect("JSON"),
    )
}

async fn graphql(api: &Api, id: &str, since: &str) -> Value {
    let query = json!({
        "query": "query($id: ID!, $since: String) { webhook(id: $id) { stats(since: $since) { since attempts delivered failed successRate latencyMs { p50 p95 p99 } buckets { start delivered failed p95LatencyMs } truncated attemptLimit } } }",
        "variables": {"id": id, "since": since},
    });
    let request = http::Request::builder()
        .method("POST")
        .uri("/graphql")
        .header("content-type", "application/json")
        .body(Bytes::from(query.to_string()))
        .expect("request");
    let response = api.handle(request, editor()).await;
    let body: Value = serde_json::from_slice(response.body()).expect("JSON");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["webhook"]["stats"].clone()
}

/// The answer without `until` (the time of the answer, which differs between two calls).
fn comparable(mut stats: Value) -> Value {
    if let Some(o) = stats.as_object_mut() {
        o.remove("until");
    }
    stats
}

/// The window starts on a whole minute five hours back, so both stores' answers share it.
fn since(now: OffsetDateTime) -> String {
    let start = (now - time::Duration::hours(5))
        .replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .expect("whole minute");
    hookline_core::timestamp::rfc3339(start)
}

async fn check_one_store(api: &Api, webhook: &Webhook, since: &str) -> Value {
    let id = webhook.id.as_str();
    let (status, rest) = get(api, &format!("/v1/webhooks/{id}/stats?since={since}")).await;
    assert_eq!(status, 200, "{rest}");
    // 8 sent (the delayed one was not), 4 delivered, 4 failed (2 retried, 1 exhausted, one 404).
    assert_eq!(
        (&rest["attempts"], &rest["delivered"], &rest["failed"]),
        (&json!(8), &json!(4), &json!(4)),
        "{rest}"
    );
    assert_eq!(rest["successRate"], json!(0.5));
    // Answered latencies 8 12 15 20 25 40 90 (the time-out has none): p50 20, p95 90.
    assert_eq!(
        rest["latencyMs"],
        json!({"p50": 20, "p95": 90, "p99": 90}),
        "{rest}"
    );
    let buckets = rest["buckets"].as_array().expect("buckets");
    assert!(
        (5..=6).contains(&buckets.len()),
        "one bucket per hour of the 5 h window: {rest}"
    );
    assert_eq!(buckets[0]["start"], json!(since));
    let (d, f): (i64, i64) = buckets.iter().fold((0, 0), |(d, f), b| {
        (
            d + b["delivered"].as_i64().unwrap_or(0),
            f + b["failed"].as_i64().unwrap_or(0),
        )
    });
    assert_eq!((d, f), (4, 4), "the buckets add up");
    assert_eq!(rest["truncated"], json!(false));
    assert_eq!(rest["attemptLimit"], json!(10_000));
    // GraphQL answers the same numbers.
    let gql = graphql(api, id, since).await;
    assert_eq!(
        comparable(rest.clone()),
        gql,
        "GraphQL's stats equal REST's"
    );
    rest
}

async fn bad_since(api: &Api, webhook: &Webhook) {
    let id = webhook.id.as_str();
    let (status, body) = get(api, &format!("/v1/webhooks/{id}/stats?since=yesterday")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("since")),
        "{body}"
    );
    for since in ["2099-01-01T00:00:00Z", "2001-01-01T00:00:00Z"] {
        let (status, body) = get(api, &format!("/v1/webhooks/{id}/stats?since={since}")).await;
        assert_eq!(status, 422, "{since}: {body}");
        assert_eq!(body["errors"][0]["field"], "since", "{body}");
    }
    let (status, _) = get(api, "/v1/webhooks/wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB/stats").await;
    assert_eq!(status, 404);
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn both_stores_give_the_same_stats_for_the_same_run_and_graphql_equals_rest() {
    let now = OffsetDateTime::now_utc();
    let since = since(now);

    let db = Database::open_in_memory().expect("sqlite");
    let embedded = hookline_tests::embedded_ports(&db);
    let hook = stored(&embedded, now).await;
    let embedded_api = api(&embedded);
    let on_sqlite = check_one_store(&embedded_api, &hook, &since).await;
    bad_since(&embedded_api, &hook).await;

    let (dynamo, sqs, resources) = hookline_tests::fresh_aws("stats").await;
    let aws = hookline_tests::aws_ports(&dynamo, &sqs, &resources);
    let hook = stored(&aws.ports, now).await;
    let on_dynamo = check_one_store(&api(&aws.ports), &hook, &since).await;

    assert_eq!(
        comparable(on_sqlite),
        comparable(on_dynamo),
        "SQLite and DynamoDB answer alike"
    );
}

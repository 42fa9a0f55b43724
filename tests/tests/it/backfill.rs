//! Backfill (`POST /v1/webhooks/{id}/backfill`) on both compositions (`hookline serve`'s, and
//! the three handlers on moto): a webhook created after the events receives exactly those of
//! the window its event types, URN scope and payload filter match, from its own App only,
//! oldest first, each once, signed, with `webhook-backfill: true` and delivery ids of their
//! own, marked in the attempt log (the webhook is ordered, so the endpoint sees the order); a dry run counts first; a second backfill sends them again
//! under new delivery ids; a disabled webhook is refused.

use hookline_core::delivery::DeliveryId;
use hookline_core::event::EventId;
use hookline_core::timestamp::rfc3339;
use hookline_core::webhook::WebhookId;
use hookline_deliver::DeliverSettings;
use hookline_tests::receiver::TestReceiver;
use hookline_tests::stack::{call, eventually, principal, Stack};
use serde_json::{json, Value};

/// The receiver's event POSTs (probes left out): (webhook-id, backfill header, body).
fn received(rx: &TestReceiver) -> Vec<(String, Option<String>, Value)> {
    rx.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && !hookline_tests::stack::is_probe(r))
        .map(|r| {
            (
                r.header("webhook-id").unwrap_or_default().to_owned(),
                r.header("webhook-backfill").map(str::to_owned),
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

async fn backfill_sends_exactly_the_matching_past_events(stack: Box<dyn Stack>) {
    let receiver = TestReceiver::always(200).await;
    let admin = principal(
        "admin",
        "edit-app:A1 edit-app:A2 publish-events:A1 publish-events:A2",
    );
    let since = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(2));
    // The history, published before the webhook exists.
    let events = [
        (
            "evt_01JDK7Z3Q8W6V0N4B2C9D5E7B1",
            "ticket.created",
            "urn:allthings:app:A1:ticket:CAT7:T1",
            "high",
            true,
        ),
        (
            "evt_01JDK7Z3Q8W6V0N4B2C9D5E7B2",
            "ticket.created",
            "urn:allthings:app:A1:ticket:CAT7:T2",
            "low",
            false,
        ),
        (
            "evt_01JDK7Z3Q8W6V0N4B2C9D5E7B3",
            "ticket.created",
            "urn:allthings:app:A1:ticket:CAT8:T3",
            "high",
            false,
        ),
        (
            "evt_01JDK7Z3Q8W6V0N4B2C9D5E7B4",
            "booking.created",
            "urn:allthings:app:A1:ticket:CAT7:T4",
            "high",
            false,
        ),
        (
            "evt_01JDK7Z3Q8W6V0N4B2C9D5E7B5",
            "ticket.created",
            "urn:allthings:app:A2:ticket:CAT7:T5",
            "high",
            false,
        ),
        (
            "evt_01JDK7Z3Q8W6V0N4B2C9D5E7B6",
            "ticket.status-changed",
            "urn:allthings:app:A1:ticket:CAT7:T6",
            "high",
            true,
        ),
        (
            "evt_01JDK7Z3Q8W6V0N4B2C9D5E7B7",
            "ticket.created",
            "urn:allthings:app:A1:ticket:CAT7:T7",
            "high",
            true,
        ),
    ];
    for (id, event_type, urn, priority, _) in events {
        let (status, body) = call(
            &*stack,
            &admin,
            "POST",
            "/v1/events",
            Some(json!({"id": id, "type": event_type, "urn": urn, "data": {"priority": priority}})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        // Distinct receipt times, so "oldest first" is one order.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let expected: Vec<&str> = events.iter().filter(|e| e.4).map(|e| e.0).collect();
    let (status, hook) = call(
        &*stack,
        &admin,
        "POST",
        "/v1/webhooks?appId=A1",
        Some(json!({
            "name": "crm", "url": format!("{}/hook", receiver.url),
            "eventTypes": ["ticket.*"], "urns": ["urn:allthings:app:A1:ticket:CAT7:*"],
            "filter": {"data": {"priority": ["high"]}},
            // Ordered: one at a time, so "oldest first" is what the endpoint sees.
            "ordering": "per-webhook"
        })),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/webhooks/{id}/backfill");

    // Bad windows are refused naming the field.
    let (status, problem) = call(
        &*stack,
        &admin,
        "POST",
        &path,
        Some(json!({"since": "2999-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].clone()),
        (422, json!("since")),
        "{problem}"
    );
    // The dry run counts once fan-out has logged every event.
    eventually("the history is logged", || async {
        let (status, dry) = call(
            &*stack,
            &admin,
            "POST",
            &path,
            Some(json!({"since": since, "dryRun": true})),
        )
        .await;
        assert_eq!(status, 200, "{dry}");
        (dry == json!({"matched": expected.len()})).then_some(())
    })
    .await;
    assert!(received(&receiver).is_empty(), "a dry run sends nothing");

    let (status, started) = call(
        &*stack,
        &admin,
        "POST",
        &path,
        Some(json!({"since": since})),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let job_path = format!("/v1/jobs/{}", started["jobId"].as_str().expect("jobId"));
    let job = eventually("the backfill finished", || async {
        let (_, job) = call(&*stack, &admin, "GET", &job_path, None).await;
        (job["state"] == "done").then_some(job)
    })
    .await;
    assert_eq!(
        (job["kind"].clone(), job["done"].clone()),
        (json!("backfill"), json!(expected.len())),
        "{job}"
    );
    let got = eventually("every backfilled event arrived", || async {
        let got = received(&receiver);
        (got.len() >= expected.len()).then_some(got)
    })
    .await;
    let ids: Vec<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids, expected,
        "exactly the matching events, oldest first, each once"
    );
    assert!(
        got.iter().all(|(_, b, _)| b.as_deref() == Some("true")),
        "marked webhook-backfill: true"
    );

    // The attempt log marks them, under delivery ids of their own.
    let log = eventually("the attempts are logged", || async {
        let (_, log) = call(
            &*stack,
            &admin,
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?limit=100"),
            None,
        )
        .await;
        (log["items"].as_array().map_or(0, Vec::len) == expected.len()).then_some(log)
    })
    .await;
    let webhook_id = WebhookId::parse(&id).expect("webhook id");
    for item in log["items"].as_array().expect("items") {
        assert_eq!(item["backfill"], true, "{item}");
        let event = EventId::parse(item["eventId"].as_str().expect("eventId")).expect("event id");
        assert_ne!(
            item["deliveryId"].as_str(),
            Some(DeliveryId::for_pair(&event, &webhook_id).as_str()),
            "a backfill's delivery id is not the live delivery's"
        );
    }

    // A second backfill sends them again under new ids; a disabled webhook is refused.
    let (status, again) = call(
        &*stack,
        &admin,
        "POST",
        &path,
        Some(json!({"since": since})),
    )
    .await;
    assert_eq!(status, 202, "{again}");
    let log = eventually("the second backfill's attempts are logged", || async {
        let (_, log) = call(
            &*stack,
            &admin,
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?limit=100"),
            None,
        )
        .await;
        (log["items"].as_array().map_or(0, Vec::len) == 2 * expected.len()).then_some(log)
    })
    .await;
    let mut deliveries: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["deliveryId"].as_str())
        .collect();
    deliveries.sort_unstable();
    deliveries.dedup();
    assert_eq!(
        deliveries.len(),
        2 * expected.len(),
        "each backfill has its own delivery ids"
    );
    let (status, _) = call(
        &*stack,
        &admin,
        "POST",
        &format!("/v1/webhooks/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = call(
        &*stack,
        &admin,
        "POST",
        &path,
        Some(json!({"since": since})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backfill_sends_exactly_the_matching_past_events() {
    let stack = hookline_tests::stack::embedded(
        "backfill",
        hookline_tests::local_settings(),
        DeliverSettings::default(),
    )
    .await;
    backfill_sends_exactly_the_matching_past_events(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn moto_backfill_sends_exactly_the_matching_past_events() {
    let stack = hookline_tests::stack::moto("backfill", DeliverSettings::default()).await;
    backfill_sends_exactly_the_matching_past_events(stack).await;
}

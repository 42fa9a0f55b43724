//! A webhook changed to no longer name an App stops receiving that App's events at once,
//! retries included (what an App purge relies on): on both compositions, a delivery retrying
//! against a failing endpoint is skipped at its next attempt once the App's URNs are removed,
//! with the reason in the attempt log, while the other App's events still arrive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookline_core::retry::RetryPolicy;
use hookline_deliver::DeliverSettings;
use hookline_tests::receiver::{Reply, TestReceiver};
use hookline_tests::stack::{call, eventually, principal, publish, Stack};
use serde_json::json;

fn delivery() -> DeliverSettings {
    DeliverSettings {
        policy: RetryPolicy {
            schedule: vec![Duration::from_secs(1); 5],
            ..RetryPolicy::default()
        },
        ..DeliverSettings::default()
    }
}

async fn removing_an_app_stops_its_deliveries_and_retries(stack: Box<dyn Stack>) {
    // A2's events fail (503) and are retried; A1's are accepted.
    let a2_posts = Arc::new(AtomicUsize::new(0));
    let seen = a2_posts.clone();
    let receiver = TestReceiver::start(move |req, _| {
        if req.method == "POST" && String::from_utf8_lossy(&req.body).contains(":app:A2:") {
            seen.fetch_add(1, Ordering::SeqCst);
            return Reply::status(503);
        }
        Reply::status(200)
    })
    .await;
    let admin = principal(
        "admin",
        "edit-app:A1 edit-app:A2 publish-events:A1 publish-events:A2",
    );
    let (status, hook) = call(
        &*stack,
        &admin,
        "POST",
        "/v1/webhooks?appId=A1",
        Some(json!({"name": "both", "url": format!("{}/hook", receiver.url), "eventTypes": ["ticket.created"],
            "urns": ["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"]})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().expect("id").to_owned();
    publish(
        &*stack,
        &admin,
        "evt_01JDK7Z3Q8W6V0N4B2C9D5E7C2",
        "ticket.created",
        "urn:allthings:app:A2:ticket:C:T1",
    )
    .await;
    eventually("A2's event failed once and is retrying", || async {
        (a2_posts.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let (status, changed) = call(
        &*stack,
        &admin,
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({"urns": ["urn:allthings:app:A1:*"]})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let tried = a2_posts.load(Ordering::SeqCst);
    let path = format!("/v1/webhooks/{id}/deliveries?status=skipped&limit=10");
    let skipped = eventually("the retry was skipped", || async {
        let (_, page) = call(&*stack, &admin, "GET", &path, None).await;
        page["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
    })
    .await;
    assert_eq!(
        skipped["error"], "the webhook no longer covers App A2",
        "{skipped}"
    );
    assert!(
        a2_posts.load(Ordering::SeqCst) <= tried + 1,
        "no more A2 POSTs after the change (one may have been in flight)"
    );
    publish(
        &*stack,
        &admin,
        "evt_01JDK7Z3Q8W6V0N4B2C9D5E7C3",
        "ticket.created",
        "urn:allthings:app:A1:ticket:C:T2",
    )
    .await;
    eventually("A1's event still arrives", || async {
        receiver
            .requests()
            .iter()
            .any(|r| r.header("webhook-id") == Some("evt_01JDK7Z3Q8W6V0N4B2C9D5E7C3"))
            .then_some(())
    })
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_removing_an_app_stops_its_deliveries_and_retries() {
    let stack = hookline_tests::stack::embedded(
        "scope-change",
        hookline_tests::local_settings(),
        delivery(),
    )
    .await;
    removing_an_app_stops_its_deliveries_and_retries(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn moto_removing_an_app_stops_its_deliveries_and_retries() {
    let stack = hookline_tests::stack::moto("scope-change", delivery()).await;
    removing_an_app_stops_its_deliveries_and_retries(stack).await;
}

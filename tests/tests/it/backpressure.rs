//! Intake's backpressure on the embedded runner: past its limit, `POST /v1/events` waits for
//! room, then answers 429 with `Retry-After` and queues nothing; a consumer taking work lets
//! a waiting event in. No workers run here, so the queues fill only as the test says (each
//! event is fanned out at intake into one delivery: the deliveries' limit is the one hit).

use std::time::Duration;

use axum::body::Body;
use hookline::backpressure::BacklogLimits;
use hookline::Local;
use hookline_core::auth::Principal;
use hookline_core::ports::WebhookStore;
use hookline_tests::webhook;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

fn event(n: usize) -> Body {
    Body::from(
        serde_json::json!({
            "type": "ticket.created",
            "urn": format!("urn:allthings:app:A1:ticket:CAT7:T{n}"),
            "data": {}
        })
        .to_string(),
    )
}

async fn post(local: &Local, token: &str, n: usize) -> (u16, Option<String>, serde_json::Value) {
    let request = http::Request::post("/v1/events")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(event(n))
        .expect("request");
    let response = local.app().oneshot(request).await.expect("answer");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        retry_after,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_full_intake_waits_for_room_then_answers_429_and_queues_nothing() {
    let local = Local::open(
        &hookline_tests::temp_db("backpressure"),
        hookline_tests::local_settings(),
        "permissions".into(),
    )
    .await
    .expect("open");
    let hook = webhook(&["urn:allthings:app:A1:*"], &["ticket.*"], true);
    local
        .db
        .create(&hookline_tests::rekey(&hook, &local.keys, None))
        .await
        .expect("create");
    local.backlog.set_limits(BacklogLimits {
        deliveries: 3,
        events: 100,
        max_wait: Duration::from_millis(300),
    });
    let publisher = Principal::from_claims(
        "platform",
        Some(&serde_json::Value::String("publish-events:A1".into())),
    );
    let token = local.mint_token(&publisher, Duration::from_secs(600));

    for n in 0..3 {
        assert_eq!(post(&local, &token, n).await.0, 202, "event {n}");
    }
    // Three deliveries wait for a first attempt: the fourth event waits its 300 ms, then is
    // refused.
    let started = std::time::Instant::now();
    let (status, retry_after, problem) = post(&local, &token, 3).await;
    assert_eq!(status, 429, "{problem}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(problem["type"], "https://hookline.dev/problems/overloaded");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("3 deliveries and 0 events wait")),
        "{problem}"
    );
    assert_eq!(local.queues.deliveries.len().await.expect("len"), 3);
    assert_eq!(local.queues.events.len().await.expect("len"), 0);

    // A waiting event gets in as soon as a consumer takes work.
    let waiting = {
        let (local, token) = (local.clone(), token.clone());
        tokio::spawn(async move { post(&local, &token, 4).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "admitted while intake was full");
    let taken = local
        .queues
        .deliveries
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(taken.len(), 1);
    let (status, _, problem) = waiting.await.expect("task");
    assert_eq!(status, 202, "{problem}");
    // Taken but not handled, the first delivery still holds its row; retries do not count
    // towards the limit, only work not yet started.
    assert_eq!(local.queues.deliveries.len().await.expect("len"), 4);
    assert_eq!(local.queues.deliveries.unreceived(), 3);

    // Bad input is refused as bad input, full or not.
    let request = http::Request::post("/v1/events")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from("{"))
        .expect("request");
    let response = local.app().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), 400);
}

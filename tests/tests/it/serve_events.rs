//! Events through `hookline serve`: `POST /v1/events` over HTTP, fanned out in the commit that
//! takes them in (the embedded events queue and its ingest worker when that cannot be), and
//! delivery messages on the embedded deliveries queue — also across a restart, since every
//! queue is durable.

use std::time::{Duration, Instant};

use hookline::Local;
use hookline_api::settings::Settings;
use hookline_core::auth::Principal;
use hookline_core::delivery::DeliveryMessage;
use hookline_core::ports::WebhookStore;
use hookline_core::target::TargetPolicy;
use hookline_tests::webhook;

fn settings() -> Settings {
    Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    }
}

/// A fresh `serve` store (no workers) with one webhook for App A1's tickets, and a token
/// that may publish there.
async fn a1_ticket_webhook(name: &str) -> (Local, hookline_core::webhook::Webhook, String) {
    let local = Local::open(
        &hookline_tests::temp_db(name),
        settings(),
        "permissions".into(),
    )
    .await
    .expect("open");
    let hook = webhook(&["urn:allthings:app:A1:ticket:*"], &["ticket.*"], true);
    local
        .db
        .create(&hookline_tests::rekey(&hook, &local.keys, None))
        .await
        .expect("create");
    let publisher = Principal::from_claims(
        "platform",
        Some(&serde_json::Value::String("publish-events:A1".into())),
    );
    let token = local.mint_token(&publisher, Duration::from_secs(600));
    (local, hook, token)
}

async fn wait_for_deliveries(local: &Local, n: usize) -> Vec<DeliveryMessage> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = local.queues.deliveries.list(1000).await.expect("list");
        if messages.len() >= n || Instant::now() > deadline {
            return messages
                .iter()
                .map(|m| serde_json::from_str(&m.body).expect("delivery"))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_event_posted_over_http_becomes_delivery_messages() {
    let (local, hook, token) = a1_ticket_webhook("serve-events").await;
    let server = hookline_tests::Serving::start(local.clone()).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let event = serde_json::json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T99", "data": {"title": "Leaking tap"}});
    let r = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&token)
        .json(&event)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(id.starts_with("evt_"));
    let deliveries = wait_for_deliveries(&local, 1).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].event_id.as_str(), id);
    assert_eq!(deliveries[0].webhook_id, hook.id);

    // Another App's events need publish-events there; bad events send nothing.
    let other = serde_json::json!({"type": "ticket.created", "urn": "urn:allthings:app:A2:ticket:X", "data": {}});
    let r = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&token)
        .json(&other)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let bad = serde_json::json!({"type": "ticket.nope", "urn": "urn:allthings:app:A1:*", "data": {}, "extra": 1});
    let r = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&token)
        .json(&bad)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let bad =
        serde_json::json!({"type": "ticket.nope", "urn": "urn:allthings:app:A1:*", "data": {}});
    let r = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&token)
        .json(&bad)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422);
    let fields: Vec<String> = r.json::<serde_json::Value>().await.expect("json")["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect();
    assert_eq!(fields, ["type", "urn"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        local.queues.events.is_empty().await.expect("len"),
        "nothing else was queued"
    );
    assert_eq!(local.queues.deliveries.len().await.expect("len"), 1);
    server.stop().await;
}

/// `POST /v1/events` of `body` straight to the router (no workers run); the status.
async fn post_event(local: &Local, token: &str, body: serde_json::Value) -> u16 {
    use tower::ServiceExt as _;
    let request = http::Request::post("/v1/events")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .expect("request");
    let response = local.app().oneshot(request).await.expect("answer");
    response.status().as_u16()
}

#[tokio::test]
async fn an_event_is_fanned_out_in_the_commit_that_takes_it_in() {
    use hookline_core::ports::{EventClaim, EventLog};
    let (local, hook, token) = a1_ticket_webhook("serve-intake-fan-out").await;
    let event = |id: &str, urn: &str| serde_json::json!({"id": id, "type": "ticket.created", "urn": urn, "data": {}});

    // No worker runs: by its 202 the event is logged as fanned out and its delivery queued.
    let t1 = event("evt_i1", "urn:allthings:app:A1:ticket:CAT7:T1");
    assert_eq!(post_event(&local, &token, t1.clone()).await, 202);
    assert_eq!(local.queues.events.len().await.expect("len"), 0);
    let deliveries = wait_for_deliveries(&local, 1).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].event_id.as_str(), "evt_i1");
    assert_eq!(deliveries[0].webhook_id, hook.id);
    let logged = EventLog::get(
        &local.db,
        &hookline_core::event::EventId::parse("evt_i1").expect("id"),
    )
    .await
    .expect("get")
    .expect("logged");
    assert_eq!(
        logged.urn.to_string(),
        "urn:allthings:app:A1:ticket:CAT7:T1"
    );

    // The same id again is the duplicate publish it is: 202, nothing more queued.
    assert_eq!(post_event(&local, &token, t1).await, 202);
    assert_eq!(local.queues.deliveries.len().await.expect("len"), 1);
    assert_eq!(local.queues.events.len().await.expect("len"), 0);

    // An event no webhook matches is logged all the same (backfill reads it), sends nothing.
    let t2 = event("evt_i2", "urn:allthings:app:A1:booking:B1");
    assert_eq!(post_event(&local, &token, t2).await, 202);
    assert!(EventLog::get(
        &local.db,
        &hookline_core::event::EventId::parse("evt_i2").expect("id")
    )
    .await
    .expect("get")
    .is_some());
    assert_eq!(local.queues.deliveries.len().await.expect("len"), 1);

    // A copy another consumer holds right now cannot be fanned out here: it goes to the
    // events queue, whose consumer fans it out once the claim lapses.
    let t3 = event("evt_i3", "urn:allthings:app:A1:ticket:CAT7:T3");
    let held = hookline_core::event::Event::from_intake(
        t3.to_string().as_bytes(),
        hookline_core::event::IntakeRules {
            namespace: &Default::default(),
            catalog: hookline_core::event_type::Catalog::builtin(),
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("event");
    let claim = local
        .db
        .claim(
            &held,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
            Duration::from_millis(300),
        )
        .await
        .expect("claim");
    assert_eq!(claim, EventClaim::New);
    assert_eq!(post_event(&local, &token, t3).await, 202);
    assert_eq!(local.queues.events.len().await.expect("len"), 1);
    assert_eq!(local.queues.deliveries.len().await.expect("len"), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let batch = local
        .queues
        .events
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(batch.len(), 1);
    assert!(local.ingest.handle_batch(&batch).await.is_empty());
    let deliveries = wait_for_deliveries(&local, 2).await;
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[1].event_id.as_str(), "evt_i3");
}

#[tokio::test]
async fn events_accepted_before_a_restart_are_fanned_out_after_it() {
    let path = hookline_tests::temp_db("serve-restart");
    let first = Local::open(&path, settings(), "permissions".into())
        .await
        .expect("open");
    let hook = webhook(&["urn:allthings:app:R1:*"], &["*"], true);
    first
        .db
        .create(&hookline_tests::rekey(&hook, &first.keys, None))
        .await
        .expect("create");
    // Accepted (202) while no worker runs, as if the process died right after answering.
    for i in 0..5 {
        first
            .queues
            .events
            .send(&format!(r#"{{"id":"evt_r{i}","type":"user.registered","urn":"urn:allthings:app:R1:user:U{i}","data":{{}}}}"#), Duration::ZERO, None)
            .await
            .expect("send");
    }
    drop(first);
    let second = Local::open(&path, settings(), "permissions".into())
        .await
        .expect("reopen");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let workers = second.spawn_workers(stop_rx);
    let deliveries = wait_for_deliveries(&second, 5).await;
    assert_eq!(deliveries.len(), 5);
    stop.send(true).expect("stop");
    for w in workers {
        w.await.expect("worker");
    }
    assert_eq!(second.db.integrity_check().await.expect("check"), "ok");
}

async fn wait_for_posts(
    receiver: &hookline_tests::receiver::TestReceiver,
    n: usize,
) -> Vec<hookline_tests::receiver::Captured> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let posts: Vec<_> = receiver
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
        if posts.len() >= n || Instant::now() > deadline {
            return posts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn create_webhook_post_event_and_receive_it_signed_through_serve() {
    let receiver = hookline_tests::receiver::TestReceiver::always(200).await;
    let delivery = hookline_deliver::DeliverSettings {
        policy: hookline_core::retry::RetryPolicy {
            schedule: vec![Duration::from_millis(50); 5],
            ..hookline_core::retry::RetryPolicy::default()
        },
        ..hookline_deliver::DeliverSettings::default()
    };
    let local = Local::open_with(
        &hookline_tests::temp_db("e2e"),
        settings(),
        "permissions".into(),
        delivery,
    )
    .await
    .expect("open");
    let everyone = Principal::from_claims(
        "dev",
        Some(&serde_json::Value::String(
            "edit-app:A1 publish-events:A1".into(),
        )),
    );
    let token = local.mint_token(&everyone, Duration::from_secs(600));
    let server = hookline_tests::Serving::start(local.clone()).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();

    let created: serde_json::Value = client
        .post(format!("{base}/v1/webhooks?appId=A1"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "CRM", "url": format!("{}/in", receiver.url), "eventTypes": ["ticket.*"], "customHeaders": {"X-Api-Key": "k1"}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let (id, secret) = (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    );

    let event = serde_json::json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T99", "data": {"title": "Leaking tap"}});
    let accepted: serde_json::Value = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&token)
        .json(&event)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let event_id = accepted["id"].as_str().expect("event id").to_owned();

    let posts = wait_for_posts(&receiver, 1).await;
    assert_eq!(posts.len(), 1, "the event was delivered once");
    let delivered = &posts[0];
    assert_eq!(delivered.header("webhook-id"), Some(event_id.as_str()));
    assert_eq!(delivered.header("x-api-key"), Some("k1"));
    assert!(
        delivered.signed_with(&secret),
        "signed with the secret shown at creation"
    );
    let body: serde_json::Value = serde_json::from_slice(&delivered.body).expect("json");
    assert_eq!(body["data"]["title"], "Leaking tap");

    // The attempt log shows it.
    let attempts = |query: &'static str, enough: usize| {
        let (client, url, token) = (
            client.clone(),
            format!("{base}/v1/webhooks/{id}/deliveries{query}"),
            token.clone(),
        );
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let log: serde_json::Value = client
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("get")
                    .json()
                    .await
                    .expect("json");
                let items = log["items"].as_array().cloned().unwrap_or_default();
                if items.len() >= enough || Instant::now() > deadline {
                    break items;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let log = attempts("?status=delivered", 1).await;
    let attempt = &log[0];
    assert_eq!(attempt["status"], "delivered");
    assert_eq!(attempt["responseStatus"], 200);
    assert_eq!(attempt["eventId"], event_id.as_str());
    let delivery_id = attempt["deliveryId"]
        .as_str()
        .expect("delivery id")
        .to_owned();

    // Redelivery from the event log: same event, same webhook-id.
    let r = client
        .post(format!(
            "{base}/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("redeliver");
    assert_eq!(r.status(), 202);
    let posts = wait_for_posts(&receiver, 2).await;
    assert_eq!(posts[1].header("webhook-id"), Some(event_id.as_str()));
    // The redelivery is the delivery's attempt 2: attempt numbers keep counting.
    let numbers: Vec<u64> = attempts("", 2)
        .await
        .iter()
        .filter(|a| a["deliveryId"] == delivery_id.as_str())
        .filter_map(|a| a["attempt"].as_u64())
        .collect();
    assert_eq!(numbers, [2, 1], "newest first: the redelivery is attempt 2");

    // A test event through the real path.
    let r = client
        .post(format!("{base}/v1/webhooks/{id}/test"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("test");
    assert_eq!(r.status(), 202);
    let posts = wait_for_posts(&receiver, 3).await;
    let test: serde_json::Value = serde_json::from_slice(&posts[2].body).expect("json");
    assert_eq!(test["type"], "webhook.test");
    assert!(posts[2].signed_with(&secret));

    let r = client
        .post(format!(
            "{base}/v1/webhooks/{id}/deliveries/dl_00000000000000000000000000000000/redeliver"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("redeliver");
    assert_eq!(r.status(), 404);
    server.stop().await;
}

//! End to end on the AWS path: the `api`, `ingest` and `deliver` handlers on DynamoDB and SQS
//! (moto), wired as their Lambdas wire them, with the SQS event source played by the test:
//! create a webhook → POST an event → fan-out → signed delivery received.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookline_api::auth::Caller;
use hookline_api::settings::Settings;
use hookline_api::Api;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::adapters::lambda::received_messages;
use hookline_core::auth::Principal;
use hookline_core::retry::RetryPolicy;
use hookline_core::target::TargetPolicy;
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_ingest::{Ingest, IngestSettings};
use hookline_tests::receiver::TestReceiver;

use hookline_tests::play_event_source;

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn webhook_event_and_signed_delivery_through_the_three_handlers() {
    let (dynamo, sqs, r) = hookline_tests::fresh_aws("e2e").await;
    let receiver = TestReceiver::always(200).await;
    let settings = Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    };
    let http = Arc::new(ReqwestSender::new(settings.targets, "Hookline/test").expect("client"));
    // wired as the Lambdas wire themselves
    let aws = hookline_tests::aws_ports(&dynamo, &sqs, &r);

    // api
    let router = Api::from_ports(&aws.ports, http.clone(), settings, None);
    let caller = || {
        Caller::Principal(Principal::from_claims(
            "platform",
            Some(&serde_json::Value::String(
                "edit-app:A1 publish-events:A1".into(),
            )),
        ))
    };
    let post = |path: &str, body: serde_json::Value| {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .expect("request")
    };
    let created = router
        .handle(post("/v1/webhooks?appId=A1", serde_json::json!({"name": "CRM", "url": format!("{}/in", receiver.url), "eventTypes": ["ticket.*"]})), caller())
        .await;
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = serde_json::from_slice(created.body()).expect("json");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let accepted = router
        .handle(post("/v1/events", serde_json::json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T99", "data": {"title": "Leaking tap"}})), caller())
        .await;
    assert_eq!(accepted.status(), 202);
    let event_id = serde_json::from_slice::<serde_json::Value>(accepted.body()).expect("json")
        ["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // ingest
    let ingest = Ingest::from_ports(
        &aws.ports,
        aws.dead_letters(&r.events_dlq_url),
        IngestSettings::default(),
    );
    let handled = play_event_source(&sqs, &r.events_queue_url, |e| {
        let ingest = ingest.clone();
        async move { ingest.handle_batch(&received_messages(e)).await }
    })
    .await;
    assert_eq!(handled, 1);

    // deliver
    let deliver = Deliver::from_ports(
        &aws.ports,
        http,
        DeliverSettings {
            policy: RetryPolicy {
                schedule: vec![Duration::from_secs(1); 5],
                ..RetryPolicy::default()
            },
            ..DeliverSettings::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.requests().iter().all(|r| r.method != "POST") {
        assert!(Instant::now() < deadline, "no delivery arrived");
        play_event_source(&sqs, &r.deliveries_queue_url, |e| {
            let deliver = deliver.clone();
            async move { deliver.handle_batch(&received_messages(e)).await }
        })
        .await;
    }
    let delivered = receiver
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("a POST");
    assert_eq!(delivered.header("webhook-id"), Some(event_id.as_str()));
    assert!(
        delivered.signed_with(&secret),
        "signed with the secret shown at creation"
    );
    let body: serde_json::Value = serde_json::from_slice(&delivered.body).expect("json");
    assert_eq!(body["urn"], "urn:allthings:app:A1:ticket:CAT7:T99");
}

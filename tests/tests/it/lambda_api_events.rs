//! The `api` Lambda's edge on the real-shaped API Gateway HTTP API (payload v2) requests in
//! `infra/events/`: what `cargo lambda invoke api --data-file infra/events/<file>` sends.

use std::path::Path;
use std::sync::Arc;

use hookline_api::auth::with_auth;
use hookline_api::deliveries::DeliveriesService;
use hookline_api::intake::IntakeService;
use hookline_api::lambda::ApiGatewayClaims;
use hookline_api::service::WebhookService;
use hookline_api::settings::Settings;
use hookline_api::Api;
use hookline_core::adapters::aws::sqs::SqsQueue;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::auth::DEFAULT_PERMISSIONS_CLAIM;
use hookline_core::ports::{EventQueue, WebhookStore};
use hookline_core::target::TargetPolicy;
use hookline_tests::receiver::TestReceiver;
use serde_json::Value;

fn fixture(name: &str, endpoint: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The fixtures name a public endpoint; tests never leave the machine.
    text.replace("https://crm.example.com/hookline", endpoint)
}

async fn invoke(router: &Api, event: &str) -> (u16, Value) {
    let app = with_auth(
        router.routes(),
        ApiGatewayClaims::new(DEFAULT_PERMISSIONS_CLAIM),
    );
    let (status, text) = hookline_tests::invoke_lambda(&app, event).await;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON")
    };
    (status, body)
}

async fn run_fixtures(
    store: Arc<dyn WebhookStore>,
    events: Arc<dyn EventQueue>,
    lifecycle: hookline_core::lifecycle::Lifecycle,
    deliveries_of: impl FnOnce(WebhookService) -> DeliveriesService,
) {
    let receiver = TestReceiver::always(200).await;
    let endpoint = format!("{}/hookline", receiver.url);
    let settings = Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    };
    let http = ReqwestSender::new(settings.targets, "Hookline/test").expect("client");
    let intake = IntakeService::new(events, settings.namespace.clone());
    let webhooks = WebhookService::new(
        store,
        Arc::new(http),
        Arc::new(hookline_core::ports::FixedVault(hookline_tests::test_keys())),
        lifecycle,
        settings,
    );
    let router = Api::new(webhooks.clone(), intake, deliveries_of(webhooks));

    let (status, body) = invoke(&router, &fixture("api-create-webhook.json", &endpoint)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["owner"], "integrator-1",
        "sub comes from the authorizer's claims"
    );
    assert_eq!(body["urns"][0], "urn:allthings:app:A1:ticket:CAT7:*");
    let created_id = body["id"].clone();

    let (status, body) = invoke(
        &router,
        &fixture("api-create-webhook-forbidden.json", &endpoint),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    let (status, body) = invoke(&router, &fixture("api-list-webhooks.json", &endpoint)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"].as_array().expect("items").len(), 1);

    let (status, body) = invoke(
        &router,
        &fixture("api-list-webhooks-no-token.json", &endpoint),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    let (status, body) = invoke(&router, &fixture("api-event-types.json", &endpoint)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["items"].as_array().expect("items").len() >= 10);

    let (status, body) = invoke(&router, &fixture("api-publish-event.json", &endpoint)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], "evt_01JDK7Z3Q8W6V0N4B2C9D5E7F1");

    // GraphQL: the platform's public example posted to the root, the same with a URN of an
    // App the token lacks, the App's webhooks, and no token.
    let (status, body) = invoke(
        &router,
        &fixture("api-graphql-register-webhook.json", &endpoint),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["registerWebhook"]["code"], "OK", "{body}");
    assert_eq!(body["data"]["registerWebhook"]["success"], true);

    let (status, body) = invoke(
        &router,
        &fixture("api-graphql-register-webhook-forbidden.json", &endpoint),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["registerWebhook"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert_eq!(body["data"]["registerWebhook"]["success"], false);

    let (status, body) = invoke(&router, &fixture("api-graphql-webhooks.json", &endpoint)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let webhooks = &body["data"]["webhooks"];
    assert_eq!(
        webhooks["totalCount"], 2,
        "the REST one and the GraphQL one: {body}"
    );
    assert_eq!(webhooks["pageInfo"]["hasNextPage"], false);
    for edge in webhooks["edges"].as_array().expect("edges") {
        assert_eq!(
            edge["cursor"], edge["node"]["id"],
            "cursors are the store's"
        );
        assert_eq!(edge["node"]["secret"], Value::Null);
        assert_eq!(edge["node"]["deliveries"]["totalCount"], 0);
    }

    let (status, body) = invoke(&router, &fixture("api-graphql-no-token.json", &endpoint)).await;
    assert_eq!(status, 401, "{body}");

    // The platform (manage-grants in its claims) revokes integrator-1 on A1: its webhooks are
    // suspended there.
    let (status, body) = invoke(&router, &fixture("api-revoke-grant.json", &endpoint)).await;
    assert_eq!(status, 200, "{body}");
    // Both of integrator-1's webhooks (REST's and GraphQL's) name A1.
    let suspended = body["webhooks"].as_array().expect("a list");
    assert!(
        suspended.contains(&created_id) && suspended.len() == 2,
        "{body}"
    );
}

#[tokio::test]
async fn api_gateway_fixtures_on_the_embedded_store() {
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    let events = hookline_core::adapters::sqlite::SqliteQueue::new(db.clone(), "events", None);
    let logs = db.clone();
    let lifecycle = hookline_tests::embedded_lifecycle(&db);
    run_fixtures(Arc::new(db), Arc::new(events.clone()), lifecycle, |w| {
        let queue =
            hookline_core::adapters::sqlite::SqliteQueue::new(logs.clone(), "deliveries", None);
        DeliveriesService::new(w, Arc::new(logs.clone()), Arc::new(logs), Arc::new(queue))
    })
    .await;
    let queued: Vec<String> = events
        .list(10)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_queued(&queued);
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn api_gateway_fixtures_on_dynamodb() {
    let (dynamo, sqs, resources) = hookline_tests::fresh_aws("lambda-api").await;
    let dynamo_for_logs = dynamo.clone();
    let lifecycle = hookline_tests::aws_lifecycle(&dynamo, &sqs, &resources);
    let store = hookline_core::adapters::aws::dynamodb::DynamoWebhookStore::new(
        dynamo,
        resources.table_name.clone(),
    );
    let events = SqsQueue::new(sqs.clone(), resources.events_queue_url.clone());
    let (table, deliveries) = (resources.table_name.clone(), resources.deliveries(&sqs));
    let logs_client = dynamo_for_logs;
    run_fixtures(Arc::new(store), Arc::new(events), lifecycle, move |w| {
        DeliveriesService::new(
            w,
            Arc::new(
                hookline_core::adapters::aws::dynamodb::DynamoAttemptLog::new(
                    logs_client.clone(),
                    table.clone(),
                ),
            ),
            Arc::new(hookline_core::adapters::aws::dynamodb::DynamoEventLog::new(
                logs_client,
                table,
            )),
            Arc::new(deliveries),
        )
    })
    .await;
    let received = sqs
        .receive_message()
        .queue_url(&resources.events_queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    let bodies: Vec<String> = received
        .messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect();
    assert_queued(&bodies);
}

/// The events queue holds the published event and one `webhook.suspended` per suspended
/// webhook.
fn assert_queued(bodies: &[String]) {
    let published = bodies
        .iter()
        .filter(|b| b.contains("evt_01JDK7Z3Q8W6V0N4B2C9D5E7F1"))
        .count();
    let suspended = bodies
        .iter()
        .filter(|b| b.contains("\"webhook.suspended\""))
        .count();
    assert_eq!(
        (published, suspended, bodies.len()),
        (1, 2, 3),
        "the published event and the operational events: {bodies:?}"
    );
}

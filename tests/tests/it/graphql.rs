//! The GraphQL API over the embedded store, called directly and through the `api` Lambda's
//! edge (API Gateway HTTP API events built from `infra/events/api-graphql-*.json`): the
//! platform's public `registerWebhook` example, every mutation's refusals, the same failing
//! fields as REST, a Relay pagination walk, deliveries, the limits, and the checked-in SDL.

use std::path::Path;

use bytes::Bytes;
use hookline_api::auth::{with_auth, Caller};
use hookline_api::lambda::ApiGatewayClaims;
use hookline_api::Api as Router;
use hookline_core::adapters::sqlite::Database;
use hookline_core::auth::{Principal, DEFAULT_PERMISSIONS_CLAIM};
use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId};
use hookline_core::event::EventId;
use hookline_core::ports::{AttemptLog, WebhookStore};
use hookline_core::webhook::WebhookId;
use hookline_tests::receiver::TestReceiver;
use http::Method;
use serde_json::{json, Value};

/// Which edge a request goes through.
#[derive(Debug, Clone, Copy)]
enum Edge {
    /// `Router::handle` with a verified principal (what `hookline serve` does after its token
    /// check).
    Direct,
    /// An API Gateway HTTP API event whose JWT authorizer passed these claims.
    Lambda,
}

struct Api {
    router: Router,
    db: Database,
    edge: Edge,
}

/// An HTTP answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Value,
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

impl Api {
    fn new(edge: Edge) -> Self {
        let (router, db) = hookline_tests::embedded_api(hookline_tests::local_settings());
        Self { router, db, edge }
    }

    /// POSTs `body` to `path` as a caller with `permissions` (space-separated), or with no
    /// token at all.
    async fn post(&self, path: &str, permissions: Option<&str>, body: &str) -> Answer {
        self.request(Method::POST, path, permissions, body).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        permissions: Option<&str>,
        body: &str,
    ) -> Answer {
        match self.edge {
            Edge::Direct => {
                let caller = match permissions {
                    Some(p) => Caller::Principal(Principal::from_claims(
                        "tester",
                        Some(&Value::String(p.into())),
                    )),
                    None => Caller::Anonymous,
                };
                let request = http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header("content-type", "application/json")
                    .header("accept", "application/json")
                    .body(Bytes::from(body.to_owned()))
                    .expect("request");
                let response = self.router.handle(request, caller).await;
                let (parts, bytes) = response.into_parts();
                Answer {
                    status: parts.status.as_u16(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).expect("a JSON body")
                    },
                }
            }
            Edge::Lambda => {
                let mut event = fixture(if permissions.is_some() {
                    "api-graphql-webhooks.json"
                } else {
                    "api-graphql-no-token.json"
                });
                event["rawPath"] = json!(path);
                event["requestContext"]["http"]["path"] = json!(path);
                event["requestContext"]["http"]["method"] = json!(method.as_str());
                event["body"] = json!(body);
                if let Some(p) = permissions {
                    // API Gateway flattens a claim array to "[a b]".
                    event["requestContext"]["authorizer"]["jwt"]["claims"]["permissions"] =
                        json!(format!("[{p}]"));
                }
                let app = with_auth(
                    self.router.routes(),
                    ApiGatewayClaims::new(DEFAULT_PERMISSIONS_CLAIM),
                );
                let (status, text) = hookline_tests::invoke_lambda(&app, &event.to_string()).await;
                Answer {
                    status,
                    content_type: None,
                    body: if text.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).expect("a JSON body")
                    },
                }
            }
        }
    }

    /// Runs a GraphQL operation on `/graphql`: a 200 with a GraphQL response.
    async fn gql(&self, permissions: &str, query: &str, variables: Value) -> Value {
        let body = json!({"query": query, "variables": variables}).to_string();
        let a = self.post("/graphql", Some(permissions), &body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        if let Some(ct) = &a.content_type {
            assert_eq!(ct, "application/json");
        }
        a.body
    }

    /// Runs a mutation that must answer data (no GraphQL errors): its result object.
    async fn mutate(&self, permissions: &str, field: &str, query: &str, variables: Value) -> Value {
        let r = self.gql(permissions, query, variables).await;
        assert!(r.get("errors").is_none(), "{r}");
        r["data"][field].clone()
    }

    /// Registers a webhook in App A1 (or the Apps `urns` name) as `edit-app:*`: its id.
    async fn register(&self, url: &str, urns: &[&str]) -> String {
        let r = self
            .mutate(
                "edit-app:*",
                "registerWebhook",
                REGISTER,
                json!({"webhook": {"description": "CRM", "events": ["ticket.*"], "url": url, "urns": urns}}),
            )
            .await;
        assert_eq!(r["success"], true, "{r}");
        r["webhook"]["id"].as_str().expect("id").to_owned()
    }

    async fn count_webhooks(&self, app: &str) -> u64 {
        let r = self
            .gql(
                "edit-app:*",
                "query($app:String!){webhooks(filter:{appId:$app}){totalCount}}",
                json!({"app": app}),
            )
            .await;
        r["data"]["webhooks"]["totalCount"]
            .as_u64()
            .unwrap_or_else(|| panic!("{r}"))
    }
}

const REGISTER: &str = "mutation($webhook: RegisterWebhookInput!) { registerWebhook(webhook: $webhook) { code message success webhook { id description url events urns enabled secret customHeaders { name value } } fieldErrors { field message } } }";
const UPDATE: &str = "mutation($id: ID!, $webhook: UpdateWebhookInput!, $v: Int) { updateWebhook(id: $id, webhook: $webhook, expectedVersion: $v) { code message success webhook { id url urns version secret customHeaders { name value } } fieldErrors { field message } } }";
const DELETE: &str =
    "mutation($id: ID!) { deleteWebhook(id: $id) { code message success webhook { id } } }";
const ROTATE: &str = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { code message success webhook { id secret version } } }";
const TEST: &str = "mutation($id: ID!) { testWebhook(id: $id) { code message success webhook { id } delivery { deliveryId eventId } } }";
const REDELIVER: &str = "mutation($id: ID!, $d: ID!) { redeliverWebhookDelivery(webhookId: $id, deliveryId: $d) { code message success delivery { deliveryId eventId } } }";

/// The platform's public example, verbatim but for the URL (and the host and token, which
/// the edge supplies).
fn public_example(url: &str) -> String {
    r#"{"query":"mutation RegisterNewWebhook($webhook:RegisterWebhookInput!){registerWebhook(webhook:$webhook){code message success}}","variables":{"webhook":{"description":"An example webhook","events":["ticket.created","ticket.updated"],"url":"https://httpbin.org/status/200","urns":["urn:allthings:app:A1:*"]}}}"#
        .replace("https://httpbin.org/status/200", url)
}

async fn the_public_example_registers_at_the_root(edge: Edge) {
    let api = Api::new(edge);
    let receiver = TestReceiver::always(200).await;
    let a = api
        .post(
            "/",
            Some("edit-app:A1"),
            &public_example(&format!("{}/hookline", receiver.url)),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let result = &a.body["data"]["registerWebhook"];
    assert_eq!(result["code"], "OK", "{}", a.body);
    assert_eq!(result["success"], true);
    let message = result["message"].as_str().expect("message");
    assert!(
        message.starts_with("webhook wh_") && message.ends_with(" registered"),
        "{message}"
    );
    assert!(a.body.get("errors").is_none(), "{}", a.body);
    assert!(
        !receiver.requests().is_empty(),
        "the endpoint was checked on save"
    );

    // It is there, as described, and its secret is not readable again.
    let r = api
        .gql(
            "edit-app:A1",
            "{ webhooks(filter: {appId: \"A1\"}) { totalCount nodes { id description url events urns enabled secret } } }",
            json!({}),
        )
        .await;
    let conn = &r["data"]["webhooks"];
    assert_eq!(conn["totalCount"], 1, "{r}");
    let w = &conn["nodes"][0];
    assert_eq!(w["description"], "An example webhook");
    assert_eq!(w["url"], format!("{}/hookline", receiver.url));
    assert_eq!(w["events"], json!(["ticket.created", "ticket.updated"]));
    assert_eq!(w["urns"], json!(["urn:allthings:app:A1:*"]));
    assert_eq!(w["enabled"], true);
    assert_eq!(w["secret"], Value::Null, "the secret shows only once");
    let id = w["id"].as_str().expect("id");
    assert!(message.contains(id), "{message} names {id}");

    // /graphql and / are one endpoint.
    let a = api
        .post(
            "/graphql",
            Some("edit-app:A1"),
            &json!({"query": "query($id: ID!) { webhook(id: $id) { id } }", "variables": {"id": id}}).to_string(),
        )
        .await;
    assert_eq!(a.body["data"]["webhook"]["id"], id, "{}", a.body);
}

#[tokio::test]
async fn the_public_example_registers_a_webhook() {
    the_public_example_registers_at_the_root(Edge::Direct).await;
}

#[tokio::test]
async fn the_public_example_registers_a_webhook_through_the_lambda_edge() {
    the_public_example_registers_at_the_root(Edge::Lambda).await;
}

/// Asserts a refused mutation: `success: false`, `code`, and that the message names each
/// field of `fields`, which are exactly the failing ones.
fn assert_refused(result: &Value, code: &str, fields: &[&str]) {
    assert_eq!(result["success"], false, "{result}");
    assert_eq!(result["code"], code, "{result}");
    let message = result["message"].as_str().expect("message");
    let failing: Vec<&str> = result["fieldErrors"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(failing, fields, "{result}");
    for f in fields {
        assert!(message.contains(f), "the message names {f}: {message}");
    }
}

async fn every_mutation_refuses(edge: Edge) {
    let api = Api::new(edge);
    let ok = TestReceiver::always(200).await;
    let failing = TestReceiver::always(500).await;
    let register = |url: &str, events: Value, urns: Value| json!({"webhook": {"description": "CRM", "events": events, "url": url, "urns": urns}});
    let a1 = json!(["urn:allthings:app:A1:*"]);

    // registerWebhook
    let r = api
        .mutate(
            "edit-app:A1",
            "registerWebhook",
            REGISTER,
            register("ftp://example.com/", json!(["ticket.created"]), a1.clone()),
        )
        .await;
    assert_refused(&r, "VALIDATION_FAILED", &["url"]);
    let r = api
        .mutate(
            "edit-app:A1",
            "registerWebhook",
            REGISTER,
            register(
                &ok.url,
                json!(["ticket.created", "nope.created"]),
                a1.clone(),
            ),
        )
        .await;
    assert_refused(&r, "VALIDATION_FAILED", &["events[1]"]);
    let r = api
        .mutate(
            "edit-app:A1",
            "registerWebhook",
            REGISTER,
            register(
                &ok.url,
                json!(["ticket.created"]),
                json!(["urn:allthings:app:A2:*"]),
            ),
        )
        .await;
    assert_refused(&r, "FORBIDDEN", &[]);
    assert!(
        r["message"].as_str().unwrap_or_default().contains("A2"),
        "{r}"
    );
    let r = api
        .mutate(
            "edit-app:A1",
            "registerWebhook",
            REGISTER,
            register(&failing.url, json!(["ticket.created"]), a1.clone()),
        )
        .await;
    assert_refused(&r, "ENDPOINT_CHECK_FAILED", &["url"]);
    assert!(
        r["message"].as_str().unwrap_or_default().contains("500"),
        "says what it answered: {r}"
    );
    let r = api
        .mutate(
            "edit-app:A1",
            "registerWebhook",
            REGISTER,
            json!({"webhook": {"description": "CRM", "events": ["ticket.created"], "url": ok.url, "urns": a1, "customHeaders": [{"name": "X-A", "value": "1"}, {"name": "X-A", "value": "2"}]}}),
        )
        .await;
    assert_refused(&r, "VALIDATION_FAILED", &["customHeaders.X-A"]);
    let r = api
        .mutate(
            "edit-app:A1",
            "registerWebhook",
            REGISTER,
            json!({"webhook": {"description": "CRM", "events": ["ticket.created"], "url": ok.url, "urns": a1, "customHeaders": [null]}}),
        )
        .await;
    assert_refused(&r, "VALIDATION_FAILED", &["customHeaders[0]"]);
    assert_eq!(api.count_webhooks("A1").await, 0, "nothing was saved");

    // A webhook of App A1 and one of App A2.
    let mine = api.register(&ok.url, &["urn:allthings:app:A1:*"]).await;
    let theirs = api.register(&ok.url, &["urn:allthings:app:A2:*"]).await;
    let unknown = WebhookId::generate().to_string();

    // updateWebhook
    for id in [&unknown, &theirs, &"not-an-id".to_owned()] {
        let r = api
            .mutate(
                "edit-app:A1",
                "updateWebhook",
                UPDATE,
                json!({"id": id, "webhook": {"description": "x"}}),
            )
            .await;
        assert_refused(&r, "NOT_FOUND", &[]);
    }
    let r = api
        .mutate(
            "edit-app:A1",
            "updateWebhook",
            UPDATE,
            json!({"id": mine, "webhook": {"url": "not a url", "events": ["nope.created"]}}),
        )
        .await;
    assert_refused(&r, "VALIDATION_FAILED", &["url", "events[0]"]);
    let r = api
        .mutate("edit-app:A1", "updateWebhook", UPDATE, json!({"id": mine, "webhook": {"urns": ["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"]}}))
        .await;
    assert_refused(&r, "FORBIDDEN", &[]);
    let r = api
        .mutate(
            "edit-app:A1",
            "updateWebhook",
            UPDATE,
            json!({"id": mine, "webhook": {"url": failing.url}}),
        )
        .await;
    assert_refused(&r, "ENDPOINT_CHECK_FAILED", &["url"]);
    let r = api
        .mutate(
            "edit-app:A1",
            "updateWebhook",
            UPDATE,
            json!({"id": mine, "webhook": {"enabled": false}, "v": 7}),
        )
        .await;
    assert_refused(&r, "PRECONDITION_FAILED", &[]);
    let r = api
        .mutate(
            "edit-app:A1",
            "updateWebhook",
            UPDATE,
            json!({"id": mine, "webhook": {"description": "CRM 2"}, "v": 1}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["webhook"]["version"], 2);
    assert_eq!(
        r["webhook"]["secret"],
        Value::Null,
        "an update shows no secret"
    );
    let r = api
        .mutate(
            "edit-app:A1",
            "updateWebhook",
            UPDATE,
            json!({"id": mine, "webhook": {"customHeaders": [{"name": "X-Api-Key", "value": "k1"}]}}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        r["webhook"]["customHeaders"],
        json!([{"name": "X-Api-Key", "value": "k1"}])
    );

    // rotateWebhookSecret, testWebhook, deleteWebhook: unknown and foreign ids are not found.
    for (field, query) in [
        ("rotateWebhookSecret", ROTATE),
        ("testWebhook", TEST),
        ("deleteWebhook", DELETE),
    ] {
        for id in [&unknown, &theirs] {
            let r = api
                .mutate("edit-app:A1", field, query, json!({"id": id}))
                .await;
            assert_refused(&r, "NOT_FOUND", &[]);
        }
    }
    // redeliverWebhookDelivery: an unknown delivery, another App's webhook.
    let delivery = DeliveryId::for_pair(&EventId::generate(), &WebhookId::generate()).to_string();
    for id in [&mine, &theirs] {
        let r = api
            .mutate(
                "edit-app:A1",
                "redeliverWebhookDelivery",
                REDELIVER,
                json!({"id": id, "d": delivery}),
            )
            .await;
        assert_refused(&r, "NOT_FOUND", &[]);
    }

    // What they do when allowed.
    let r = api
        .mutate(
            "edit-app:A1",
            "rotateWebhookSecret",
            ROTATE,
            json!({"id": mine}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert!(
        r["webhook"]["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{r}"
    );
    let r = api
        .mutate("edit-app:A1", "testWebhook", TEST, json!({"id": mine}))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert!(
        r["delivery"]["deliveryId"]
            .as_str()
            .is_some_and(|d| d.starts_with("dl_")),
        "{r}"
    );
    let r = api
        .mutate("edit-app:A1", "deleteWebhook", DELETE, json!({"id": mine}))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["webhook"]["id"], mine.as_str());
    let r = api
        .mutate("edit-app:A1", "deleteWebhook", DELETE, json!({"id": mine}))
        .await;
    assert_refused(&r, "NOT_FOUND", &[]);
    assert_eq!(
        api.count_webhooks("A2").await,
        1,
        "the other App's webhook is untouched"
    );

    // Queries: another App's webhook is null; listing it needs edit-app there.
    let r = api
        .gql(
            "edit-app:A1",
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({"id": theirs}),
        )
        .await;
    assert_eq!(r["data"]["webhook"], Value::Null, "{r}");
    let r = api
        .gql(
            "edit-app:A1",
            "{ webhooks(filter: {appId: \"A2\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
    let r = api
        .gql("edit-app:A1", "{ webhooks { totalCount } }", json!({}))
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{r}");
}

#[tokio::test]
async fn every_mutation_refuses_bad_input_foreign_apps_and_unknown_ids() {
    every_mutation_refuses(Edge::Direct).await;
}

#[tokio::test]
async fn every_mutation_refuses_through_the_lambda_edge() {
    every_mutation_refuses(Edge::Lambda).await;
}

/// The same input fails on the same fields over REST and GraphQL (under the documented names:
/// REST's `name` is `description`, `eventTypes` is `events`).
#[tokio::test]
async fn graphql_names_exactly_the_fields_rest_names() {
    let api = Api::new(Edge::Direct);
    let rest = json!({
        "name": "", "url": "https://user:pw@example.com/", "eventTypes": ["ticket.created", "nope.x"],
        "urns": ["urn:allthings:app:A1:*", "urn:other:app:A1:*"],
        "customHeaders": {"X-Hookline-Id": "1", "Bad Name": "2"}
    });
    let a = api
        .post("/v1/webhooks", Some("edit-app:*"), &rest.to_string())
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    let rest_fields: Vec<String> = a.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| hookline_api::graphql::graphql_field(e["field"].as_str().expect("field")))
        .collect();
    assert!(rest_fields.len() >= 5, "{rest_fields:?}");

    let r = api
        .mutate(
            "edit-app:*",
            "registerWebhook",
            REGISTER,
            json!({"webhook": {
                "description": "", "url": "https://user:pw@example.com/", "events": ["ticket.created", "nope.x"],
                "urns": ["urn:allthings:app:A1:*", "urn:other:app:A1:*"],
                "customHeaders": [{"name": "X-Hookline-Id", "value": "1"}, {"name": "Bad Name", "value": "2"}]
            }}),
        )
        .await;
    let fields: Vec<&str> = rest_fields.iter().map(String::as_str).collect();
    assert_refused(&r, "VALIDATION_FAILED", &fields);
    let messages: Vec<&Value> = r["fieldErrors"]
        .as_array()
        .expect("list")
        .iter()
        .map(|f| &f["message"])
        .collect();
    let rest_messages: Vec<&Value> = a.body["errors"]
        .as_array()
        .expect("list")
        .iter()
        .map(|f| &f["message"])
        .collect();
    assert_eq!(messages, rest_messages, "the same words too");
}

async fn a_relay_walk_over_25_webhooks(edge: Edge) {
    let api = Api::new(edge);
    let ok = TestReceiver::always(200).await;
    let mut created = Vec::new();
    for _ in 0..25 {
        created.push(api.register(&ok.url, &["urn:allthings:app:A1:*"]).await);
    }
    // One in another App, which the walk must not show.
    api.register(&ok.url, &["urn:allthings:app:A9:*"]).await;
    let query = "query($after: String) { webhooks(filter: {appId: \"A1\"}, first: 10, after: $after) { totalCount edges { cursor node { id } } nodes { id } pageInfo { startCursor endCursor hasNextPage hasPreviousPage } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = Vec::new();
    loop {
        let r = api.gql("edit-app:A1", query, json!({"after": after})).await;
        let conn = r["data"]["webhooks"].clone();
        assert_eq!(conn["totalCount"], 25, "{r}");
        let edges = conn["edges"].as_array().expect("edges").clone();
        let info = &conn["pageInfo"];
        assert_eq!(info["startCursor"], edges[0]["cursor"]);
        assert_eq!(info["endCursor"], edges[edges.len() - 1]["cursor"]);
        assert_eq!(info["hasPreviousPage"], !after.is_null());
        let nodes: Vec<&Value> = edges.iter().map(|e| &e["node"]).collect();
        assert_eq!(
            conn["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .collect::<Vec<_>>(),
            nodes
        );
        seen.extend(
            nodes
                .iter()
                .map(|n| n["id"].as_str().expect("id").to_owned()),
        );
        pages.push(edges.len());
        if info["hasNextPage"] == false {
            break;
        }
        after = info["endCursor"].clone();
        assert!(pages.len() < 5, "the walk ends");
    }
    assert_eq!(pages, [10, 10, 5]);
    assert_eq!(seen, created, "every webhook once, oldest first");

    // A filter on top: disabled ones only.
    for id in &created[..3] {
        let r = api
            .mutate(
                "edit-app:A1",
                "updateWebhook",
                UPDATE,
                json!({"id": id, "webhook": {"enabled": false}}),
            )
            .await;
        assert_eq!(r["success"], true, "{r}");
    }
    let r = api
        .gql(
            "edit-app:A1",
            "{ webhooks(filter: {appId: \"A1\", enabled: false}, first: 2) { totalCount nodes { id enabled } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    let conn = &r["data"]["webhooks"];
    assert_eq!(conn["totalCount"], 3, "{r}");
    assert_eq!(conn["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);

    // Cursors and page sizes that are not ours are refused, not guessed at.
    for args in ["first: 0", "first: 101", "after: \"nope\""] {
        let r = api
            .gql(
                "edit-app:A1",
                &format!("{{ webhooks(filter: {{appId: \"A1\"}}, {args}) {{ totalCount }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{args}: {r}"
        );
    }
}

#[tokio::test]
async fn a_relay_pagination_walk_over_25_webhooks() {
    a_relay_walk_over_25_webhooks(Edge::Direct).await;
}

#[tokio::test]
async fn a_relay_pagination_walk_through_the_lambda_edge() {
    a_relay_walk_over_25_webhooks(Edge::Lambda).await;
}

fn attempt(webhook: &str, n: u32, status: AttemptStatus, at: time::OffsetDateTime) -> Attempt {
    let webhook = WebhookId::parse(webhook).expect("id");
    let event = EventId::generate();
    Attempt {
        attempt_id: ulid::Ulid::from_datetime(at.into()).to_string(),
        delivery_id: DeliveryId::for_pair(&event, &webhook),
        webhook_id: webhook,
        event_id: event,
        app_id: None,
        event_type: None,
        attempt: n,
        at,
        status,
        response_status: (status != AttemptStatus::Retrying).then_some(503),
        error: (status == AttemptStatus::Retrying).then(|| "timed out after 10s".to_owned()),
        latency_ms: 42,
        response_excerpt: "busy".into(),
        next_retry_at: (status == AttemptStatus::Retrying)
            .then_some(at + time::Duration::seconds(30)),
        backfill: false,
    }
}

#[tokio::test]
async fn deliveries_page_newest_first_with_each_attempts_result() {
    let api = Api::new(Edge::Direct);
    let ok = TestReceiver::always(200).await;
    let id = api.register(&ok.url, &["urn:allthings:app:A1:*"]).await;
    let now = time::OffsetDateTime::now_utc();
    let keep = now + time::Duration::days(1);
    for i in 0..5u32 {
        let status = if i % 2 == 0 {
            AttemptStatus::Retrying
        } else {
            AttemptStatus::Failed
        };
        api.db
            .record(
                &attempt(
                    &id,
                    i + 1,
                    status,
                    now - time::Duration::minutes(10 - i64::from(i)),
                ),
                keep,
            )
            .await
            .expect("recorded");
    }
    let query = "query($id: ID!, $after: String, $status: WebhookDeliveryStatus) { webhook(id: $id) { deliveries(first: 2, after: $after, status: $status) { totalCount edges { cursor node { id deliveryId eventId attempt status createdAt nextRetryAt result { statusCode durationMs responseExcerpt error errorKind } } } pageInfo { endCursor hasNextPage hasPreviousPage } } } }";
    let r = api.gql("edit-app:A1", query, json!({"id": id})).await;
    let conn = &r["data"]["webhook"]["deliveries"];
    assert_eq!(conn["totalCount"], 5, "{r}");
    let first = &conn["edges"][0]["node"];
    assert_eq!(first["attempt"], 5, "newest first: {r}");
    assert_eq!(first["status"], "RETRYING");
    assert_eq!(first["result"]["errorKind"], "TIMEOUT");
    assert_eq!(first["result"]["statusCode"], Value::Null);
    assert!(first["nextRetryAt"].is_string());
    let second = &conn["edges"][1]["node"];
    assert_eq!(second["status"], "FAILED");
    assert_eq!(second["result"]["statusCode"], 503);
    assert_eq!(second["result"]["durationMs"], 42);
    assert_eq!(second["result"]["responseExcerpt"], "busy");
    assert_eq!(second["result"]["errorKind"], Value::Null);
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);

    let r = api
        .gql(
            "edit-app:A1",
            query,
            json!({"id": id, "after": conn["pageInfo"]["endCursor"]}),
        )
        .await;
    let next = &r["data"]["webhook"]["deliveries"];
    assert_eq!(next["edges"][0]["node"]["attempt"], 3, "{r}");
    assert_eq!(next["pageInfo"]["hasPreviousPage"], true);

    let r = api
        .gql("edit-app:A1", query, json!({"id": id, "status": "FAILED"}))
        .await;
    let failed = &r["data"]["webhook"]["deliveries"];
    assert_eq!(failed["totalCount"], 2, "{r}");
    assert!(failed["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .all(|e| e["node"]["status"] == "FAILED"));

    // The delivery it lists can be sent again once its event is in the event log; without
    // the event, the refusal says so.
    let delivery = first["deliveryId"].as_str().expect("delivery");
    let r = api
        .mutate(
            "edit-app:A1",
            "redeliverWebhookDelivery",
            REDELIVER,
            json!({"id": id, "d": delivery}),
        )
        .await;
    assert_eq!(r["code"], "CONFLICT", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer in the event log"),
        "{r}"
    );
}

#[tokio::test]
async fn the_catalog_lists_every_registerable_event() {
    let api = Api::new(Edge::Direct);
    let r = api
        .gql(
            "edit-app:A1",
            "{ registerableWebhooks { namespace name description example } }",
            json!({}),
        )
        .await;
    let list = r["data"]["registerableWebhooks"].as_array().expect("list");
    assert!(list.len() >= 10, "{r}");
    let created = list
        .iter()
        .find(|e| e["name"] == "ticket.created")
        .expect("ticket.created");
    assert_eq!(created["namespace"], "ticket");
    assert!(serde_json::from_str::<Value>(created["example"].as_str().expect("example")).is_ok());
}

/// The HTTP side: 401 without a token, problems for what is not one GraphQL request, 405 for
/// GET, the body limit; and the depth and complexity limits, with introspection on.
#[tokio::test]
async fn limits_and_refusals_at_the_http_edge() {
    let api = Api::new(Edge::Direct);
    let query = json!({"query": "{ registerableWebhooks { name } }"}).to_string();
    for path in ["/graphql", "/"] {
        let a = api.post(path, None, &query).await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert_eq!(a.content_type.as_deref(), Some("application/problem+json"));
    }
    let a = api
        .request(Method::GET, "/graphql", Some("edit-app:A1"), "")
        .await;
    assert_eq!(a.status, 405, "{}", a.body);
    // A browser opening the root lands on the console.
    let a = api.request(Method::GET, "/", None, "").await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = api
        .post(
            "/graphql",
            Some("edit-app:A1"),
            &format!("[{query},{query}]"),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("batching is off"),
        "{}",
        a.body
    );
    let a = api
        .post("/graphql", Some("edit-app:A1"), "{\"query\": 5}")
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let big = json!({"query": format!("{{ registerableWebhooks {{ name }} }} # {}", "x".repeat(300 * 1024))});
    let a = api
        .post("/graphql", Some("edit-app:A1"), &big.to_string())
        .await;
    assert_eq!(a.status, 413, "{}", a.body);

    // Too deep.
    let deep = "{ webhooks(filter: {appId: \"A1\"}) { edges { node { deliveries(first: 20) { edges { node { result { error } } } } } } } }";
    let nested = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} }} }} }} }} }}",
        "ofType { ".repeat(13) + "name" + &" }".repeat(13)
    );
    let r = api.gql("edit-app:A1", &nested, json!({})).await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nested too deep"),
        "{r}"
    );
    // Too complex: 100 webhooks with 100 deliveries each.
    let wide = "{ webhooks(filter: {appId: \"A1\"}, first: 100) { nodes { deliveries(first: 100) { nodes { id status } } } } }";
    let r = api.gql("edit-app:A1", wide, json!({})).await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too complex"),
        "{r}"
    );
    let r = api.gql("edit-app:A1", deep, json!({})).await;
    assert!(r.get("errors").is_none(), "an ordinary query passes: {r}");

    // The standard introspection query (graphql-js's getIntrospectionQuery) is answered.
    let r = api.gql("edit-app:A1", INTROSPECTION, json!({})).await;
    assert!(r.get("errors").is_none(), "{r}");
    let types = r["data"]["__schema"]["types"].as_array().expect("types");
    for name in [
        "Webhook",
        "WebhooksConnection",
        "WebhookEdge",
        "WebhookDeliveriesConnection",
        "WebhookDeliveryEdge",
        "WebhookDelivery",
        "WebhookDeliveryResult",
        "WebhookDeliveryStatus",
        "RegisterableWebhookDescription",
        "HttpHeader",
        "PageInfo",
        "WebhookMutationResult",
        "RegisterWebhookInput",
        "UpdateWebhookInput",
        "WebhooksFilter",
    ] {
        assert!(
            types.iter().any(|t| t["name"] == name),
            "the schema has {name}"
        );
    }
}

const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

/// The checked-in `functions/api/schema.graphql` is the served schema.
#[test]
fn the_checked_in_sdl_is_the_served_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/api/schema.graphql");
    let served = hookline_api::graphql::sdl();
    if std::env::var_os("HOOKLINE_BLESS").is_some() {
        std::fs::write(&path, &served).expect("write schema.graphql");
    }
    let checked_in = std::fs::read_to_string(&path).expect("functions/api/schema.graphql");
    assert!(
        checked_in == served,
        "functions/api/schema.graphql differs from the served schema; rewrite it with: \
         HOOKLINE_BLESS=1 cargo test -p hookline-tests --test it graphql::the_checked_in_sdl"
    );
    for name in [
        "registerWebhook(webhook: RegisterWebhookInput!): WebhookMutationResult!",
        "type WebhookMutationResult",
        "totalCount: Int!",
    ] {
        assert!(served.contains(name), "the SDL has {name}");
    }
}

const PROBE: &str = "mutation($url: String!, $h: [HttpHeaderInput]) { probeWebhookUrl(url: $url, customHeaders: $h) { code message success fieldErrors { field message } probe { ok method result { statusCode durationMs responseExcerpt error errorKind } } } }";

/// `probeWebhookUrl` checks an endpoint before registering it, as the check on save does.
#[tokio::test]
async fn probing_a_url_before_registering_it() {
    let api = Api::new(Edge::Direct);
    let ok = TestReceiver::always(200).await;
    let failing = TestReceiver::always(500).await;
    let r = api
        .mutate(
            "edit-app:A1",
            "probeWebhookUrl",
            PROBE,
            json!({"url": ok.url, "h": [{"name": "X-Api-Key", "value": "k1"}]}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["probe"]["ok"], true);
    assert_eq!(r["probe"]["method"], "HEAD");
    assert_eq!(r["probe"]["result"]["statusCode"], 200);
    assert_eq!(
        ok.requests()[0].header("x-api-key"),
        Some("k1"),
        "the headers go along"
    );

    let r = api
        .mutate(
            "edit-app:A1",
            "probeWebhookUrl",
            PROBE,
            json!({"url": failing.url}),
        )
        .await;
    assert_eq!(r["success"], true, "the check ran: {r}");
    assert_eq!(r["probe"]["ok"], false);
    assert_eq!(r["probe"]["method"], "POST");
    assert_eq!(r["probe"]["result"]["statusCode"], 500);
    assert!(
        r["message"].as_str().unwrap_or_default().contains("500"),
        "{r}"
    );

    // Nothing listens on a closed port: no answer, and why.
    let closed = format!("http://127.0.0.1:{}/", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    });
    let r = api
        .mutate(
            "edit-app:A1",
            "probeWebhookUrl",
            PROBE,
            json!({"url": closed}),
        )
        .await;
    assert_eq!(r["probe"]["ok"], false, "{r}");
    assert_eq!(r["probe"]["result"]["statusCode"], Value::Null);
    assert_eq!(r["probe"]["result"]["errorKind"], "CONNECT", "{r}");

    let r = api
        .mutate(
            "edit-app:A1",
            "probeWebhookUrl",
            PROBE,
            json!({"url": "ftp://example.com/", "h": [{"name": "Bad Name", "value": "1"}]}),
        )
        .await;
    assert_refused(&r, "VALIDATION_FAILED", &["url", "customHeaders.Bad Name"]);
    let r = api
        .mutate(
            "publish-events:A1",
            "probeWebhookUrl",
            PROBE,
            json!({"url": ok.url}),
        )
        .await;
    assert_refused(&r, "FORBIDDEN", &[]);
}

/// `updateWebhook` with `enabled` is the same lifecycle change as REST's enable/disable, and
/// a webhook shows why it is disabled and where it is suspended.
#[tokio::test]
async fn enabled_disabled_and_suspended_show_through_graphql() {
    let api = Api::new(Edge::Direct);
    let ok = TestReceiver::always(200).await;
    let id = api
        .register(
            &format!("{}/hook", ok.url),
            &["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"],
        )
        .await;
    const STATE: &str = "mutation($id: ID!, $webhook: UpdateWebhookInput!) { updateWebhook(id: $id, webhook: $webhook) { success webhook { enabled disabledReason disabledAt lastError suspended { appId reason since } } } }";
    let off = api
        .mutate(
            "edit-app:*",
            "updateWebhook",
            STATE,
            json!({"id": id, "webhook": {"enabled": false}}),
        )
        .await;
    assert_eq!(off["webhook"]["enabled"], false, "{off}");
    assert_eq!(off["webhook"]["disabledReason"], "manual");
    assert!(off["webhook"]["disabledAt"].is_string());
    let on = api
        .mutate(
            "edit-app:*",
            "updateWebhook",
            STATE,
            json!({"id": id, "webhook": {"enabled": true}}),
        )
        .await;
    assert_eq!(on["webhook"]["enabled"], true, "{on}");
    assert_eq!(on["webhook"]["disabledReason"], Value::Null);
    assert_eq!(on["webhook"]["suspended"], json!([]));

    // A failure run shows on the webhook.
    let wid = WebhookId::parse(&id).expect("an id");
    for _ in 0..2 {
        api.db
            .record_failure(
                &wid,
                time::OffsetDateTime::now_utc(),
                "the endpoint answered 500",
            )
            .await
            .expect("record")
            .expect("there");
    }
    let r = api
        .gql(
            "edit-app:*",
            "query($id: ID!) { webhook(id: $id) { failing { since failures lastError } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(r["data"]["webhook"]["failing"]["failures"], 2, "{r}");
    assert_eq!(
        r["data"]["webhook"]["failing"]["lastError"],
        "the endpoint answered 500"
    );
    assert!(r["data"]["webhook"]["failing"]["since"].is_string());

    // The platform revokes the owner's ("tester") grant on A2.
    let revoked = api
        .post(
            "/v1/grants/revoke",
            Some("manage-grants:*"),
            &json!({"sub": "tester", "appId": "A2"}).to_string(),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let r = api
        .gql(
            "edit-app:*",
            "query($id: ID!) { webhook(id: $id) { enabled suspended { appId reason since } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(r["data"]["webhook"]["enabled"], true, "{r}");
    assert_eq!(r["data"]["webhook"]["suspended"][0]["appId"], "A2", "{r}");
    assert_eq!(
        r["data"]["webhook"]["suspended"][0]["reason"],
        "permission revoked"
    );
    // And it may not register more there until restored.
    let refused = api
        .mutate(
            "edit-app:*",
            "registerWebhook",
            REGISTER,
            json!({"webhook": {"description": "more", "url": format!("{}/more", ok.url), "events": ["*"], "urns": ["urn:allthings:app:A2:*"]}}),
        )
        .await;
    assert_refused(&refused, "FORBIDDEN", &[]);
}

#[tokio::test]
async fn subscription_rules_register_show_update_and_refuse_through_graphql() {
    let api = Api::new(Edge::Direct);
    let ok = TestReceiver::always(200).await;
    const RULES: &str = "filter retry { schedule maxAttempts } rateLimit { perSecond } ordering";
    let register = format!("mutation($webhook: RegisterWebhookInput!) {{ registerWebhook(webhook: $webhook) {{ success fieldErrors {{ field message }} webhook {{ id {RULES} }} }} }}");
    let r = api
        .mutate(
            "edit-app:*",
            "registerWebhook",
            &register,
            json!({"webhook": {"description": "rules", "url": format!("{}/rules", ok.url), "events": ["ticket.*"], "appId": "A1",
                "filter": {"data": {"priority": ["high"]}},
                "retry": {"schedule": ["30s", "5m"], "maxAttempts": 4},
                "rateLimit": {"perSecond": 10},
                "ordering": "PER_URN"}}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let w = &r["webhook"];
    assert_eq!(w["filter"], json!({"data": {"priority": ["high"]}}));
    assert_eq!(
        w["retry"],
        json!({"schedule": ["30s", "5m"], "maxAttempts": 4})
    );
    assert_eq!(w["rateLimit"], json!({"perSecond": 10}));
    assert_eq!(w["ordering"], "PER_URN");
    let id = w["id"].as_str().expect("id").to_owned();

    // null removes a rule; an absent field keeps it.
    let update = format!("mutation($id: ID!, $webhook: UpdateWebhookInput!) {{ updateWebhook(id: $id, webhook: $webhook) {{ success code message fieldErrors {{ field message }} webhook {{ {RULES} }} }} }}");
    let r = api
        .mutate(
            "edit-app:*",
            "updateWebhook",
            &update,
            json!({"id": id, "webhook": {"filter": null, "rateLimit": null, "ordering": "NONE"}}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["webhook"]["filter"], Value::Null);
    assert_eq!(r["webhook"]["rateLimit"], Value::Null);
    assert_eq!(r["webhook"]["ordering"], "NONE");
    assert_eq!(r["webhook"]["retry"]["maxAttempts"], 4, "kept: {r}");

    // Bad rules are refused with the same paths REST names.
    let r = api
        .mutate(
            "edit-app:*",
            "updateWebhook",
            &update,
            json!({"id": id, "webhook": {"filter": {"data": {"n": [{"numeric": ["<", "x"]}]}}, "retry": {"schedule": ["soon"]}, "rateLimit": {"perSecond": 0}}}),
        )
        .await;
    assert_refused(
        &r,
        "VALIDATION_FAILED",
        &[
            "filter.data.n[0].numeric",
            "retry.schedule[0]",
            "rateLimit.perSecond",
        ],
    );
}

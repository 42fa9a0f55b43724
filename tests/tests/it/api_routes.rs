//! The REST API over the embedded store: authorization table, validation on save, errors and
//! limits, concurrency, secret rotation, and the OpenAPI document against the router.

use std::time::Duration;

use bytes::Bytes;
use hookline_api::auth::Caller;
use hookline_api::settings::Settings;
use hookline_api::Api;
use hookline_core::adapters::sqlite::Database;
use hookline_core::auth::Principal;
use hookline_tests::receiver::{Reply, TestReceiver};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

fn router_with(settings: Settings) -> (Api, Database) {
    hookline_tests::embedded_api(settings)
}

fn local_settings() -> Settings {
    hookline_tests::local_settings()
}

fn who(permissions: &str) -> Caller {
    Caller::Principal(Principal::from_claims(
        "tester",
        Some(&Value::String(permissions.into())),
    ))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn call_raw(
    router: &Api,
    method: Method,
    path: &str,
    caller: Caller,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    let response = router
        .handle(builder.body(body).expect("request"), caller)
        .await;
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).expect("JSON body")
    };
    if parts.status.is_client_error() || parts.status.is_server_error() {
        assert_eq!(
            parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "errors are problem+json: {body}"
        );
        assert_eq!(body["status"], parts.status.as_u16(), "{body}");
    }
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn call(
    router: &Api,
    method: Method,
    path: &str,
    caller: Caller,
    body: Option<Value>,
) -> Answer {
    let (headers, bytes): (&[(&str, &str)], Bytes) = match body {
        Some(b) => (
            &[("content-type", "application/json")],
            Bytes::from(b.to_string()),
        ),
        None => (&[], Bytes::new()),
    };
    call_raw(router, method, path, caller, headers, bytes).await
}

fn new_webhook(url: &str, urns: Option<&[&str]>) -> Value {
    let mut body =
        json!({"name": "CRM", "url": url, "eventTypes": ["ticket.created", "booking.*"]});
    if let Some(urns) = urns {
        body["urns"] = json!(urns);
    }
    body
}

async fn create(router: &Api, url: &str, urns: &[&str]) -> String {
    let a = call(
        router,
        Method::POST,
        "/v1/webhooks",
        who("edit-app:*"),
        Some(new_webhook(url, Some(urns))),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().expect("id").to_owned()
}

async fn count(router: &Api, app: &str) -> usize {
    let a = call(
        router,
        Method::GET,
        &format!("/v1/webhooks?appId={app}"),
        who("edit-app:*"),
        None,
    )
    .await;
    a.body["items"].as_array().expect("items").len()
}

#[tokio::test]
async fn every_route_answers_401_403_404_or_2xx_by_permission() {
    let receiver = TestReceiver::always(200).await;
    let (router, _db) = router_with(local_settings());
    let url = format!("{}/hook", receiver.url);
    let none = || Caller::Anonymous;
    let wrong = || who("edit-app:B9");
    let right = || who("edit-app:A1");
    // Right for A1, missing A2: the "several Apps with one missing" caller.
    let partial = || who("edit-app:A1");
    type Case = (
        &'static str,
        Method,
        fn(&str, &str) -> (String, Option<Value>),
        [u16; 4],
    );
    let patch = json!({"name": "renamed"});
    let hour_ago = hookline_core::timestamp::rfc3339(
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    );
    let cases: Vec<Case> = vec![
        (
            "create",
            Method::POST,
            |_, _| ("/v1/webhooks?appId=A1".into(), None),
            [401, 403, 201, 403],
        ),
        (
            "list",
            Method::GET,
            |_, _| ("/v1/webhooks?appId=A1".into(), None),
            [401, 403, 200, 200],
        ),
        (
            "get",
            Method::GET,
            |a, _| (format!("/v1/webhooks/{a}"), None),
            [401, 404, 200, 404],
        ),
        (
            "update",
            Method::PATCH,
            |a, _| (format!("/v1/webhooks/{a}"), None),
            [401, 404, 200, 404],
        ),
        (
            "delete",
            Method::DELETE,
            |a, _| (format!("/v1/webhooks/{a}"), None),
            [401, 404, 204, 404],
        ),
        (
            "rotate",
            Method::POST,
            |a, _| (format!("/v1/webhooks/{a}/secret/rotate"), None),
            [401, 404, 200, 404],
        ),
        (
            "probe",
            Method::POST,
            |_, _| ("/v1/webhooks/test".into(), None),
            [401, 200, 200, 200],
        ),
        (
            "send test event",
            Method::POST,
            |a, _| (format!("/v1/webhooks/{a}/test"), None),
            [401, 404, 202, 404],
        ),
        (
            "delivery log",
            Method::GET,
            |a, _| (format!("/v1/webhooks/{a}/deliveries"), None),
            [401, 404, 200, 404],
        ),
        (
            // The right caller gets 404 too: no such delivery exists yet.
            "redeliver",
            Method::POST,
            |a, _| {
                (
                    format!(
                        "/v1/webhooks/{a}/deliveries/dl_00000000000000000000000000000000/redeliver"
                    ),
                    None,
                )
            },
            [401, 404, 404, 404],
        ),
        (
            // A dry run: the count, no job.
            "recover",
            Method::POST,
            |a, _| (format!("/v1/webhooks/{a}/recover"), None),
            [401, 404, 200, 404],
        ),
        (
            // No such job, for anyone.
            "job",
            Method::GET,
            |_, _| ("/v1/jobs/job_01JDK7Z3Q8W6V0N4B2C9D5E7F0".into(), None),
            [401, 404, 404, 404],
        ),
        (
            // manage-apps is the platform's: no App's editor may purge it.
            "purge app",
            Method::DELETE,
            |_, _| ("/v1/apps/A1".into(), None),
            [401, 403, 403, 403],
        ),
        (
            // edit-app never includes publish-events: an integrator cannot inject events.
            "publish event",
            Method::POST,
            |_, _| ("/v1/events".into(), None),
            [401, 403, 403, 403],
        ),
        (
            "event types",
            Method::GET,
            |_, _| ("/v1/event-types".into(), None),
            [200, 200, 200, 200],
        ),
        (
            "openapi",
            Method::GET,
            |_, _| ("/v1/openapi.json".into(), None),
            [200, 200, 200, 200],
        ),
    ];
    for (name, method, target, expected) in cases {
        for (i, caller) in [none(), wrong(), right(), partial()]
            .into_iter()
            .enumerate()
        {
            let a1 = create(&router, &url, &["urn:allthings:app:A1:*"]).await;
            let a1_a2 = create(
                &router,
                &url,
                &["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"],
            )
            .await;
            // The partial caller is pointed at the webhook naming an App it lacks.
            let id = if i == 3 { &a1_a2 } else { &a1 };
            let (path, _) = target(id, "");
            let body = match name {
                "create" if i == 3 => Some(new_webhook(
                    &url,
                    Some(&["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"]),
                )),
                "create" => Some(new_webhook(&url, None)),
                "update" => Some(patch.clone()),
                "probe" => Some(json!({"url": url})),
                "recover" => Some(json!({"since": hour_ago, "dryRun": true})),
                "publish event" => Some(
                    json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:T1", "data": {}}),
                ),
                _ => None,
            };
            let answer = call(&router, method.clone(), &path, caller, body).await;
            assert_eq!(
                answer.status.as_u16(),
                expected[i],
                "{name} as caller #{i}: {}",
                answer.body
            );
            if name == "list" && i == 3 {
                let ids: Vec<&str> = answer.body["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .filter_map(|w| w["id"].as_str())
                    .collect();
                assert!(
                    !ids.contains(&a1_a2.as_str()),
                    "a webhook naming A2 stays invisible to an A1-only caller"
                );
                assert!(ids.contains(&a1.as_str()));
            }
        }
    }
}

#[tokio::test]
async fn creating_scopes_and_reading_back() {
    let receiver = TestReceiver::always(200).await;
    let (router, _db) = router_with(local_settings());
    let url = format!("{}/hook", receiver.url);
    let body = json!({
        "name": "Plumbing tickets", "url": url, "eventTypes": ["ticket.*"],
        "urns": ["urn:allthings:app:A1:ticket:CAT7:*"],
        "customHeaders": {"X-Api-Key": "k1"}
    });
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks",
        who("edit-app:A1"),
        Some(body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let secret = a.body["secret"].as_str().expect("secret shown on create");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(a.headers["etag"], "\"1\"");
    let id = a.body["id"].as_str().expect("id");
    assert_eq!(a.headers["location"], format!("/v1/webhooks/{id}").as_str());
    let got = call(
        &router,
        Method::GET,
        &format!("/v1/webhooks/{id}"),
        who("edit-app:A1"),
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.body.get("secret").is_none(),
        "reads never show the secret"
    );
    assert!(!got.body.to_string().contains(secret));
    assert_eq!(
        got.body["urns"],
        json!(["urn:allthings:app:A1:ticket:CAT7:*"])
    );
    assert_eq!(got.body["customHeaders"], json!({"X-Api-Key": "k1"}));
    // The verification request carried the custom header.
    let head = &receiver.requests()[0];
    assert_eq!(head.method, "HEAD");
    assert_eq!(head.header("x-api-key"), Some("k1"));
}

/// `appId` names the App a webhook is created in; `urns` that leave that App out would create
/// a webhook the App's listing never shows, so the mismatch is refused naming both.
#[tokio::test]
async fn urns_must_name_the_app_given_as_app_id() {
    let receiver = TestReceiver::always(200).await;
    let (router, _db) = router_with(local_settings());
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:*"),
        Some(new_webhook(
            &receiver.url,
            Some(&["urn:allthings:app:A2:*"]),
        )),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["errors"][0]["field"], "appId");
    let said = a.body["errors"][0]["message"].as_str().expect("message");
    assert!(said.contains("A1") && said.contains("A2"), "{said}");
    assert!(
        receiver.requests().is_empty(),
        "nothing was checked or saved"
    );
    // Several Apps, the given one among them: listed under it.
    let both = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:*"),
        Some(new_webhook(
            &receiver.url,
            Some(&["urn:allthings:app:A2:*", "urn:allthings:app:A1:*"]),
        )),
    )
    .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.body);
    assert_eq!(count(&router, "A1").await, 1);
}

/// A caller may choose the signing secret (as Svix allows), so a receiver can know it before
/// the endpoint check; a bad one is refused with the other failing fields.
#[tokio::test]
async fn a_caller_chosen_secret_signs_and_a_bad_one_is_refused() {
    let receiver = TestReceiver::always(200).await;
    let (router, _db) = router_with(local_settings());
    let chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut body = new_webhook(&receiver.url, Some(&["urn:allthings:app:A1:*"]));
    body["secret"] = json!(chosen);
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks",
        who("edit-app:A1"),
        Some(body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["secret"], chosen);
    let mut bad = new_webhook("ftp://nowhere", Some(&["urn:allthings:app:A1:*"]));
    bad["secret"] = json!("whsec_c2hvcnQ=");
    let b = call(
        &router,
        Method::POST,
        "/v1/webhooks",
        who("edit-app:A1"),
        Some(bad),
    )
    .await;
    assert_eq!(b.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", b.body);
    let fields: Vec<&str> = b.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["url", "secret"], "{}", b.body);
    assert!(
        b.body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("https:// or http://"),
        "a deployment that accepts http:// says so: {}",
        b.body
    );
    assert!(
        !b.body.to_string().contains("c2hvcnQ"),
        "the secret is not echoed"
    );
}

#[tokio::test]
async fn endpoints_that_do_not_answer_200_are_refused_with_what_they_said() {
    let (router, db) = router_with(local_settings());
    let failing = TestReceiver::start(|_, _| Reply {
        body: "upstream down".into(),
        ..Reply::status(503)
    })
    .await;
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:A1"),
        Some(new_webhook(&failing.url, None)),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    let detail = a.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("HEAD answered 503")
            && detail.contains("POST answered 503")
            && detail.contains("upstream down"),
        "{detail}"
    );
    assert_eq!(count(&router, "A1").await, 0);

    // HEAD not supported, but the signed POST gets a 200: accepted.
    let post_only =
        TestReceiver::start(|r, _| Reply::status(if r.method == "HEAD" { 405 } else { 200 })).await;
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:A1"),
        Some(new_webhook(&post_only.url, None)),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let post = post_only
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("a POST");
    assert!(post
        .header("webhook-signature")
        .is_some_and(|s| s.starts_with("v1,")));
    let test_event: Value = serde_json::from_slice(&post.body).expect("JSON");
    assert_eq!(test_event["type"], "webhook.test");

    // Nothing listening: refused, and the reason says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:A1"),
        Some(new_webhook(&dead_url, None)),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        a.body["detail"]
            .as_str()
            .expect("detail")
            .contains("could not connect"),
        "{}",
        a.body
    );
    drop(db);
}

#[tokio::test]
async fn slow_endpoints_time_out_after_five_seconds() {
    let (router, _db) = router_with(local_settings());
    let slow = TestReceiver::start(|_, _| Reply {
        delay: Duration::from_secs(7),
        ..Reply::status(200)
    })
    .await;
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:A1"),
        Some(new_webhook(&slow.url, None)),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        a.body["detail"]
            .as_str()
            .expect("detail")
            .contains("timed out"),
        "{}",
        a.body
    );
    let methods: Vec<String> = slow.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods,
        ["HEAD"],
        "one 5 s budget for the whole check: HEAD spent it, so no POST followed"
    );
}

#[tokio::test]
async fn private_targets_are_refused_unless_the_deployment_allows_them() {
    let receiver = TestReceiver::always(200).await;
    let production = Settings {
        allow_http: true,
        ..Settings::default()
    };
    let (router, _db) = router_with(production);
    for url in [
        receiver.url.clone(),
        "http://localhost:9/".into(),
        "http://2130706433/".into(),
        "http://[::ffff:127.0.0.1]/".into(),
    ] {
        let a = call(
            &router,
            Method::POST,
            "/v1/webhooks?appId=A1",
            who("edit-app:A1"),
            Some(new_webhook(&url, None)),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            a.body
        );
        assert_eq!(a.body["errors"][0]["field"], "url");
    }
    let probe = call(
        &router,
        Method::POST,
        "/v1/webhooks/test",
        who("edit-app:A1"),
        Some(json!({"url": receiver.url})),
    )
    .await;
    assert_eq!(
        probe.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        probe.body
    );
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the private address"
    );
}

#[tokio::test]
async fn one_url_per_app_and_event_type_when_the_deployment_says_so() {
    let first = TestReceiver::always(200).await;
    let second = TestReceiver::always(200).await;
    let (router, _db) = router_with(Settings {
        one_url_per_event: true,
        ..local_settings()
    });
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:A1"),
        Some(new_webhook(&first.url, None)),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let clash = json!({"name": "other", "url": second.url, "eventTypes": ["ticket.created"]});
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:A1"),
        Some(clash),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    let elsewhere = json!({"name": "other", "url": second.url, "eventTypes": ["user.registered"]});
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks?appId=A1",
        who("edit-app:A1"),
        Some(elsewhere),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

#[tokio::test]
async fn bad_requests_get_problems_and_change_nothing() {
    let receiver = TestReceiver::always(200).await;
    let (router, _db) = router_with(local_settings());
    let id = create(&router, &receiver.url, &["urn:allthings:app:A1:*"]).await;
    let admin = || who("edit-app:*");
    let json_ct: &[(&str, &str)] = &[("content-type", "application/json")];
    type BadCase<'a> = (
        Method,
        String,
        &'a [(&'a str, &'a str)],
        Bytes,
        u16,
        &'a str,
    );
    let cases: Vec<BadCase<'_>> = vec![
        (
            Method::POST,
            "/v1/webhooks?appId=A1".into(),
            json_ct,
            Bytes::from(r#"{"name":"x","url":"http://a","eventTypes":["*"],"colour":"red"}"#),
            400,
            "unknown field `colour`",
        ),
        (
            Method::POST,
            "/v1/webhooks?appId=A1".into(),
            json_ct,
            Bytes::from("{\n\"name\": \"x\",\n\"url\": }"),
            400,
            "line 3 column",
        ),
        (
            Method::POST,
            "/v1/webhooks?appId=A1".into(),
            json_ct,
            Bytes::from(r#"{"name":5,"url":"http://a","eventTypes":["*"]}"#),
            400,
            "invalid type",
        ),
        (
            Method::POST,
            "/v1/webhooks?appId=A1".into(),
            json_ct,
            Bytes::from(&b"{\"name\":\"\xff\xfe\"}"[..]),
            400,
            "not valid JSON",
        ),
        (
            Method::POST,
            "/v1/webhooks?appId=A1".into(),
            json_ct,
            Bytes::from(vec![b' '; 256 * 1024 + 1]),
            413,
            "256",
        ),
        (
            Method::POST,
            "/v1/webhooks?appId=A1".into(),
            &[("content-type", "text/plain")],
            Bytes::from("{}"),
            415,
            "application/json",
        ),
        (
            Method::POST,
            "/v1/webhooks?appId=A1".into(),
            &[],
            Bytes::from("{}"),
            415,
            "none",
        ),
        (
            Method::GET,
            "/v1/nothing-here".into(),
            &[],
            Bytes::new(),
            404,
            "no route",
        ),
        (
            Method::PUT,
            format!("/v1/webhooks/{id}"),
            json_ct,
            Bytes::from("{}"),
            405,
            "GET, PATCH, DELETE",
        ),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            json_ct,
            Bytes::from(r#"{"urns":["urn:allthings:app:*"]}"#),
            422,
            "never spans Apps",
        ),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            &[("content-type", "application/json"), ("if-match", "\"7\"")],
            Bytes::from(r#"{"name":"x"}"#),
            412,
            "version 1",
        ),
        (
            Method::GET,
            "/v1/webhooks?appId=A1&limit=0".into(),
            &[],
            Bytes::new(),
            400,
            "limit",
        ),
        (
            Method::GET,
            "/v1/webhooks?appId=A1&cursor=garbage".into(),
            &[],
            Bytes::new(),
            400,
            "cursor",
        ),
        (
            Method::GET,
            "/v1/webhooks".into(),
            &[],
            Bytes::new(),
            400,
            "appId",
        ),
        (
            Method::GET,
            "/v1/webhooks/wh_nope".into(),
            &[],
            Bytes::new(),
            404,
            "not found",
        ),
    ];
    for (method, path, headers, body, status, says) in cases {
        let a = call_raw(&router, method.clone(), &path, admin(), headers, body).await;
        assert_eq!(a.status.as_u16(), status, "{method} {path}: {}", a.body);
        assert!(
            a.body["detail"].as_str().expect("detail").contains(says),
            "{method} {path}: {}",
            a.body
        );
        if status == 405 {
            assert_eq!(a.headers["allow"], "GET, PATCH, DELETE");
        }
    }
    assert_eq!(
        count(&router, "A1").await,
        1,
        "no bad request changed the store"
    );
    let got = call(
        &router,
        Method::GET,
        &format!("/v1/webhooks/{id}"),
        admin(),
        None,
    )
    .await;
    assert_eq!(got.body["version"], 1);
    let anon = call(
        &router,
        Method::GET,
        "/v1/webhooks?appId=A1",
        Caller::Anonymous,
        None,
    )
    .await;
    assert_eq!(anon.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn updates_follow_if_match_and_rotation_keeps_the_old_secret_signing() {
    let receiver = TestReceiver::always(200).await;
    let (router, db) = router_with(local_settings());
    let id = create(&router, &receiver.url, &["urn:allthings:app:A1:*"]).await;
    let path = format!("/v1/webhooks/{id}");
    let json_ct = ("content-type", "application/json");
    let a = call_raw(
        &router,
        Method::PATCH,
        &path,
        who("edit-app:A1"),
        &[json_ct, ("if-match", "\"1\"")],
        Bytes::from(r#"{"enabled":false,"urns":["urn:allthings:app:A1:booking:*"]}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["etag"], "\"2\"");
    assert_eq!(a.body["enabled"], false);
    let stale = call_raw(
        &router,
        Method::PATCH,
        &path,
        who("edit-app:A1"),
        &[json_ct, ("if-match", "\"1\"")],
        Bytes::from(r#"{"enabled":true}"#),
    )
    .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    // Moving it to another App needs edit-app there too.
    let moved = call(
        &router,
        Method::PATCH,
        &path,
        who("edit-app:A1"),
        Some(json!({"urns": ["urn:allthings:app:A2:*"]})),
    )
    .await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN, "{}", moved.body);

    let rotated = call(
        &router,
        Method::POST,
        &format!("{path}/secret/rotate"),
        who("edit-app:A1"),
        None,
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    use hookline_core::ports::WebhookStore;
    let stored = db
        .get(&hookline_core::webhook::WebhookId::parse(&id).expect("id"))
        .await
        .expect("get")
        .expect("stored");
    let now = time::OffsetDateTime::now_utc();
    let keys = hookline_tests::test_keys();
    let active = stored.active_secrets(&keys, now).expect("opens");
    assert_eq!(active.len(), 2, "old secret keeps signing");
    assert_eq!(active[0].expose(), new_secret);
    assert!(stored.secrets[1]
        .expires_at
        .is_some_and(|t| t <= now + time::Duration::hours(24)));
    assert!(
        stored
            .active_secrets(&keys, now + time::Duration::hours(25))
            .expect("opens")
            .len()
            == 1
    );

    let deleted = call_raw(
        &router,
        Method::DELETE,
        &path,
        who("edit-app:A1"),
        &[("if-match", "\"1\"")],
        Bytes::new(),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::PRECONDITION_FAILED);
    let deleted = call(&router, Method::DELETE, &path, who("edit-app:A1"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&router, Method::GET, &path, who("edit-app:A1"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn listing_pages_with_a_cursor() {
    let receiver = TestReceiver::always(200).await;
    let (router, _db) = router_with(local_settings());
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create(&router, &receiver.url, &["urn:allthings:app:P1:*"]).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/webhooks?appId=P1&limit=2".to_owned();
    loop {
        let a = call(&router, Method::GET, &path, who("edit-app:P1"), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        seen.extend(
            a.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|w| w["id"].as_str().expect("id").to_owned()),
        );
        match a.body["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/webhooks?appId=P1&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn probing_a_url_reports_status_latency_and_body() {
    let receiver = TestReceiver::start(|r, _| Reply {
        body: format!("hello {}", r.method),
        ..Reply::status(200)
    })
    .await;
    let (router, _db) = router_with(local_settings());
    let a = call(
        &router,
        Method::POST,
        "/v1/webhooks/test",
        who("edit-app:A1"),
        Some(json!({"url": receiver.url, "customHeaders": {"X-Tenant": "t1"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["ok"], true);
    assert_eq!(a.body["status"], 200);
    assert_eq!(a.body["method"], "HEAD");
    assert!(a.body["latencyMs"].is_u64());
    assert_eq!(receiver.requests()[0].header("x-tenant"), Some("t1"));
    let bad = call(
        &router,
        Method::POST,
        "/v1/webhooks/test",
        who("edit-app:A1"),
        Some(json!({"url": receiver.url, "customHeaders": {"X-Hookline-Sig": "x"}})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.body["errors"][0]["field"],
        "customHeaders.X-Hookline-Sig"
    );
    let nobody = call(
        &router,
        Method::POST,
        "/v1/webhooks/test",
        who("publish-events:A1"),
        Some(json!({"url": receiver.url})),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::FORBIDDEN);
}

fn checked_in_openapi() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/api/openapi.json")
}

/// The checked-in `functions/api/openapi.json` is the document generated from the handlers
/// and types: a field or route change that forgets the document fails here.
/// `HOOKLINE_BLESS=1` rewrites the file from the code.
#[test]
fn the_checked_in_openapi_document_is_the_generated_one() {
    let generated = hookline_api::rest::openapi::openapi_json();
    let path = checked_in_openapi();
    if std::env::var_os("HOOKLINE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.json");
    }
    let checked_in = std::fs::read_to_string(&path).expect("functions/api/openapi.json");
    assert!(
        checked_in == generated,
        "functions/api/openapi.json differs from the document generated from the code; \
         rewrite it with: HOOKLINE_BLESS=1 cargo test -p hookline-tests --test it api_routes::the_checked_in_openapi"
    );
    let doc: Value = serde_json::from_str(&generated).expect("OpenAPI is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    for schema in [
        "NewWebhook",
        "WebhookPatch",
        "Webhook",
        "Problem",
        "Attempt",
        "Event",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} is documented"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["NewWebhook"]["required"],
        json!(["name", "eventTypes"]),
        "the request schema comes from the Rust type"
    );
}

/// Every documented operation is served (not the router's 404 or 405), no undocumented method
/// is served on a documented path, and the router serves the generated document.
#[tokio::test]
async fn the_router_serves_every_documented_operation_and_the_document() {
    let (router, _db) = router_with(local_settings());
    let doc: Value = serde_json::from_str(&hookline_api::rest::openapi::openapi_json())
        .expect("OpenAPI is JSON");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{id}", "wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB")
            .replace("{deliveryId}", "dl_00000000000000000000000000000000");
        for method in ["get", "post", "patch", "delete", "put"] {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            if item.get(method).is_none() {
                let a = call(&router, m, &concrete, Caller::Anonymous, None).await;
                assert_eq!(
                    a.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
                continue;
            }
            operations += 1;
            let a = call(&router, m, &concrete, Caller::Anonymous, None).await;
            assert!(
                a.status != StatusCode::METHOD_NOT_ALLOWED
                    && !a.body["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("no route")),
                "{method} {path} is documented but not served: {}",
                a.body
            );
        }
    }
    assert_eq!(operations, 27, "the API's 27 operations are documented");
    let served = call(
        &router,
        Method::GET,
        "/v1/openapi.json",
        Caller::Anonymous,
        None,
    )
    .await;
    assert_eq!(served.status, StatusCode::OK);
    assert!(
        served.body == doc,
        "GET /v1/openapi.json serves another document than the generated one"
    );
}

/// The document validates as OpenAPI 3.1 (openapi-spec-validator, from the test venv).
#[test]
#[ignore = "needs openapi-spec-validator from the test venv: ./tests/run.sh installs it and runs this"]
fn the_openapi_document_validates_as_openapi_3_1() {
    let validator = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv-moto/bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} is missing: run ./tests/run.sh, which installs the test venv",
        validator.display()
    );
    let out = std::process::Command::new(&validator)
        .arg(checked_in_openapi())
        .output()
        .expect("openapi-spec-validator runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "not valid OpenAPI: {said}");
    assert!(said.contains("OK"), "{said}");
}

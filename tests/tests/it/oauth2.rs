//! OAuth2 client credentials against a loopback authorization server and endpoint, on
//! `hookline serve`'s composition: the check on save carries a token; deliveries share one
//! token per expiry (the token requests are counted); a revoked token is refreshed once; a
//! second 401 is the endpoint's final answer; a failing token endpoint is said as such in the
//! attempt log.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use hookline::Local;
use hookline_api::auth::Caller;
use hookline_api::Api;
use hookline_core::auth::Principal;
use hookline_tests::Serving;
use serde_json::{json, Value};

#[derive(Default)]
struct Server {
    /// Token requests: their Basic credentials and form bodies.
    token_requests: Vec<(String, String)>,
    issued: u32,
    revoked: BTreeSet<String>,
    /// Every bearer token is refused.
    refuse_all: bool,
    /// The token endpoint answers 500.
    token_endpoint_down: bool,
    /// Deliveries: the bearer token they carried and what was answered.
    hooks: Vec<(String, u16)>,
}

type Shared = Arc<Mutex<Server>>;

async fn token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let mut s = s.lock().expect("state");
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    s.token_requests
        .push((basic, String::from_utf8_lossy(&body).into_owned()));
    if s.token_endpoint_down {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "temporarily_unavailable"}).to_string(),
        );
    }
    s.issued += 1;
    let t = format!("t{}", s.issued);
    (
        StatusCode::OK,
        json!({"access_token": t, "token_type": "Bearer", "expires_in": 3600}).to_string(),
    )
}

async fn hook(State(s): State<Shared>, headers: HeaderMap) -> StatusCode {
    let mut s = s.lock().expect("state");
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let valid = bearer.starts_with('t') && !s.revoked.contains(&bearer) && !s.refuse_all;
    let status = if valid { 200 } else { 401 };
    s.hooks.push((bearer, status));
    StatusCode::from_u16(status).expect("status")
}

async fn start_server() -> (String, Shared) {
    let state = Shared::default();
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/hook", post(hook).head(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, state)
}

fn caller() -> Caller {
    Caller::Principal(Principal::from_claims(
        "integrator",
        Some(&Value::String("edit-app:A1 publish-events:A1".into())),
    ))
}

async fn call(api: &Api, method: &str, path: &str, body: Value) -> (u16, Value) {
    hookline_tests::call_api(api, caller(), method, path, body).await
}

async fn publish(api: &Api, n: usize) {
    for i in 0..n {
        let (status, body) = call(
            api,
            "POST",
            "/v1/events",
            json!({"type": "ticket.created", "urn": format!("urn:allthings:app:A1:ticket:CAT7:T{i}"), "data": {}}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
}

/// Waits until `done` holds of the server's state (20 s).
async fn until(state: &Shared, what: &str, done: impl Fn(&Server) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&state.lock().expect("state")) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The webhook's attempts, newest first.
async fn attempts(api: &Api, id: &str) -> Vec<Value> {
    let (status, log) = call(
        api,
        "GET",
        &format!("/v1/webhooks/{id}/deliveries"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{log}");
    log["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn deliveries_carry_a_cached_bearer_token_refreshed_once_on_401() {
    let (base, state) = start_server().await;
    let local = Local::open(
        &hookline_tests::temp_db("oauth2"),
        hookline_tests::local_settings(),
        "permissions".into(),
    )
    .await
    .expect("open");
    let api = local.router.clone();
    let serving = Serving::start(local).await;

    // The check on save fetches a token and presents it.
    let (status, created) = call(
        &api,
        "POST",
        "/v1/webhooks?appId=A1",
        json!({"name": "CRM", "url": format!("{base}/hook"), "eventTypes": ["ticket.*"],
               "oauth2": {"tokenUrl": format!("{base}/token"), "clientId": "crm", "clientSecret": "s3cret", "scope": "events:write"}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["oauth2"]["clientId"], "crm");
    assert!(
        !created.to_string().contains("s3cret"),
        "the client secret is never shown: {created}"
    );
    let id = created["id"].as_str().expect("id").to_owned();
    {
        let s = state.lock().expect("state");
        assert_eq!(s.token_requests.len(), 1);
        assert_eq!(
            s.token_requests[0].0, "crm:s3cret",
            "Basic client authentication"
        );
        assert_eq!(
            s.token_requests[0].1,
            "grant_type=client_credentials&scope=events%3Awrite"
        );
        assert!(s
            .hooks
            .iter()
            .any(|(t, status)| t == "t1" && *status == 200));
    }

    // Five deliveries, one token request between them.
    publish(&api, 5).await;
    until(&state, "five deliveries", |s| {
        s.hooks
            .iter()
            .filter(|(t, st)| t == "t2" && *st == 200)
            .count()
            == 5
    })
    .await;
    assert_eq!(state.lock().expect("state").token_requests.len(), 2);

    // A revoked token: one 401, one new token, delivered.
    state.lock().expect("state").revoked.insert("t2".into());
    publish(&api, 1).await;
    until(&state, "a delivery with a new token", |s| {
        s.hooks.iter().any(|(t, st)| t == "t3" && *st == 200)
    })
    .await;
    {
        let s = state.lock().expect("state");
        assert_eq!(s.token_requests.len(), 3, "refreshed once");
        assert_eq!(s.hooks.iter().filter(|(t, _)| t == "t2").count(), 6);
    }

    // Every token refused: the second 401 is the endpoint's answer, final.
    state.lock().expect("state").refuse_all = true;
    publish(&api, 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        if let Some(a) = attempts(&api, &id)
            .await
            .into_iter()
            .find(|a| a["status"] == "failed")
        {
            break a;
        }
        assert!(Instant::now() < deadline, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed["responseStatus"], 401, "{failed}");
    {
        let s = state.lock().expect("state");
        assert_eq!(s.token_requests.len(), 4, "one refresh, not a loop");
        let refused: Vec<_> = s.hooks.iter().filter(|(_, st)| *st == 401).collect();
        assert_eq!(refused.len(), 3, "t2 once, then t3 and t4: {refused:?}");
    }

    // The token endpoint fails: said as such, and retried.
    {
        let mut s = state.lock().expect("state");
        s.refuse_all = false;
        s.token_endpoint_down = true;
        s.revoked.insert("t4".into());
    }
    publish(&api, 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let retrying = loop {
        if let Some(a) = attempts(&api, &id).await.into_iter().find(|a| {
            a["status"] == "retrying"
                && a["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("token endpoint failed"))
        }) {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no attempt said the token endpoint failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let error = retrying["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("answered 500: temporarily_unavailable"),
        "{error}"
    );
    serving.stop().await;
}

#[tokio::test]
async fn a_token_endpoint_that_refuses_the_client_is_said_on_save() {
    let (base, state) = start_server().await;
    state.lock().expect("state").token_endpoint_down = true;
    let (api, _db) = hookline_tests::embedded_api(hookline_tests::local_settings());
    let (status, problem) = call(
        &api,
        "POST",
        "/v1/webhooks?appId=A1",
        json!({"name": "CRM", "url": format!("{base}/hook"), "eventTypes": ["ticket.*"],
               "oauth2": {"tokenUrl": format!("{base}/token"), "clientId": "crm", "clientSecret": "s3cret"}}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("no OAuth2 token"), "{problem}");
    assert!(detail.contains("answered 500"), "{problem}");
    assert!(
        state.lock().expect("state").hooks.is_empty(),
        "no probe without a token"
    );
}

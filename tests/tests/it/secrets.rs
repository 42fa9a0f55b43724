//! No webhook secret appears in any log line or in any list/read response: create, read,
//! list, update, rotate, deliver and test through `hookline serve`'s routes and workers, with
//! every log line (debug level, all crates) captured.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hookline::Local;
use hookline_api::auth::Caller;
use hookline_api::settings::Settings;
use hookline_core::auth::Principal;
use hookline_core::target::TargetPolicy;
use hookline_tests::receiver::TestReceiver;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_or_read_responses() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only global subscriber in the test binary");

    let receiver = TestReceiver::always(200).await;
    let dir = std::env::temp_dir().join(hookline_tests::unique_name("secrets"));
    std::fs::create_dir_all(&dir).expect("dir");
    let settings = Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    };
    let local = Local::open(&dir.join("hookline.db"), settings, "permissions".into())
        .await
        .expect("open");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let workers = local.spawn_workers(stop_rx);
    let caller = || {
        Caller::Principal(Principal::from_claims(
            "dev",
            Some(&serde_json::Value::String(
                "edit-app:A1 publish-events:A1".into(),
            )),
        ))
    };
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let mut b = http::Request::builder().method(method).uri(path);
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        b.body(Bytes::from(body.map(|v| v.to_string()).unwrap_or_default()))
            .expect("request")
    };
    let mut secrets = Vec::new();
    let created = local
        .router
        .handle(
            call(
                "POST",
                "/v1/webhooks?appId=A1",
                Some(serde_json::json!({"name": "CRM", "url": receiver.url, "eventTypes": ["*"]})),
            ),
            caller(),
        )
        .await;
    let created: serde_json::Value = serde_json::from_slice(created.body()).expect("json");
    secrets.push(created["secret"].as_str().expect("secret").to_owned());
    let id = created["id"].as_str().expect("id").to_owned();
    let rotated = local
        .router
        .handle(
            call("POST", &format!("/v1/webhooks/{id}/secret/rotate"), None),
            caller(),
        )
        .await;
    let rotated: serde_json::Value = serde_json::from_slice(rotated.body()).expect("json");
    secrets.push(rotated["secret"].as_str().expect("secret").to_owned());

    // One registered over GraphQL with a secret the caller chose: it must not be logged either.
    let chosen = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let registered = local
        .router
        .handle(
            call(
                "POST",
                "/graphql",
                Some(serde_json::json!({
                    "query": "mutation($w: RegisterWebhookInput!) { registerWebhook(webhook: $w) { success webhook { secret } } }",
                    "variables": {"w": {"description": "GraphQL", "url": receiver.url, "events": ["*"], "appId": "A1", "secret": chosen}}
                })),
            ),
            caller(),
        )
        .await;
    let registered: serde_json::Value = serde_json::from_slice(registered.body()).expect("json");
    assert_eq!(
        registered["data"]["registerWebhook"]["webhook"]["secret"],
        chosen.as_str(),
        "{registered}"
    );
    secrets.push(chosen);

    let graphql_read = serde_json::json!({
        "query": "query($id: ID!) { webhook(id: $id) { secret description } webhooks(filter: {appId: \"A1\"}) { nodes { secret } } }",
        "variables": {"id": id}
    });
    let mut reads = Vec::new();
    for (method, path, body) in [
        ("POST", "/graphql".to_owned(), Some(graphql_read)),
        ("GET", format!("/v1/webhooks/{id}"), None),
        ("GET", "/v1/webhooks?appId=A1".to_owned(), None),
        (
            "PATCH",
            format!("/v1/webhooks/{id}"),
            Some(serde_json::json!({"name": "CRM 2"})),
        ),
        (
            "POST",
            "/v1/events".to_owned(),
            Some(
                serde_json::json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:T1", "data": {}}),
            ),
        ),
        ("POST", format!("/v1/webhooks/{id}/test"), None),
    ] {
        let r = local
            .router
            .handle(call(method, &path, body), caller())
            .await;
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        reads.push(String::from_utf8_lossy(r.body()).into_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while receiver
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "deliveries did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = local
        .router
        .handle(
            call("GET", &format!("/v1/webhooks/{id}/deliveries"), None),
            caller(),
        )
        .await;
    reads.push(String::from_utf8_lossy(log.body()).into_owned());
    stop.send(true).expect("stop");
    for w in workers {
        w.await.expect("worker");
    }

    let logged = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(
        logged.contains("webhook created") && logged.contains("attempt"),
        "logs were captured: {} bytes",
        logged.len()
    );
    for secret in &secrets {
        let key = &secret["whsec_".len()..];
        assert!(!logged.contains(key), "a secret appears in the logs");
        for body in &reads {
            assert!(
                !body.contains(key),
                "a secret appears in a read response: {body}"
            );
        }
    }
    assert!(
        !logged.contains("whsec_"),
        "no secret-looking value is logged"
    );
}

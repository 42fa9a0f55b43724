//! The README's quickstart curl session, run as written against `hookline serve`'s HTTP port
//! (in-process on a free port), with a loopback endpoint in place of `python3 -m http.server`.

use std::path::Path;
use std::time::Duration;

use hookline::Local;
use hookline_api::service::Settings;
use hookline_core::auth::Principal;
use hookline_core::ports::WebhookStore;
use hookline_core::target::TargetPolicy;
use hookline_tests::receiver::TestReceiver;

fn quickstart_session() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README");
    let after = readme
        .split("<!-- quickstart-session")
        .nth(1)
        .expect("README has the quickstart-session marker");
    let block = after
        .split("```sh\n")
        .nth(1)
        .expect("a sh block after the marker");
    block.split("```").next().expect("closed block").to_owned()
}

#[tokio::test]
async fn the_readme_curl_session_works_as_written() {
    let session = quickstart_session();
    assert!(
        session.contains("http://127.0.0.1:8080") && session.contains("http://127.0.0.1:9000/")
    );
    let receiver = TestReceiver::always(200).await;
    let db_path = hookline_tests::temp_db("quickstart");
    let settings = Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    };
    let local = Local::open(&db_path, settings, "permissions".into())
        .await
        .expect("open");
    let dev = Principal::from_claims(
        "dev",
        Some(&serde_json::Value::String(
            "edit-app:* publish-events:*".into(),
        )),
    );
    let token = local.mint_token(&dev, Duration::from_secs(3600));
    let db = local.db.clone();
    let server = hookline_tests::Serving::start(local).await;

    let script = session
        .replace("http://127.0.0.1:8080", &server.base)
        .replace("http://127.0.0.1:9000/", &format!("{}/", receiver.url));
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .env("HOOKLINE_TOKEN", &token)
        .output()
        .await
        .expect("bash runs (curl must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "session failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("created wh_"), "{stdout}");
    assert!(
        stdout.contains("\"urns\":[\"urn:allthings:app:A1:*\"]"),
        "the PATCH answer shows the widened URN: {stdout}"
    );
    assert!(stdout.contains("deleted: 204"), "{stdout}");
    assert!(
        stdout.contains("\"status\":\"delivered\""),
        "the delivery log shows the event delivered: {stdout}"
    );
    assert!(
        receiver
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.header("webhook-signature").is_some()),
        "the event reached the endpoint"
    );
    assert!(db
        .list_for_app("A1", None, 10)
        .await
        .expect("list")
        .items
        .is_empty());
    assert_eq!(
        receiver.requests()[0].method,
        "HEAD",
        "the endpoint was verified on save"
    );

    server.stop().await;
    assert_eq!(db.integrity_check().await.expect("check"), "ok");
}

#[tokio::test]
async fn tokens_survive_a_restart_and_bad_tokens_are_refused_over_http() {
    let db_path = hookline_tests::temp_db("restart");
    let settings = Settings {
        allow_http: true,
        targets: TargetPolicy {
            allow_private: true,
        },
        ..Settings::default()
    };
    let first = Local::open(&db_path, settings.clone(), "permissions".into())
        .await
        .expect("open");
    let dev = Principal::from_claims(
        "dev",
        Some(&serde_json::Value::String("edit-app:A1".into())),
    );
    let token = first.mint_token(&dev, Duration::from_secs(3600));
    drop(first);
    let local = Local::open(&db_path, settings, "permissions".into())
        .await
        .expect("reopen");
    let server = hookline_tests::Serving::start(local.clone()).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let list = format!("{base}/v1/webhooks?appId=A1");
    let ok = client
        .get(&list)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(
        ok.status(),
        200,
        "a token minted before the restart still works"
    );
    let expired = local.mint_token(&dev, Duration::ZERO);
    let other_key = {
        let key = b"not the server's key, but 32 bytes";
        hookline::token::Tokens::new(key, "permissions").mint(&dev, Duration::from_secs(600))
    };
    let unsigned = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = token.split('.').nth(1).expect("payload");
        format!(
            "{}.{payload}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#)
        )
    };
    for bad in [
        "",
        "garbage",
        &format!("{token}x"),
        &expired,
        &other_key,
        &unsigned,
    ] {
        let r = client
            .get(&list)
            .bearer_auth(bad)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401, "token {bad:?}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let big = client
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 300 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(big.status(), 413);
    server.stop().await;
}

//! Bearer tokens over `hookline serve`'s HTTP port (in-process on a free port): they survive a
//! restart, and expired, unsigned, foreign-key and malformed ones are refused with 401.

use std::time::Duration;

use hookline::Local;
use hookline_api::settings::Settings;
use hookline_core::auth::Principal;
use hookline_core::target::TargetPolicy;

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

//! The bad-input corpus against the HTTP API, through both edges: `hookline serve`'s HTTP port
//! and the `api` Lambda's API Gateway v2 edge. Each input gets a 4xx problem+json naming the
//! field (or the reason), and the store and the events queue are unchanged afterwards.

use std::time::Duration;

use base64::Engine as _;
use hookline::Local;
use hookline_api::auth::with_auth;
use hookline_api::lambda::ApiGatewayClaims;
use hookline_api::settings::Settings;
use hookline_core::auth::Principal;
use hookline_core::ports::WebhookStore;
use serde_json::Value;

/// (what, method, path, content type, body, status, text the problem must contain)
type Case = (
    &'static str,
    &'static str,
    String,
    &'static str,
    Vec<u8>,
    u16,
    String,
);

fn webhook(field: &str, value: Value) -> Vec<u8> {
    let mut body = serde_json::json!({"name": "CRM", "url": "https://hooks.example.com/in", "eventTypes": ["ticket.*"]});
    body[field] = value;
    body.to_string().into_bytes()
}

fn corpus() -> Vec<Case> {
    let hooks = "/v1/webhooks?appId=A1".to_owned();
    let json = "application/json";
    let mut nested = "[".repeat(300);
    nested.push_str(&"]".repeat(300));
    let mut cases: Vec<Case> = vec![
        ("malformed JSON", "POST", hooks.clone(), json, b"{\"name\": ".to_vec(), 400, "ends too early".into()),
        ("wrong type", "POST", hooks.clone(), json, webhook("name", Value::from(5)), 400, "invalid type".into()),
        ("missing field", "POST", hooks.clone(), json, br#"{"name":"x","url":"https://a.example.com"}"#.to_vec(), 400, "missing field `eventTypes`".into()),
        ("unknown field", "POST", hooks.clone(), json, webhook("colour", Value::from("red")), 400, "unknown field `colour`".into()),
        ("invalid UTF-8", "POST", hooks.clone(), json, b"{\"name\":\"\xc3\x28\"}".to_vec(), 400, "not valid JSON".into()),
        ("256 KiB + 1", "POST", hooks.clone(), json, vec![b' '; 256 * 1024 + 1], 413, "256 KiB".into()),
        ("deeply nested", "POST", "/v1/events".into(), json, format!("{{\"type\":\"ticket.created\",\"urn\":\"urn:allthings:app:A1:x\",\"data\":{nested}}}").into_bytes(), 400, "recursion limit".into()),
        ("wrong content type", "POST", hooks.clone(), "text/plain", webhook("name", Value::from("x")), 415, "application/json".into()),
        ("GraphQL batch", "POST", "/graphql".into(), json, br#"[{"query":"{ __typename }"},{"query":"{ __typename }"}]"#.to_vec(), 400, "batching is off".into()),
        ("GraphQL, not a request", "POST", "/".into(), json, br#"{"query": ["{ __typename }"]}"#.to_vec(), 400, "not a GraphQL request".into()),
        ("GraphQL as application/graphql", "POST", "/graphql".into(), "application/graphql", b"{ __typename }".to_vec(), 415, "application/json".into()),
        ("GraphQL 256 KiB + 1", "POST", "/graphql".into(), json, vec![b' '; 256 * 1024 + 1], 413, "256 KiB".into()),
    ];
    for (what, url) in [
        ("userinfo", "https://user:pw@hooks.example.com/"),
        ("non-https", "http://hooks.example.com/"),
        ("decimal IPv4", "https://2130706433/"),
        ("octal IPv4", "https://0177.0.0.1/"),
        ("hex IPv4", "https://0x7f.0x0.0x0.0x1/"),
        ("IPv6-mapped loopback", "https://[::ffff:127.0.0.1]/"),
        ("private range", "https://10.1.2.3/"),
        (
            "metadata address",
            "https://169.254.169.254/latest/meta-data/",
        ),
        ("localhost.", "https://localhost./"),
        ("LocalHost", "https://LocalHost/"),
    ] {
        cases.push((
            what,
            "POST",
            hooks.clone(),
            json,
            webhook("url", Value::from(url)),
            422,
            "\"field\":\"url\"".into(),
        ));
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(2100));
    cases.push((
        "over-long URL",
        "POST",
        hooks.clone(),
        json,
        webhook("url", Value::from(long)),
        422,
        "\"field\":\"url\"".into(),
    ));
    for (what, key, value, field) in [
        (
            "CR/LF in a header value",
            "X-Crlf",
            "a\r\nX-Injected: 1",
            "customHeaders.X-Crlf",
        ),
        (
            "forbidden character in a header name",
            "X-A:B",
            "x",
            "customHeaders.X-A:B",
        ),
        (
            "reserved header prefix",
            "X-Amz-Date",
            "x",
            "customHeaders.X-Amz-Date",
        ),
    ] {
        cases.push((
            what,
            "POST",
            hooks.clone(),
            json,
            webhook("customHeaders", serde_json::json!({ key: value })),
            422,
            format!("\"field\":\"{field}\""),
        ));
    }
    for (what, field, value, status, says) in [
        (
            "filter that is not an object",
            "filter",
            serde_json::json!(["high"]),
            422,
            "\"field\":\"filter\"",
        ),
        (
            "filter with a regex matcher",
            "filter",
            serde_json::json!({"data": {"p": [{"wildcard": "*"}]}}),
            422,
            "\"field\":\"filter.data.p[0]\"",
        ),
        (
            "filter nested too deep",
            "filter",
            serde_json::json!({"data": {"a": {"b": {"c": {"d": {"e": {"f": ["x"]}}}}}}}),
            422,
            "\"field\":\"filter.data.a.b.c.d.e\"",
        ),
        (
            "retry over 24 h",
            "retry",
            serde_json::json!({"schedule": ["12h", "12h", "1h"]}),
            422,
            "\"field\":\"retry\"",
        ),
        (
            "retry with 11 attempts",
            "retry",
            serde_json::json!({"schedule": ["1s"], "maxAttempts": 11}),
            422,
            "\"field\":\"retry.maxAttempts\"",
        ),
        (
            "retry with an unknown key",
            "retry",
            serde_json::json!({"schedule": ["1s"], "jitter": 0}),
            400,
            "unknown field",
        ),
        (
            "rate limit of zero",
            "rateLimit",
            serde_json::json!({"perSecond": 0}),
            422,
            "\"field\":\"rateLimit.perSecond\"",
        ),
        (
            "unknown ordering",
            "ordering",
            serde_json::json!("random"),
            400,
            "unknown variant",
        ),
    ] {
        cases.push((
            what,
            "POST",
            hooks.clone(),
            json,
            webhook(field, value),
            status,
            says.into(),
        ));
    }
    cases.push((
        "URN spanning Apps",
        "POST",
        hooks.clone(),
        json,
        webhook("urns", serde_json::json!(["urn:allthings:app:*"])),
        422,
        "\"field\":\"urns[0]\"".into(),
    ));
    cases.push((
        "event type not in the catalog",
        "POST",
        hooks.clone(),
        json,
        webhook("eventTypes", serde_json::json!(["invoice.paid"])),
        422,
        "\"field\":\"eventTypes[0]\"".into(),
    ));
    let events = "/v1/events".to_owned();
    cases.push((
        "event: type not in the catalog",
        "POST",
        events.clone(),
        json,
        br#"{"type":"invoice.paid","urn":"urn:allthings:app:A1:x","data":{}}"#.to_vec(),
        422,
        "\"field\":\"type\"".into(),
    ));
    cases.push((
        "event: URN with a wildcard",
        "POST",
        events.clone(),
        json,
        br#"{"type":"ticket.created","urn":"urn:allthings:app:A1:*","data":{}}"#.to_vec(),
        422,
        "\"field\":\"urn\"".into(),
    ));
    cases.push((
        "event: unknown field",
        "POST",
        events.clone(),
        json,
        br#"{"type":"ticket.created","urn":"urn:allthings:app:A1:x","data":{},"x":1}"#.to_vec(),
        400,
        "unknown field".into(),
    ));
    cases.push((
        "event: an operational type only Hookline emits",
        "POST",
        events.clone(),
        json,
        br#"{"type":"webhook.disabled","urn":"urn:allthings:app:A1:webhook:x","data":{}}"#.to_vec(),
        422,
        "emitted by Hookline itself".into(),
    ));
    let revoke = "/v1/grants/revoke".to_owned();
    for (what, body, status, says) in [
        (
            "grant: unknown field",
            r#"{"sub":"s","appId":"A1","x":1}"#,
            400,
            "unknown field `x`",
        ),
        (
            "grant: missing sub",
            r#"{"appId":"A1"}"#,
            400,
            "missing field `sub`",
        ),
        (
            "grant: App id of two segments",
            r#"{"sub":"s","appId":"A:1"}"#,
            422,
            "\"field\":\"appId\"",
        ),
        (
            "grant: empty sub",
            r#"{"sub":" ","appId":"A1"}"#,
            422,
            "\"field\":\"sub\"",
        ),
    ] {
        cases.push((
            what,
            "POST",
            revoke.clone(),
            json,
            body.as_bytes().to_vec(),
            status,
            says.into(),
        ));
    }
    cases.push((
        "event: 256 KiB + 1",
        "POST",
        events,
        json,
        vec![b' '; 256 * 1024 + 1],
        413,
        "256 KiB".into(),
    ));
    cases
}

fn production_like() -> Settings {
    Settings::default()
}

async fn assert_unchanged(local: &Local) {
    assert!(
        local
            .db
            .list_for_app("A1", None, 10)
            .await
            .expect("list")
            .items
            .is_empty(),
        "no webhook was stored"
    );
    assert!(
        local.queues.events.is_empty().await.expect("len"),
        "no event was queued"
    );
}

#[tokio::test]
async fn every_bad_input_is_refused_over_http() {
    let local = Local::open(
        &hookline_tests::temp_db("bad-http"),
        production_like(),
        "permissions".into(),
    )
    .await
    .expect("open");
    let principal = Principal::from_claims(
        "dev",
        Some(&Value::String("edit-app:A1 publish-events:A1".into())),
    );
    let token = local.mint_token(&principal, Duration::from_secs(600));
    let server = hookline_tests::Serving::start(local.clone()).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    for (what, method, path, content_type, body, status, says) in corpus() {
        let r = client
            .request(method.parse().expect("method"), format!("{base}{path}"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let text = r.text().await.expect("body");
        assert!(text.contains(&says), "{what}: {text}");
    }
    assert_unchanged(&local).await;
    server.stop().await;
}

fn api_gateway_event(
    method: &str,
    path_and_query: &str,
    content_type: &str,
    body: &[u8],
) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    serde_json::json!({
        "version": "2.0", "routeKey": "ANY /v1/{proxy+}", "rawPath": path, "rawQueryString": query,
        "headers": {"content-type": content_type, "host": "h00k11ne.execute-api.eu-central-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "h00k11ne", "domainName": "h00k11ne.execute-api.eu-central-1.amazonaws.com",
            "domainPrefix": "h00k11ne", "requestId": "r1", "routeKey": "ANY /v1/{proxy+}", "stage": "$default",
            "time": "25/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_608_000_000_i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "test"},
            "authorizer": {"jwt": {"claims": {"sub": "dev", "permissions": "[edit-app:A1 publish-events:A1]"}, "scopes": null}}
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
    .to_string()
}

#[tokio::test]
async fn every_bad_input_is_refused_by_the_lambda_edge() {
    let local = Local::open(
        &hookline_tests::temp_db("bad-lambda"),
        production_like(),
        "permissions".into(),
    )
    .await
    .expect("open");
    let app = with_auth(local.router.routes(), ApiGatewayClaims::new("permissions"));
    for (what, method, path, content_type, body, status, says) in corpus() {
        let (got, text) = hookline_tests::invoke_lambda(
            &app,
            &api_gateway_event(method, &path, content_type, &body),
        )
        .await;
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.contains(&says), "{what}: {text}");
    }
    assert_unchanged(&local).await;
}

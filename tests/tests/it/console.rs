//! The console without a browser: its files are served from the binary with a strict
//! Content-Security-Policy, carry no inline script or style and no other origin, render API
//! values as text only, and `GET /v1/me` tells it the caller's Apps. (The browser test is
//! `console_browser.rs`.)

use bytes::Bytes;
use hookline_api::auth::Caller;
use hookline_api::console::CONTENT_SECURITY_POLICY;
use hookline_core::auth::Principal;
use http::{Method, StatusCode};
use serde_json::Value;

const INDEX_HTML: &str = include_str!("../../../functions/api/console/index.html");
const CONSOLE_JS: &str = include_str!("../../../functions/api/console/console.js");
const CONSOLE_CSS: &str = include_str!("../../../functions/api/console/console.css");

async fn get(
    router: &hookline_api::Api,
    method: Method,
    path: &str,
    caller: Caller,
) -> http::Response<Bytes> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Bytes::new())
        .expect("request");
    router.handle(request, caller).await
}

fn header<'a>(r: &'a http::Response<Bytes>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let (router, _db) = hookline_tests::embedded_api(hookline_tests::local_settings());
    for (path, content_type, body) in [
        ("/console", "text/html; charset=utf-8", INDEX_HTML),
        ("/console/", "text/html; charset=utf-8", INDEX_HTML),
        (
            "/console/console.js",
            "text/javascript; charset=utf-8",
            CONSOLE_JS,
        ),
        (
            "/console/console.css",
            "text/css; charset=utf-8",
            CONSOLE_CSS,
        ),
    ] {
        // No token: the page is public; what it shows needs the user's token.
        let r = get(&router, Method::GET, path, Caller::Anonymous).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), content_type, "{path}");
        assert_eq!(r.body(), body.as_bytes(), "{path} is the checked-in file");
        assert_eq!(
            header(&r, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "x-frame-options"), "DENY");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    }
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            CONTENT_SECURITY_POLICY.contains(directive),
            "the policy has {directive}"
        );
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    let r = get(
        &router,
        Method::GET,
        "/console/secrets.txt",
        Caller::Anonymous,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    let r = get(&router, Method::POST, "/console", Caller::Anonymous).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The icon, where browsers ask for it and where the page links it: an ICO holding a PNG.
    let icon = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/api/console/favicon.ico"
    ))
    .expect("the icon");
    assert_eq!(&icon[..4], &[0, 0, 1, 0], "an ICO header");
    assert_eq!(&icon[22..26], b"\x89PNG", "its image is a PNG");
    assert!(INDEX_HTML.contains(r#"<link rel="icon" href="/console/favicon.ico">"#));
    for path in ["/favicon.ico", "/console/favicon.ico"] {
        let r = get(&router, Method::GET, path, Caller::Anonymous).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), "image/x-icon", "{path}");
        assert_eq!(r.body().as_ref(), icon.as_slice(), "{path}");
    }
}

/// The CSP forbids inline script and style; the files must not need them, must load nothing
/// from elsewhere, and must put API values into the page as text only.
#[test]
fn the_console_has_no_inline_code_no_other_origin_and_no_markup_from_data() {
    let tags = |html: &str, tag: &str| -> Vec<String> {
        html.split(&format!("<{tag}"))
            .skip(1)
            .map(|rest| rest.split('>').next().unwrap_or_default().to_owned())
            .collect()
    };
    let scripts = tags(INDEX_HTML, "script");
    assert_eq!(scripts.len(), 1, "one script: {scripts:?}");
    assert!(scripts
        .iter()
        .all(|s| s.contains("src=\"/console/console.js\"")));
    assert!(!INDEX_HTML.contains("<style"), "no inline style element");
    let lower = INDEX_HTML.to_ascii_lowercase();
    assert!(!lower.contains(" style="), "no style attributes");
    let handlers: Vec<&str> = lower
        .split(" on")
        .skip(1)
        .filter_map(|after| {
            let name_len = after.chars().take_while(char::is_ascii_lowercase).count();
            (name_len > 0 && after[name_len..].starts_with('=')).then(|| &after[..name_len])
        })
        .collect();
    assert!(handlers.is_empty(), "inline event handlers: {handlers:?}");
    for (name, text) in [
        ("index.html", INDEX_HTML),
        ("console.js", CONSOLE_JS),
        ("console.css", CONSOLE_CSS),
    ] {
        // The SVG namespace is a name (createElementNS), never fetched.
        let text = text.replace("\"http://www.w3.org/2000/svg\"", "\"svg-namespace\"");
        for origin in ["http://", "https://", "//cdn", "@import"] {
            assert!(!text.contains(origin), "{name} refers to {origin}");
        }
    }
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        ".style.",
        "setTimeout(\"",
    ] {
        assert!(!CONSOLE_JS.contains(sink), "console.js uses {sink}");
    }
    // Every control of the page has a label (the script labels the ones it adds; the browser
    // test checks those).
    for control in ["input", "select", "textarea"] {
        for attrs in tags(INDEX_HTML, control) {
            let id = attrs
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("a {control} without an id: {attrs}"));
            assert!(
                INDEX_HTML.contains(&format!("for=\"{id}\"")),
                "{control} #{id} has no label"
            );
        }
    }
    // The visible words of the flow.
    for words in [
        ">Webhooks<",
        ">Create a webhook<",
        ">Save<",
        ">Test endpoint<",
        ">Delivery log<",
        "It will not be shown again.",
    ] {
        assert!(INDEX_HTML.contains(words), "the page says {words}");
    }
    assert!(CONSOLE_JS.contains("\"Redeliver\""));
}

#[tokio::test]
async fn who_am_i_tells_the_console_the_callers_apps() {
    let (router, _db) = hookline_tests::embedded_api(hookline_tests::local_settings());
    let admin = Caller::Principal(Principal::from_claims(
        "admin-a1",
        Some(&Value::String(
            "edit-app:A1 publish-events:A1 other:thing".into(),
        )),
    ));
    let r = get(&router, Method::GET, "/v1/me", admin).await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = serde_json::from_slice(r.body()).expect("JSON");
    assert_eq!(
        me,
        serde_json::json!({"sub": "admin-a1", "permissions": ["edit-app:A1", "publish-events:A1"]})
    );
    let r = get(&router, Method::GET, "/v1/me", Caller::Anonymous).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

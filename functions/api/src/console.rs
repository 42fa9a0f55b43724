//! The management console (`/console`): the "Webhooks" tab of an App, as plain HTML, CSS and
//! one ES module embedded in the binary (no runtime files, no CDN: it works offline). It is a
//! client of the REST API with the user's bearer token, which reaches it in the URL fragment
//! (`/console#token=...`, never sent to a server) or pasted into its sign-in form. Served with a
//! strict Content-Security-Policy: its own files only, no inline script, never framed.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{header, HeaderValue};

use crate::problem::Problem;

/// The page.
const INDEX_HTML: &str = include_str!("../console/index.html");
/// Its script (an ES module).
const CONSOLE_JS: &str = include_str!("../console/console.js");
/// Its style sheet.
const CONSOLE_CSS: &str = include_str!("../console/console.css");
/// Its icon (32×32, a PNG in an ICO), also at `/favicon.ico` where browsers look for one.
const FAVICON: &[u8] = include_bytes!("../console/favicon.ico");

/// The console's Content-Security-Policy: scripts, styles and API calls from its own origin
/// only; no inline script or style, no plugins, no other origins, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes: the page at `/console` (and `/console/`), its files below it, and its
/// icon at `/favicon.ico`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route("/favicon.ico", get(|| async { asset("favicon.ico") }))
        .route("/console", get(|| async { asset("index.html") }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

/// One embedded file with the console's security headers; 404 for any other name.
fn asset(name: &str) -> Response {
    let (content_type, body): (_, &'static [u8]) = match name {
        "index.html" => ("text/html; charset=utf-8", INDEX_HTML.as_bytes()),
        "console.js" => ("text/javascript; charset=utf-8", CONSOLE_JS.as_bytes()),
        "console.css" => ("text/css; charset=utf-8", CONSOLE_CSS.as_bytes()),
        "favicon.ico" => ("image/x-icon", FAVICON),
        _ => return Problem::not_found(format!("the console has no file {name}")).into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

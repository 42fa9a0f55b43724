//! `hookline listen`: the receiver a developer needs on day one. It answers `HEAD` (the
//! endpoint check) and POSTs with scripted statuses, checks Standard Webhooks signatures when
//! it has the secret, and prints one line per delivery (or the whole delivery as JSON). The
//! attempt it prints is how many times this listener has received that `webhook-id`: Standard
//! Webhooks carries no attempt number, and the id is the same on every retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hookline_core::signing::{verify, Secret, DEFAULT_TOLERANCE_SECS};
use serde_json::{json, Value};

/// What the listener does.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// The webhook's secret; signatures are not checked without it.
    pub secret: Option<Secret>,
    /// Statuses for POSTs in turn; the last one repeats.
    pub statuses: Vec<u16>,
    /// Print deliveries whole as JSON lines.
    pub json: bool,
}

/// The listener's state: its options and what it has seen.
#[derive(Debug)]
struct Listener {
    options: ListenOptions,
    posts: Mutex<Posts>,
}

#[derive(Debug, Default)]
struct Posts {
    count: usize,
    per_message: HashMap<String, u32>,
}

/// How a delivery's signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// It verified with the secret.
    Ok,
    /// It did not (wrong secret, stale timestamp, missing headers).
    Bad,
    /// No secret was given.
    NotChecked,
}

impl SignatureCheck {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "signature ok",
            Self::Bad => "signature BAD",
            Self::NotChecked => "not checked",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks `body` against the Standard Webhooks headers with `secret`.
pub fn check_signature(
    secret: Option<&Secret>,
    headers: &HeaderMap,
    body: &[u8],
) -> SignatureCheck {
    let Some(secret) = secret else {
        return SignatureCheck::NotChecked;
    };
    let (Some(id), Some(ts), Some(sig)) = (
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp").and_then(|t| t.parse::<i64>().ok()),
        header(headers, "webhook-signature"),
    ) else {
        return SignatureCheck::Bad;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match verify(
        std::slice::from_ref(secret),
        id,
        ts,
        body,
        sig,
        now,
        DEFAULT_TOLERANCE_SECS,
    ) {
        Ok(()) => SignatureCheck::Ok,
        Err(_) => SignatureCheck::Bad,
    }
}

fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// Serves the listener on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    options: ListenOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(Listener {
        options,
        posts: Mutex::new(Posts::default()),
    });
    let app = axum::Router::new().fallback(receive).with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn receive(
    State(listener): State<Arc<Listener>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let options = &listener.options;
    if method == Method::HEAD {
        crate::say!("{}  HEAD {}  200  endpoint check", clock(), uri.path());
        return StatusCode::OK;
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    let id = header(&headers, "webhook-id").unwrap_or("-").to_owned();
    let (status, attempt) = {
        let mut posts = listener.posts.lock().unwrap_or_else(|p| p.into_inner());
        let status = options
            .statuses
            .get(posts.count)
            .or(options.statuses.last())
            .copied()
            .unwrap_or(200);
        posts.count += 1;
        let seen = posts.per_message.entry(id.clone()).or_default();
        *seen += 1;
        (status, *seen)
    };
    let signature = check_signature(options.secret.as_ref(), &headers, &body);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    if options.json {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        let line = json!({
            "time": clock(),
            "method": "POST",
            "path": uri.path(),
            "answered": status,
            "attempt": attempt,
            "signature": signature.as_str(),
            "headers": headers,
            "body": parsed.clone().unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        });
        crate::say!("{line}");
    } else {
        crate::say!(
            "{}  {id}  {}  {}  attempt {attempt}  {} B  answered {status}  {}",
            clock(),
            field("type"),
            field("urn"),
            body.len(),
            signature.as_str()
        );
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::signing::signature_header;

    #[test]
    fn signatures_are_checked_only_with_a_secret() {
        let secret = Secret::generate().expect("rng");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = br#"{"type":"ticket.created"}"#;
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().expect("value"));
        headers.insert("webhook-timestamp", now.to_string().parse().expect("value"));
        headers.insert(
            "webhook-signature",
            signature_header(std::slice::from_ref(&secret), "evt_1", now, body)
                .parse()
                .expect("value"),
        );
        assert_eq!(
            check_signature(Some(&secret), &headers, body),
            SignatureCheck::Ok
        );
        assert_eq!(
            check_signature(Some(&secret), &headers, b"{}"),
            SignatureCheck::Bad
        );
        let other = Secret::generate().expect("rng");
        assert_eq!(
            check_signature(Some(&other), &headers, body),
            SignatureCheck::Bad
        );
        assert_eq!(
            check_signature(None, &headers, body),
            SignatureCheck::NotChecked
        );
        headers.remove("webhook-signature");
        assert_eq!(
            check_signature(Some(&secret), &headers, body),
            SignatureCheck::Bad
        );
    }
}

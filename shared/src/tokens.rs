//! OAuth2 client-credentials tokens for HTTP endpoints (RFC 6749 §4.4), over the
//! [`HttpSender`] port (so the target guard applies to token endpoints as to endpoints).
//!
//! A token is asked for with HTTP Basic client authentication (which every authorization
//! server must support) and a form body `grant_type=client_credentials` (with `scope` and
//! `audience` when set), then cached per webhook and version until shortly before its
//! `expires_in` ([`Tokens::token`]). Concurrent deliveries of a webhook share one request. A
//! 401 from the endpoint forgets that token, once ([`Tokens::forget`]): the next call asks for
//! a new one, and a second 401 is the endpoint's answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::outbound::{OutboundError, OutboundMethod, OutboundRequest, OutboundResponse};
use crate::ports::HttpSender;
use crate::webhook::{OAuth2, WebhookId};

/// How long a token without `expires_in` is kept.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The most a token is renewed before it expires.
pub const MAX_RENEW_BEFORE: Duration = Duration::from_secs(60);

/// A token and when to stop using it.
#[derive(Debug, Clone)]
struct Cached {
    token: String,
    until: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// The token cache of a deliverer (and the one-off requests of the check on save).
pub struct Tokens {
    http: Arc<dyn HttpSender>,
    slots: Mutex<HashMap<(WebhookId, u64), Slot>>,
}

/// When a token that lives `lifetime` stops being used: a tenth of its life early, at most
/// [`MAX_RENEW_BEFORE`].
pub fn use_until(fetched: Instant, lifetime: Duration) -> Instant {
    fetched + lifetime - (lifetime / 10).min(MAX_RENEW_BEFORE)
}

/// The token request for `oauth2` with its opened `secret`.
pub fn token_request(oauth2: &OAuth2, secret: &str, timeout: Duration) -> OutboundRequest {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!("{}:{}", enc(&oauth2.client_id), enc(secret)));
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = &oauth2.scope {
        form.append_pair("scope", scope);
    }
    if let Some(audience) = &oauth2.audience {
        form.append_pair("audience", audience);
    }
    OutboundRequest {
        method: OutboundMethod::Post,
        url: oauth2.token_url.clone(),
        headers: vec![
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("accept".to_owned(), "application/json".to_owned()),
            ("authorization".to_owned(), format!("Basic {basic}")),
        ],
        body: form.finish().into_bytes(),
        timeout,
    }
}

/// The token of a token endpoint's answer and its lifetime, or why there is none (its
/// status, its `error`, or what is missing).
pub fn parse_token_response(r: &OutboundResponse) -> Result<(String, Duration), String> {
    let json: Option<serde_json::Value> = serde_json::from_str(&r.body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if !(200..300).contains(&r.status) {
        let said = match (field("error"), field("error_description")) {
            (Some(e), Some(d)) => format!(": {e} ({d})"),
            (Some(e), None) => format!(": {e}"),
            _ => String::new(),
        };
        return Err(format!("it answered {}{said}", r.status));
    }
    let token = field("access_token")
        .filter(|t| !t.is_empty())
        .ok_or("its answer has no access_token")?;
    if let Some(kind) = field("token_type") {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("it gave a {kind} token, not a bearer token"));
        }
    }
    let lifetime = json
        .as_ref()
        .and_then(|j| j.get("expires_in"))
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    Ok((token, lifetime))
}

impl Tokens {
    /// A cache asking token endpoints through `http`.
    pub fn new(http: Arc<dyn HttpSender>) -> Self {
        Self {
            http,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Asks the token endpoint for a token (no cache): the check on save, and every miss.
    pub async fn fetch(
        &self,
        oauth2: &OAuth2,
        secret: &str,
        timeout: Duration,
    ) -> Result<(String, Duration), OutboundError> {
        let url = &oauth2.token_url;
        let answer = self
            .http
            .send(token_request(oauth2, secret, timeout))
            .await
            .map_err(|e| OutboundError::Token(format!("{url}: {e}")))?;
        let (token, lifetime) = parse_token_response(&answer)
            .map_err(|e| OutboundError::Token(format!("{url}: {e}")))?;
        tracing::info!(token_url = %url, lifetime_s = lifetime.as_secs(), "OAuth2 token fetched");
        Ok((token, lifetime))
    }

    fn slot(&self, id: &WebhookId, version: u64) -> Slot {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((id.clone(), version))
            .or_default()
            .clone()
    }

    /// The webhook's token: the cached one while it lasts, else a new one (one request for
    /// every delivery waiting on it). `secret` opens the client secret, only for a request.
    pub async fn token<F, Fut>(
        &self,
        id: &WebhookId,
        version: u64,
        oauth2: &OAuth2,
        secret: F,
        timeout: Duration,
    ) -> Result<String, OutboundError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, OutboundError>>,
    {
        let slot = self.slot(id, version);
        let mut held = slot.lock().await;
        if let Some(c) = held.as_ref() {
            if Instant::now() < c.until {
                return Ok(c.token.clone());
            }
        }
        let secret = secret().await?;
        let fetched = Instant::now();
        let (token, lifetime) = self.fetch(oauth2, &secret, timeout).await?;
        *held = Some(Cached {
            token: token.clone(),
            until: use_until(fetched, lifetime),
        });
        Ok(token)
    }

    /// The endpoint refused `token` (401): it is not used again. A newer token another
    /// delivery already fetched is kept.
    pub async fn forget(&self, id: &WebhookId, version: u64, token: &str) {
        let slot = self.slot(id, version);
        let mut held = slot.lock().await;
        if held.as_ref().is_some_and(|c| c.token == token) {
            *held = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed::Protected;
    use crate::webhook::WebhookUrl;

    fn oauth2() -> OAuth2 {
        OAuth2 {
            token_url: WebhookUrl::parse_stored("https://auth.example.com/token").expect("url"),
            client_id: "crm client".into(),
            client_secret: Protected::Plain("s3cr:t".into()),
            scope: Some("webhooks:write".into()),
            audience: None,
        }
    }

    fn answer(status: u16, body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            retry_after: None,
            body: body.into(),
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn the_request_authenticates_the_client_with_basic_and_asks_for_the_scope() {
        let r = token_request(&oauth2(), "s3cr:t", Duration::from_secs(5));
        let auth = &r
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .expect("auth")
            .1;
        let decoded = STANDARD
            .decode(auth.strip_prefix("Basic ").expect("basic"))
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("utf8"),
            "crm+client:s3cr%3At"
        );
        assert_eq!(
            String::from_utf8(r.body).expect("form"),
            "grant_type=client_credentials&scope=webhooks%3Awrite"
        );
    }

    #[test]
    fn answers_give_a_token_and_its_lifetime_or_say_why_not() {
        assert_eq!(
            parse_token_response(&answer(
                200,
                r#"{"access_token":"t1","token_type":"Bearer","expires_in":3600}"#
            )),
            Ok(("t1".into(), Duration::from_secs(3600)))
        );
        assert_eq!(
            parse_token_response(&answer(200, r#"{"access_token":"t1"}"#)),
            Ok(("t1".into(), DEFAULT_TOKEN_LIFETIME))
        );
        let e =
            parse_token_response(&answer(401, r#"{"error":"invalid_client"}"#)).expect_err("401");
        assert_eq!(e, "it answered 401: invalid_client");
        assert!(parse_token_response(&answer(200, "{}")).is_err());
        assert!(
            parse_token_response(&answer(200, r#"{"access_token":"t","token_type":"mac"}"#))
                .is_err()
        );
    }

    #[test]
    fn tokens_are_renewed_shortly_before_they_expire() {
        let t = Instant::now();
        assert_eq!(
            use_until(t, Duration::from_secs(3600)),
            t + Duration::from_secs(3540)
        );
        assert_eq!(
            use_until(t, Duration::from_secs(100)),
            t + Duration::from_secs(90)
        );
    }
}

//! The outbound HTTP adapter ([`HttpSender`] on reqwest/rustls): redirects never followed,
//! bodies read to [`MAX_RESPONSE_BYTES`], and the target guard applied to every address a host
//! resolves to, inside the connector, so a DNS answer cannot change between check and connect.
//!
//! Through an egress proxy ([`EgressProxy`]) the connector only ever resolves the proxy: the
//! request's own host is then resolved and checked here just before the request is handed to
//! the proxy, which resolves it again. A name whose answer changes in between (DNS rebinding)
//! could reach what the guard refuses, so such a proxy should refuse private ranges itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::outbound::{
    OutboundError, OutboundMethod, OutboundRequest, OutboundResponse, MAX_RESPONSE_BYTES,
};
use crate::ports::HttpSender;
use crate::target::{EgressProxy, TargetPolicy};

/// Default connect timeout; the request's own timeout bounds the whole exchange.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The resolver refused every address of a host.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses: {reason}")]
struct BlockedTarget {
    host: String,
    reason: String,
}

/// System DNS, then the target guard: only allowed addresses reach the connector. The egress
/// proxy's host, when there is one, is exempt.
struct GuardedResolver {
    policy: TargetPolicy,
    proxy_host: Option<String>,
}

/// Every address `host` resolves to that `policy` allows; an error when none is.
async fn allowed_addresses(
    policy: TargetPolicy,
    host: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let mut refused = None;
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| match policy.check_ip(a.ip()) {
            Ok(()) => true,
            Err(e) => {
                refused = Some(e.to_string());
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        let reason = refused.unwrap_or_else(|| "no addresses".to_owned());
        return Err(Box::new(BlockedTarget {
            host: host.to_owned(),
            reason,
        }));
    }
    Ok(allowed)
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let exempt = self.proxy_host.as_deref() == Some(name.as_str());
        Box::pin(async move {
            let host = name.as_str().to_owned();
            if exempt {
                let all: Vec<SocketAddr> =
                    tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                return Ok(Box::new(all.into_iter()) as Addrs);
            }
            let allowed = allowed_addresses(policy, &host).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// [`HttpSender`] on reqwest.
#[derive(Clone)]
pub struct ReqwestSender {
    client: reqwest::Client,
    policy: TargetPolicy,
    proxied: bool,
}

impl ReqwestSender {
    /// A sender enforcing `policy`, identifying itself as `user_agent`.
    pub fn new(policy: TargetPolicy, user_agent: &str) -> Result<Self, OutboundError> {
        Self::with_proxy(policy, user_agent, None)
    }

    /// A sender leaving through `proxy` (when given), the guard still on each target.
    pub fn with_proxy(
        policy: TargetPolicy,
        user_agent: &str,
        proxy: Option<&EgressProxy>,
    ) -> Result<Self, OutboundError> {
        let builder = reqwest::Client::builder();
        let builder = if crate::adapters::tls::native_roots() {
            builder
        } else {
            let roots = crate::adapters::tls::webpki_roots()
                .map(reqwest::Certificate::from_der)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| OutboundError::Other(format!("compiled-in TLS roots: {e}")))?;
            builder.tls_certs_only(roots)
        };
        let builder = match proxy {
            Some(p) => builder.proxy(
                reqwest::Proxy::all(p.url().as_str())
                    .map_err(|e| OutboundError::Other(format!("egress proxy: {e}")))?,
            ),
            None => builder.no_proxy(),
        };
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(user_agent)
            .dns_resolver(Arc::new(GuardedResolver {
                policy,
                proxy_host: proxy.map(|p| p.host().to_owned()),
            }))
            .build()
            .map_err(|e| OutboundError::Other(e.to_string()))?;
        Ok(Self {
            client,
            policy,
            proxied: proxy.is_some(),
        })
    }
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn classify(e: &reqwest::Error, timeout: Duration) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(blocked) = s.downcast_ref::<BlockedTarget>() {
            return OutboundError::Blocked(blocked.to_string());
        }
        source = s.source();
    }
    let text = chain_text(e);
    if e.is_timeout() {
        OutboundError::Timeout(timeout)
    } else if text.contains("certificate") || text.contains("TLS") || text.contains("tls") {
        OutboundError::Tls(text)
    } else if e.is_connect() || e.is_request() || e.is_body() {
        OutboundError::Connect(text)
    } else {
        OutboundError::Other(text)
    }
}

#[async_trait]
impl HttpSender for ReqwestSender {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        // IP literals never reach the resolver: check them here.
        let checked = self
            .policy
            .check_host(request.url.as_url())
            .map_err(|e| OutboundError::Blocked(e.to_string()))?;
        // Through a proxy, the connector resolves only the proxy: check the target's name.
        if let (true, crate::target::CheckedHost::Name(host)) = (self.proxied, &checked) {
            allowed_addresses(self.policy, host).await.map_err(|e| {
                match e.downcast_ref::<BlockedTarget>() {
                    Some(b) => OutboundError::Blocked(b.to_string()),
                    None => OutboundError::Connect(format!("{host}: {e}")),
                }
            })?;
        }
        let method = match request.method {
            OutboundMethod::Head => reqwest::Method::HEAD,
            OutboundMethod::Post => reqwest::Method::POST,
        };
        let mut builder = self
            .client
            .request(method, request.url.as_url().clone())
            .timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if request.method == OutboundMethod::Post {
            builder = builder.body(request.body);
        }
        let started = Instant::now();
        let timeout = request.timeout;
        let mut response = builder.send().await.map_err(|e| classify(&e, timeout))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while body.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                // The status is what counts; a body cut short is reported as far as it came.
                Err(_) => break,
            }
        }
        Ok(OutboundResponse {
            status,
            retry_after,
            body: String::from_utf8_lossy(&body).into_owned(),
            latency: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_at_connect_time() {
        // "localhost" resolves to loopback through the system resolver (no network needed);
        // the resolver, not the name check, must refuse it.
        let strict = GuardedResolver {
            policy: TargetPolicy::PUBLIC_ONLY,
            proxy_host: None,
        };
        let name = Name::from_str("localhost").expect("name");
        let err = match strict.resolve(name).await {
            Ok(_) => panic!("a loopback answer must be refused"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<BlockedTarget>().is_some(), "{err}");
        assert!(err.to_string().contains("loopback"), "{err}");
        let dev = GuardedResolver {
            policy: TargetPolicy {
                allow_private: true,
            },
            proxy_host: None,
        };
        let addrs: Vec<SocketAddr> = dev
            .resolve(Name::from_str("localhost").expect("name"))
            .await
            .map_err(|e| e.to_string())
            .expect("allowed")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[tokio::test]
    async fn ip_literals_are_checked_before_sending() {
        let sender = ReqwestSender::new(TargetPolicy::PUBLIC_ONLY, "test").expect("client");
        let url = crate::webhook::WebhookUrl::parse_stored("http://127.0.0.1:9/").expect("url");
        let result = sender
            .send(OutboundRequest {
                method: OutboundMethod::Post,
                url,
                headers: Vec::new(),
                body: Vec::new(),
                timeout: Duration::from_secs(1),
            })
            .await;
        assert!(
            matches!(result, Err(OutboundError::Blocked(_))),
            "{result:?}"
        );
    }
}

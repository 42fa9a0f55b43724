//! The egress proxy (`HOOKLINE_EGRESS_PROXY`): a loopback HTTP proxy (CONNECT and
//! absolute-form) that records what passes through it. Deliveries and endpoint checks of
//! `hookline serve` leave through it; the target guard still refuses a private target (and
//! nothing reaches the proxy), while the proxy's own loopback address is allowed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookline::Local;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::auth::Principal;
use hookline_core::outbound::{OutboundError, OutboundMethod, OutboundRequest};
use hookline_core::ports::HttpSender;
use hookline_core::target::{EgressProxy, TargetPolicy};
use hookline_core::webhook::WebhookUrl;
use hookline_tests::receiver::TestReceiver;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A forward proxy on loopback: forwards to loopback targets, answers 200 itself for any
/// other (nothing leaves the machine); records each request line.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn handle(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    seen.lock().expect("seen").push(line.clone());
    let mut parts = line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let authority = match method {
        "CONNECT" => target.to_owned(),
        _ => target
            .strip_prefix("http://")
            .and_then(|t| t.split('/').next())
            .unwrap_or_default()
            .to_owned(),
    };
    if !authority.starts_with("127.0.0.1:") {
        client
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(&authority).await?;
    if method == "CONNECT" {
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
    } else {
        // One request per connection, so that each one is seen here: the upstream is asked
        // to close after answering.
        let kept: String = text
            .trim_end_matches("\r\n")
            .split("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        upstream
            .write_all(format!("{kept}connection: close\r\n\r\n").as_bytes())
            .await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let recorded = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, recorded.clone()));
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }

    fn egress(&self) -> EgressProxy {
        EgressProxy::parse(&self.url).expect("proxy URL")
    }
}

fn post(url: &str) -> OutboundRequest {
    OutboundRequest {
        method: OutboundMethod::Post,
        url: WebhookUrl::parse_stored(url).expect("url"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn the_guard_checks_each_target_and_exempts_only_the_proxy() {
    let proxy = Proxy::start().await;
    let strict = ReqwestSender::with_proxy(
        TargetPolicy::PUBLIC_ONLY,
        "Hookline/test",
        Some(&proxy.egress()),
    )
    .expect("client");
    // A public target goes through the proxy, which lives on loopback.
    let r = strict
        .send(post("http://93.184.216.34/hook"))
        .await
        .expect("through the proxy");
    assert_eq!(r.status, 200);
    assert_eq!(proxy.seen(), ["POST http://93.184.216.34/hook HTTP/1.1"]);
    // A name resolving to loopback is refused before anything reaches the proxy.
    let refused = strict.send(post("http://localhost:9/hook")).await;
    assert!(
        matches!(refused, Err(OutboundError::Blocked(_))),
        "{refused:?}"
    );
    assert_eq!(
        proxy.seen().len(),
        1,
        "the refused request never reached the proxy"
    );
}

#[tokio::test]
async fn serve_delivers_and_checks_endpoints_through_the_proxy() {
    let proxy = Proxy::start().await;
    let receiver = TestReceiver::always(200).await;
    let settings = hookline_api::settings::Settings {
        egress_proxy: Some(proxy.egress()),
        ..hookline_tests::local_settings()
    };
    let local = Local::open(
        &hookline_tests::temp_db("egress"),
        settings,
        "permissions".into(),
    )
    .await
    .expect("open");
    let admin = Principal::from_claims(
        "admin",
        Some(&Value::String("edit-app:A1 publish-events:A1".into())),
    );
    let token = local.mint_token(&admin, Duration::from_secs(600));
    let server = hookline_tests::Serving::start(local).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/webhooks?appId=A1", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "via proxy", "url": format!("{}/in", receiver.url), "eventTypes": ["ticket.*"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let checks = proxy.seen().len();
    assert!(checks >= 1, "the endpoint check went through the proxy");
    let published = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&token)
        .json(&json!({"type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:CAT7:T1", "data": {}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    while proxy.seen().len() == checks {
        assert!(
            Instant::now() < deadline,
            "no delivery went through the proxy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = proxy.seen().last().cloned().unwrap_or_default();
    assert!(
        line.starts_with(&format!("POST {}/in", receiver.url)),
        "{line}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !receiver.requests().iter().any(|r| {
        r.header("webhook-id")
            .is_some_and(|id| id.starts_with("evt_"))
    }) {
        assert!(Instant::now() < deadline, "the delivery did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

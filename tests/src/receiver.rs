//! A loopback HTTP endpoint for tests: records every request and answers as a closure says.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Captured {
    /// `HEAD`, `POST`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Captured {
    /// True when `webhook-signature` holds a v1 signature of this request under `secret`
    /// (`whsec_...`), computed here with hmac/sha2/base64 directly, as a receiver would —
    /// not with Hookline's signing module.
    pub fn signed_with(&self, secret: &str) -> bool {
        use base64::Engine as _;
        use hmac::Mac as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let Some(key) = secret
            .strip_prefix("whsec_")
            .and_then(|k| engine.decode(k).ok())
        else {
            return false;
        };
        let (Some(id), Some(ts), Some(header)) = (
            self.header("webhook-id"),
            self.header("webhook-timestamp"),
            self.header("webhook-signature"),
        ) else {
            return false;
        };
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
            return false;
        };
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
        header.split(' ').any(|s| s == expected)
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Wait this long before answering (to provoke timeouts).
    pub delay: Duration,
    /// Response body.
    pub body: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Drop the connection without answering (a reset, as the client sees it).
    pub reset: bool,
}

impl Reply {
    /// An immediate answer with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            body: String::new(),
            headers: Vec::new(),
            reset: false,
        }
    }

    /// Drops the connection without an answer.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::status(500)
        }
    }
}

type Responder = dyn Fn(&Captured, usize) -> Reply + Send + Sync;

/// The receiver; it stops when dropped.
pub struct TestReceiver {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestReceiver {
    /// Starts a receiver that answers with `respond(request, index)` (index counts from 0).
    pub async fn start(
        respond: impl Fn(&Captured, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let respond: Arc<Responder> = Arc::new(respond);
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let recorded = Arc::clone(&recorded);
                let respond = Arc::clone(&respond);
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let recorded = Arc::clone(&recorded);
                        let respond = Arc::clone(&respond);
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let captured = Captured {
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(ToString::to_string)
                                    .unwrap_or_default(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(n, v)| {
                                        (
                                            n.as_str().to_owned(),
                                            v.to_str().unwrap_or_default().to_owned(),
                                        )
                                    })
                                    .collect(),
                                body,
                                at: Instant::now(),
                            };
                            let index = {
                                let mut all = recorded.lock().expect("lock");
                                all.push(captured.clone());
                                all.len() - 1
                            };
                            let reply = respond(&captured, index);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            if reply.reset {
                                return Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "scripted reset",
                                ));
                            }
                            let mut response =
                                http::Response::new(Full::new(Bytes::from(reply.body)));
                            *response.status_mut() =
                                http::StatusCode::from_u16(reply.status).expect("valid status");
                            for (n, v) in reply.headers {
                                response.headers_mut().insert(
                                    http::HeaderName::from_bytes(n.as_bytes())
                                        .expect("header name"),
                                    http::HeaderValue::from_str(&v).expect("header value"),
                                );
                            }
                            Ok::<_, std::io::Error>(response)
                        }
                    });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            addr,
            requests,
            task,
        }
    }

    /// A receiver that always answers `status`.
    pub async fn always(status: u16) -> Self {
        Self::start(move |_, _| Reply::status(status)).await
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

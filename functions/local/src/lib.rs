//! `hookline serve`: the API's routes on a local HTTP port, over the embedded SQLite store,
//! with HS256 bearer tokens verified here (what API Gateway's JWT authorizer does in AWS).
#![warn(missing_docs)]

pub mod bench;
pub mod dlq;
pub mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookline_api::deliveries::DeliveriesService;
use hookline_api::intake::IntakeService;
use hookline_api::problem::Problem;
use hookline_api::routes::{Caller, Router, MAX_BODY_BYTES};
use hookline_api::service::{Settings, WebhookService};
use hookline_core::auth::{mint_hs256, verify_hs256, Principal};
use hookline_core::http::ReqwestSender;
use hookline_core::ports::PortError;
use hookline_core::queue::names;
use hookline_core::queue::sqlite::SqliteQueue;
use hookline_core::retry::RetryPolicy;
use hookline_core::store::sqlite::Database;
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_ingest::{Ingest, IngestSettings};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use workers::{consume, ConsumerSettings};

/// Key under which the token signing key is kept in the database.
const SIGNING_KEY_SETTING: &str = "dev-token-signing-key";
/// How long `serve` waits for open requests to finish after Ctrl-C.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the local server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] PortError),
    /// The outbound HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
    /// The listening socket failed.
    #[error("listening socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The embedded queues, with SQS's redrive to their DLQs.
#[derive(Clone)]
pub struct Queues {
    /// Intake.
    pub events: SqliteQueue,
    /// Events that could not be processed.
    pub events_dlq: SqliteQueue,
    /// One message per (event, webhook).
    pub deliveries: SqliteQueue,
    /// Deliveries that exhausted their retries.
    pub deliveries_dlq: SqliteQueue,
}

impl Queues {
    /// The four queues in `db`, redriving after the retry policy's `maxReceiveCount`.
    pub fn new(db: &Database, policy: &RetryPolicy) -> Self {
        let max = policy.max_receive_count();
        Self {
            events: SqliteQueue::new(db.clone(), names::EVENTS, Some((names::EVENTS_DLQ, max))),
            events_dlq: SqliteQueue::new(db.clone(), names::EVENTS_DLQ, None),
            deliveries: SqliteQueue::new(
                db.clone(),
                names::DELIVERIES,
                Some((names::DELIVERIES_DLQ, max)),
            ),
            deliveries_dlq: SqliteQueue::new(db.clone(), names::DELIVERIES_DLQ, None),
        }
    }
}

/// What `serve` runs on: the store, the queues, the routes, the handlers and the token key.
#[derive(Clone)]
pub struct Local {
    /// The embedded database.
    pub db: Database,
    /// The embedded queues.
    pub queues: Queues,
    /// Fan-out, as the `ingest` Lambda runs it.
    pub ingest: Ingest,
    /// Delivery, as the `deliver` Lambda runs it.
    pub deliver: Deliver,
    /// Parallel delivery consumers (Lambda's concurrency); [`DELIVER_WORKERS`] by default.
    pub deliver_workers: usize,
    /// The API routes.
    pub router: Router,
    /// HS256 key for bearer tokens, kept in the database so tokens survive restarts.
    pub token_key: Arc<Vec<u8>>,
    /// The claim holding permissions.
    pub permissions_claim: String,
}

fn random_key_hex() -> String {
    let mut key = [0u8; 32];
    // A failing OS RNG leaves no safe key: a loud stop beats a guessable one.
    if let Err(e) = getrandom::fill(&mut key) {
        panic!("the OS random number generator failed: {e}");
    }
    key.iter().map(|b| format!("{b:02x}")).collect()
}

impl Local {
    /// Opens the database at `path` and builds the routes with `settings`.
    pub async fn open(
        path: &Path,
        settings: Settings,
        permissions_claim: String,
    ) -> Result<Self, LocalError> {
        Self::open_with(
            path,
            settings,
            permissions_claim,
            DeliverSettings::default(),
        )
        .await
    }

    /// Opens the database at `path` with the delivery settings (retry schedule, timeout) too.
    pub async fn open_with(
        path: &Path,
        settings: Settings,
        permissions_claim: String,
        delivery: DeliverSettings,
    ) -> Result<Self, LocalError> {
        let db = Database::open(path)?;
        let key_hex = db
            .setting_or_insert(SIGNING_KEY_SETTING, random_key_hex)
            .await?;
        let http: Arc<ReqwestSender> = Arc::new(
            ReqwestSender::new(settings.targets, &settings.user_agent)
                .map_err(|e| LocalError::Http(e.to_string()))?,
        );
        let namespace = settings.namespace.clone();
        let webhooks = WebhookService::new(Arc::new(db.clone()), http.clone(), settings);
        let queues = Queues::new(&db, &delivery.policy);
        let intake = IntakeService::new(Arc::new(queues.events.clone()), namespace.clone());
        let ingest = Ingest::new(
            Arc::new(db.clone()),
            Arc::new(db.clone()),
            Arc::new(queues.deliveries.clone()),
            Arc::new(queues.events_dlq.clone()),
            IngestSettings {
                namespace,
                ..IngestSettings::default()
            },
        );
        let deliver = Deliver::new(
            Arc::new(db.clone()),
            Arc::new(db.clone()),
            Arc::new(db.clone()),
            Arc::new(queues.deliveries.clone()),
            http,
            delivery,
        );
        let deliveries = DeliveriesService::new(
            webhooks.clone(),
            Arc::new(db.clone()),
            Arc::new(db.clone()),
            Arc::new(queues.deliveries.clone()),
        );
        Ok(Self {
            db,
            queues,
            ingest,
            deliver,
            deliver_workers: DELIVER_WORKERS,
            router: Router::new(webhooks, intake, deliveries),
            token_key: Arc::new(key_hex.into_bytes()),
            permissions_claim,
        })
    }

    /// Mints a bearer token for `principal`, valid for `ttl`.
    pub fn mint_token(&self, principal: &Principal, ttl: Duration) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        mint_hs256(
            &self.token_key,
            principal,
            &self.permissions_claim,
            now,
            now.saturating_add(ttl),
        )
    }

    fn caller(&self, headers: &http::HeaderMap) -> Caller {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Caller::Anonymous;
        };
        let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return Caller::Refused("Authorization must be \"Bearer <token>\"".into());
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match verify_hs256(&self.token_key, token.trim(), &self.permissions_claim, now) {
            Ok(p) => Caller::Principal(p),
            Err(e) => Caller::Refused(e.to_string()),
        }
    }

    async fn serve_one(&self, request: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Problem::too_large(MAX_BODY_BYTES)
                    .into_response()
                    .map(Full::new);
            }
            Err(e) => {
                return Problem::bad_request(format!("the body could not be read: {e}"))
                    .into_response()
                    .map(Full::new);
            }
        };
        let caller = self.caller(&parts.headers);
        let request = http::Request::from_parts(parts, body);
        self.router.handle(request, caller).await.map(Full::new)
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then lets open requests
    /// finish for up to [`SHUTDOWN_GRACE`].
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LocalError> {
        let (stop_workers, stop) = watch::channel(false);
        let workers = self.spawn_workers(stop);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = hyper::server::conn::http1::Builder::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    let local = self.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let local = local.clone();
                        async move { Ok::<_, std::convert::Infallible>(local.serve_one(req).await) }
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down: waiting for open requests");
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("open requests did not finish within {SHUTDOWN_GRACE:?}");
        }
        // Workers finish the batch in hand; what they leave comes back after its visibility
        // timeout on the next start.
        let _ = stop_workers.send(true);
        for worker in workers {
            if tokio::time::timeout(SHUTDOWN_GRACE, worker).await.is_err() {
                tracing::warn!("a queue worker did not stop within {SHUTDOWN_GRACE:?}");
            }
        }
        Ok(())
    }

    /// Starts the queue consumers (ingest now, delivery with its issue) until `stop` is true.
    pub fn spawn_workers(&self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for _ in 0..INGEST_WORKERS {
            let ingest = self.ingest.clone();
            handles.push(tokio::spawn(consume(
                self.db.clone(),
                self.queues.events.clone(),
                INGEST_CONSUMER,
                stop.clone(),
                move |batch| {
                    let ingest = ingest.clone();
                    async move { ingest.handle_batch(&batch).await }
                },
            )));
        }
        for _ in 0..self.deliver_workers.max(1) {
            let deliver = self.deliver.clone();
            handles.push(tokio::spawn(consume(
                self.db.clone(),
                self.queues.deliveries.clone(),
                DELIVER_CONSUMER,
                stop.clone(),
                move |batch| {
                    let deliver = deliver.clone();
                    async move { deliver.handle_batch(&batch).await }
                },
            )));
        }
        let (db, mut stop) = (self.db.clone(), stop);
        handles.push(tokio::spawn(async move {
            // DynamoDB's TTL, embedded: expired events and attempts go.
            while !*stop.borrow() {
                match db.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "expired events and attempts purged"),
                    Err(e) => tracing::warn!(error = %e, "purge failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(PURGE_EVERY) => {}
                    _ = stop.changed() => {}
                }
            }
        }));
        handles
    }
}

/// How often expired events and attempts are deleted.
pub const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);
/// Parallel delivery consumers (Lambda's concurrency); each delivers its batch concurrently.
pub const DELIVER_WORKERS: usize = 4;
/// Batch size and visibility of the delivery consumers; polls often so millisecond backoff
/// schedules (tests, `HOOKLINE_RETRY_SCHEDULE_MS`) are kept.
pub const DELIVER_CONSUMER: ConsumerSettings = ConsumerSettings {
    batch_size: 10,
    visibility: Duration::from_secs(60),
    idle_poll: Duration::from_millis(50),
};

/// Parallel ingest consumers (Lambda's concurrency).
pub const INGEST_WORKERS: usize = 2;
/// Batch size and visibility of the ingest consumers.
pub const INGEST_CONSUMER: ConsumerSettings = ConsumerSettings {
    batch_size: 10,
    visibility: Duration::from_secs(30),
    idle_poll: Duration::from_millis(500),
};

/// Binds `addr` (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, LocalError> {
    Ok(TcpListener::bind(addr).await?)
}

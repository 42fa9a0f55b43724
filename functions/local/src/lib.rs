//! `hookline serve`: the API's routes on a local HTTP port, over the embedded SQLite store,
//! with HS256 bearer tokens verified here (what API Gateway's JWT authorizer does in AWS).
#![warn(missing_docs)]

/// `println!` that does not panic when stdout is a closed pipe (`hookline ... | head -1`).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod backpressure;
pub mod cli;
pub mod dlq;
pub mod intake;
pub mod keys;
pub mod listen;
pub mod metrics;
pub mod progress;
pub mod recover;
pub mod token;
pub mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backpressure::{BacklogGate, BacklogLimits};
use hookline_api::auth::with_auth;
use hookline_api::settings::Settings;
use hookline_api::Api;
use hookline_core::adapters::aws::destinations::AwsDestinations;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::adapters::sqlite::{self, Database, Queues, Recovered};
use hookline_core::auth::Principal;
use hookline_core::jobs::Jobs;
use hookline_core::ports::PortError;
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_ingest::{Ingest, IngestSettings};
use token::Tokens;
use tokio::net::TcpListener;
use tokio::sync::watch;
use workers::{consume, watch_other_writers, ConsumerSettings};

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
    /// The keys that seal credentials are missing, wrong or unreadable.
    #[error("keys: {0}")]
    Keys(#[from] keys::KeyError),
    /// Another `hookline serve` has the store.
    #[error("{0} is in use by another `hookline serve` (two would consume the same queues): stop that one, or pass another --db")]
    Locked(String),
}

/// Takes the store for this process (an advisory lock on the database file, released at exit),
/// so that a second `serve` on the same file refuses to start.
pub fn lock_store(path: &Path) -> Result<std::fs::File, LocalError> {
    let file = std::fs::File::open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(LocalError::Locked(path.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(LocalError::Io(e)),
    }
}

/// [`lock_store`] on a store that may not exist yet: an empty file is made first (SQLite
/// takes an empty file as a new database).
pub fn lock_new_store(path: &Path) -> Result<std::fs::File, LocalError> {
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => std::fs::File::open(path),
                _ => Err(e),
            })?;
    }
    lock_store(path)
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise; colours only on a
/// terminal.
pub fn init_logging(default_level: &str) {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// What an owned start found: the keys, and what a previous owner had left in flight.
#[derive(Debug)]
pub struct Startup {
    /// The keys, their origin and what the start resealed.
    pub keys: keys::LoadedKeys,
    /// Claims and receive leases released.
    pub recovered: Recovered,
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
    pub router: Api,
    /// The bearer tokens' HS256 key, kept in the database so tokens survive restarts.
    pub tokens: Tokens,
    /// Intake's backpressure ([`BacklogLimits::default`] unless set).
    pub backlog: Arc<BacklogGate>,
    /// The keys sealing the store's credentials.
    pub keys: Arc<hookline_core::sealed::Keyring>,
    /// `GET /metrics`: the process's Prometheus recorder and the queues it reports.
    pub metrics: metrics::Scrape,
    /// Background jobs (recover), over the same ports.
    pub jobs: Jobs,
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
        Self::build(path, db, settings, permissions_claim, delivery)
            .await
            .map(|(local, _)| local)
    }

    /// Opens the database at `path` as its only owner (the caller holds [`lock_store`]'s
    /// lock): what a stopped or crashed owner held is released at once ([`Recovered`]).
    pub async fn open_owned(
        path: &Path,
        settings: Settings,
        permissions_claim: String,
        delivery: DeliverSettings,
    ) -> Result<(Self, Startup), LocalError> {
        let (db, recovered) = Database::open_owned(path)?;
        let (local, keys) = Self::build(path, db, settings, permissions_claim, delivery).await?;
        Ok((local, Startup { keys, recovered }))
    }

    async fn build(
        path: &Path,
        db: Database,
        settings: Settings,
        permissions_claim: String,
        mut delivery: DeliverSettings,
    ) -> Result<(Self, keys::LoadedKeys), LocalError> {
        // One retention for the event log, the attempt log and the API's windows.
        delivery.retention = settings.retention;
        let master_key = std::env::var(keys::MASTER_KEY_VAR).ok();
        let loaded = keys::load(path, &db, master_key.as_deref()).await?;
        let key_hex = db
            .setting_or_insert(SIGNING_KEY_SETTING, random_key_hex)
            .await?;
        let http: Arc<ReqwestSender> = Arc::new(
            ReqwestSender::with_proxy(
                settings.targets,
                &settings.user_agent,
                settings.egress_proxy.as_ref(),
            )
            .map_err(|e| LocalError::Http(e.to_string()))?,
        );
        let queues = Queues::new(&db, &delivery.policy);
        let mut ports = sqlite::ports(
            &db,
            &queues,
            loaded.keyring.clone(),
            settings.namespace.clone(),
        );
        // AWS destinations: the SDK's configuration (credentials, region, AWS_ENDPOINT_URL)
        // is loaded when the first one is checked or delivered to, not at start.
        ports.destinations = Some(Arc::new(AwsDestinations::lazy(delivery.timeout)));
        let backlog = Arc::new(BacklogGate::new(
            queues.events.clone(),
            queues.deliveries.clone(),
            BacklogLimits::default(),
        ));
        let ingest = Ingest::from_ports(
            &ports,
            Arc::new(queues.events_dlq.clone()),
            IngestSettings {
                namespace: settings.namespace.clone(),
                // The event log is a local read here: delivery messages stay small rather
                // than carrying their event (what saves a DynamoDB read on AWS).
                embed_event_bytes: 0,
                retention: settings.retention,
                ..IngestSettings::default()
            },
        );
        // Installed before the handlers record anything.
        let scrape = metrics::Scrape::new(queues.clone());
        hookline_core::telemetry::set_app_label(settings.metrics_app_label);
        let deliver = Deliver::from_ports(&ports, http.clone(), delivery);
        // Events the API takes in (and its operational events) are fanned out in the
        // commit that accepts them, skipping the events queue (`intake`).
        let api_ports = hookline_core::ports::Ports {
            event_queue: Arc::new(intake::FanOutAtIntake::new(
                ingest.clone(),
                ports.event_queue.clone(),
            )),
            ..ports.clone()
        };
        let router = Api::from_ports(&api_ports, http, settings, Some(backlog.clone()));
        let local = Self {
            db,
            queues,
            ingest,
            deliver,
            deliver_workers: DELIVER_WORKERS,
            router,
            tokens: Tokens::new(key_hex.as_bytes(), permissions_claim),
            backlog,
            keys: loaded.keyring.clone(),
            metrics: scrape,
            jobs: Jobs::from_ports(&ports),
        };
        Ok((local, loaded))
    }

    /// Mints a bearer token for `principal`, valid for `ttl`.
    pub fn mint_token(&self, principal: &Principal, ttl: Duration) -> String {
        self.tokens.mint(principal, ttl)
    }

    /// The routes as `serve` answers them (the API's and `GET /metrics`): every request's
    /// caller from its bearer token.
    pub fn app(&self) -> axum::Router {
        let routes = metrics::routes(self.metrics.clone()).merge(self.router.routes());
        with_auth(routes, self.tokens.clone())
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then lets open requests
    /// finish for up to [`SHUTDOWN_GRACE`].
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), LocalError> {
        let (stop_workers, stop) = watch::channel(false);
        let workers = self.spawn_workers(stop);
        let (stopping, mut stopping_seen) = watch::channel(false);
        let server = axum::serve(listener, self.app()).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: waiting for open requests");
            let _ = stopping.send(true);
        });
        let grace = async move {
            let _ = stopping_seen.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            served = server => served?,
            () = grace => tracing::warn!("open requests did not finish within {SHUTDOWN_GRACE:?}"),
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
                self.queues.deliveries.clone(),
                DELIVER_CONSUMER,
                stop.clone(),
                move |batch| {
                    let deliver = deliver.clone();
                    async move { deliver.handle_batch(&batch).await }
                },
            )));
        }
        handles.push(tokio::spawn(self.metrics.clone().upkeep(stop.clone())));
        handles.push(tokio::spawn(watch_other_writers(
            self.db.clone(),
            stop.clone(),
        )));
        handles.push(tokio::spawn(sweep(self.db.clone(), stop)));
        handles
    }
}

/// How often the sweeper looks for expired events and attempts.
pub const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Rows of each table one sweep transaction deletes at most.
pub const PURGE_BATCH: usize = 200;
/// The shortest pause between two sweep transactions.
pub const PURGE_PAUSE: Duration = Duration::from_millis(20);
/// The pause after a sweep transaction, as a multiple of the time it took: at 4 the sweeper
/// holds the store's one writer at most a fifth of the time, live traffic the rest.
pub const PURGE_YIELD: u32 = 4;

/// DynamoDB's TTL, embedded: deletes expired events and attempts (`HOOKLINE_RETENTION`) in
/// transactions of at most [`PURGE_BATCH`] rows per table, each followed by a pause of
/// [`PURGE_YIELD`] times its duration (at least [`PURGE_PAUSE`]), every [`PURGE_EVERY`], until
/// `stop`.
pub async fn sweep(db: Database, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let (mut events, mut attempts) = (0, 0);
        loop {
            let started = std::time::Instant::now();
            match db.purge_expired(PURGE_BATCH).await {
                Ok((e, a)) => {
                    events += e;
                    attempts += a;
                    if e < PURGE_BATCH && a < PURGE_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping expired events and attempts failed; trying again later");
                    break;
                }
            }
            if *stop.borrow() {
                return;
            }
            tokio::time::sleep((started.elapsed() * PURGE_YIELD).max(PURGE_PAUSE)).await;
        }
        if events + attempts > 0 {
            tracing::info!(events, attempts, "expired events and attempts deleted");
        }
        tokio::select! {
            () = tokio::time::sleep(PURGE_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
/// Parallel delivery consumers (Lambda's concurrency); each delivers its batch concurrently.
/// 16 (160 deliveries in flight): with receives served from memory, throughput grows with
/// consumers up to about this many on the reference machine (4: 3 100/s, 16: 4 600/s,
/// 32: 4 800/s; BENCHMARKS.md §1).
pub const DELIVER_WORKERS: usize = 16;
/// Batch size and visibility of the delivery consumers. Idle, they sleep until woken or
/// until the next retry is due (millisecond backoff schedules are kept), 30 s at most.
pub const DELIVER_CONSUMER: ConsumerSettings = ConsumerSettings {
    batch_size: 10,
    visibility: Duration::from_secs(60),
    idle_poll: Duration::from_secs(30),
};

/// Parallel ingest consumers (Lambda's concurrency).
pub const INGEST_WORKERS: usize = 2;
/// Batch size and visibility of the ingest consumers.
pub const INGEST_CONSUMER: ConsumerSettings = ConsumerSettings {
    batch_size: 10,
    visibility: Duration::from_secs(30),
    idle_poll: Duration::from_secs(30),
};

/// Binds `addr` (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, LocalError> {
    Ok(TcpListener::bind(addr).await?)
}

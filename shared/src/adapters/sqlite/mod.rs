//! The embedded adapter: every port on one SQLite file (rusqlite, bundled, WAL), durable
//! across restarts. `hookline serve` runs on it.
//!
//! rusqlite is blocking, so the one connection lives on a thread of its own and every call is
//! handed to it over a channel: SQLite serialises writers anyway, one connection keeps
//! transactions simple, and a dedicated thread costs no blocking-pool hand-off or mutex
//! contention per call (measured with `hookline bench`).
//!
//! [`ports`] wires the whole embedded composition: every port on one [`Database`] and its
//! [`Queues`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use crate::adapters::record::{from_document, to_document};
use crate::delivery::{Attempt, AttemptStatus, DeliveryId};
use crate::event::{Event, EventId};
use crate::ports::{
    AttemptLog, Cursor, EventClaim, EventLog, GrantStore, LoggedEvent, Page, PortError,
    RevokedGrant, WebhookStore,
};
use crate::timestamp::{from_unix_ms, unix_ms};
use crate::webhook::{FailureRun, Route, Webhook, WebhookId};
use schedule::{Row, Schedule};

mod attempts;
mod events;
mod fan_out;
mod grants;
mod jobs;
pub mod queue;
pub mod schedule;
mod webhooks;

use webhooks::write_routes;

pub use queue::{names, Queues, SqliteQueue, StoredMessage};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE webhooks (
         id      TEXT PRIMARY KEY,
         version INTEGER NOT NULL,
         doc     TEXT NOT NULL
     );
     CREATE TABLE webhook_routes (
         app_id     TEXT NOT NULL,
         webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
         PRIMARY KEY (app_id, webhook_id)
     ) WITHOUT ROWID;",
    "CREATE TABLE local_settings (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );",
    "CREATE TABLE events (
         id          TEXT PRIMARY KEY,
         doc         TEXT NOT NULL,
         fanned_out  INTEGER NOT NULL DEFAULT 0,
         claimed_until INTEGER NOT NULL DEFAULT 0,
         received_at INTEGER NOT NULL,
         expires_at  INTEGER NOT NULL
     );
     CREATE INDEX events_expiry ON events (expires_at);
     CREATE TABLE queue_messages (
         seq           INTEGER PRIMARY KEY AUTOINCREMENT,
         queue         TEXT NOT NULL,
         message_id    TEXT NOT NULL UNIQUE,
         body          TEXT NOT NULL,
         reason        TEXT,
         sent_at       INTEGER NOT NULL,
         visible_at    INTEGER NOT NULL,
         receive_count INTEGER NOT NULL DEFAULT 0,
         receipt       TEXT
     );
     CREATE INDEX queue_ready ON queue_messages (queue, visible_at);
     CREATE INDEX queue_redrive ON queue_messages (queue, receive_count, visible_at);
     CREATE INDEX queue_receipt ON queue_messages (receipt);
     CREATE TABLE attempts (
         webhook_id TEXT NOT NULL,
         attempt_id TEXT NOT NULL,
         status     TEXT NOT NULL,
         delivery_id TEXT NOT NULL,
         event_id   TEXT NOT NULL,
         doc        TEXT NOT NULL,
         expires_at INTEGER NOT NULL,
         PRIMARY KEY (webhook_id, attempt_id)
     ) WITHOUT ROWID;
     CREATE INDEX attempts_expiry ON attempts (expires_at);
     CREATE INDEX attempts_delivery ON attempts (webhook_id, delivery_id);",
    // Failure runs beside the webhook document (counted without touching its version), and
    // the grants the platform revoked.
    "ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
     ALTER TABLE webhooks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE webhooks ADD COLUMN last_failure TEXT;
     CREATE TABLE revoked_grants (
         sub    TEXT NOT NULL,
         app_id TEXT NOT NULL,
         since  INTEGER NOT NULL,
         PRIMARY KEY (sub, app_id)
     ) WITHOUT ROWID;",
    // Ordering groups: only the oldest message of a group can be received (SQS FIFO).
    "ALTER TABLE queue_messages ADD COLUMN group_id TEXT;
     CREATE INDEX queue_groups ON queue_messages (queue, group_id, seq) WHERE group_id IS NOT NULL;",
    // Per-App route versions, moved by every webhook write naming the App: what fan-out's
    // route cache checks instead of reading the App's webhooks per event.
    "CREATE TABLE app_versions (
         app_id  TEXT PRIMARY KEY,
         version INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // The queue's visibility schedule moved to memory (`queue::schedule`), rebuilt from this
    // table on start: a message is one row, inserted on send and deleted when handled, with
    // no secondary index to keep up on the hot path (it had five B-trees, three of them
    // rewritten on every receive). `message_id` stays, without its unique index: ids are
    // ULIDs, and a DLQ replay finds them by scanning its queue.
    "CREATE TABLE queue_messages_v7 (
         seq           INTEGER PRIMARY KEY AUTOINCREMENT,
         queue         TEXT NOT NULL,
         message_id    TEXT NOT NULL,
         body          TEXT NOT NULL,
         reason        TEXT,
         sent_at       INTEGER NOT NULL,
         visible_at    INTEGER NOT NULL,
         receive_count INTEGER NOT NULL DEFAULT 0,
         group_id      TEXT
     );
     INSERT INTO queue_messages_v7 (seq, queue, message_id, body, reason, sent_at, visible_at, receive_count, group_id)
         SELECT seq, queue, message_id, body, reason, sent_at, visible_at, receive_count, group_id FROM queue_messages;
     DROP TABLE queue_messages;
     ALTER TABLE queue_messages_v7 RENAME TO queue_messages;",
    // Messages hidden because a receive was written back (not because a retry delayed
    // them): what a restarting owner makes visible again at once.
    "ALTER TABLE queue_messages ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;",
    // Background jobs (recover, ...): at most one unfinished job per webhook.
    "CREATE TABLE jobs (
         id         TEXT PRIMARY KEY,
         webhook_id TEXT NOT NULL,
         active     INTEGER NOT NULL,
         version    INTEGER NOT NULL,
         doc        TEXT NOT NULL
     );
     CREATE UNIQUE INDEX jobs_active ON jobs (webhook_id) WHERE active = 1;",
    // Each event's App, for listing an App's events in receipt order (backfill, purges);
    // events logged before this migration take theirs from the URN in their document.
    "ALTER TABLE events ADD COLUMN app_id TEXT;
     UPDATE events SET app_id = (
         WITH u(rest) AS (SELECT substr(json_extract(doc, '$.urn'), instr(json_extract(doc, '$.urn'), ':app:') + 5))
         SELECT CASE WHEN instr(rest, ':') > 0 THEN substr(rest, 1, instr(rest, ':') - 1) ELSE rest END FROM u
     ) WHERE instr(json_extract(doc, '$.urn'), ':app:') > 0;
     CREATE INDEX events_app ON events (app_id, received_at, id);",
    // Each attempt's App (App purges); a job locks its webhook or, for a purge, its App.
    "ALTER TABLE attempts ADD COLUMN app_id TEXT;
     UPDATE attempts SET app_id = (SELECT e.app_id FROM events e WHERE e.id = attempts.event_id);
     ALTER TABLE jobs RENAME COLUMN webhook_id TO lock_key;",
];

/// Writes a webhook's row with `sql` (parameters: id, version, document) and its routes.
fn write_webhook(
    tx: &Connection,
    sql: &str,
    webhook: &Webhook,
    doc: &str,
) -> Result<(), PortError> {
    exec(
        tx,
        sql,
        params![webhook.id.as_str(), version_param(webhook.version)?, doc],
    )
    .map_err(unavailable)?;
    write_routes(tx, webhook)
}

/// What a restarting owner let go of.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Event claims released (fan-outs a crash interrupted).
    pub claims: usize,
    /// Messages made visible (received, neither deleted nor delayed, when it stopped).
    pub messages: usize,
}

/// Releases every event claim and every receive lease; a no-op on a new file (no tables yet).
fn recover_in_flight(c: &Connection) -> rusqlite::Result<Recovered> {
    let now = time::OffsetDateTime::now_utc();
    let claims = c.execute(
        "UPDATE events SET claimed_until = 0 WHERE fanned_out = 0 AND claimed_until > 0",
        [],
    )?;
    let messages = c.execute(
        "UPDATE queue_messages SET visible_at = ?1, leased = 0 WHERE leased = 1",
        params![unix_ms(now)],
    )?;
    Ok(Recovered { claims, messages })
}

/// Every row of the queue table, as the schedule is built from it.
pub(crate) fn queue_rows(c: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, queue, visible_at, receive_count, group_id FROM queue_messages ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Row {
            seq: r.get(0)?,
            queue: r.get(1)?,
            visible_at: r.get(2)?,
            receive_count: r.get(3)?,
            group: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The connection's `PRAGMA data_version` (moves when another connection commits).
pub(crate) fn data_version(c: &Connection) -> rusqlite::Result<i64> {
    c.pragma_query_value(None, "data_version", |r| r.get(0))
}

/// A call to run on the connection's thread; it returns how to answer its caller once the
/// group it ran in is committed (`Err` with the reason if the commit failed).
type Job = Box<dyn FnOnce(&mut Connection) -> Reply + Send>;
/// Answers one caller with the group commit's outcome.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Most calls committed together.
const GROUP_LIMIT: usize = 128;

/// The connection's thread: takes every call waiting (up to [`GROUP_LIMIT`]), runs them in one
/// `BEGIN IMMEDIATE` … `COMMIT`, each in a savepoint of its own, and answers them after the
/// commit. Concurrent writers then share one WAL commit instead of one each; a call that
/// fails rolls back its own savepoint only; a failed commit fails the whole group, and no
/// caller hears success before its writes are committed. Ends when every handle is dropped.
fn group_commit(conn: &mut Connection, inbox: &mpsc::Receiver<Job>) {
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match inbox.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Not run: each caller hears that its call was dropped.
            tracing::error!(calls = group.len(), error = %e, "SQLite BEGIN failed; calls not run");
            continue;
        }
        let replies: Vec<Reply> = group.into_iter().map(|job| job(conn)).collect();
        let committed = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            format!("SQLite COMMIT failed: {e}")
        });
        for reply in replies {
            reply(committed.clone());
        }
    }
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Runs `sql` through the connection's statement cache.
pub(crate) fn exec<P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// One row of `sql`, through the connection's statement cache.
pub(crate) fn query_row<T, P, F>(c: &Connection, sql: &str, params: P, f: F) -> rusqlite::Result<T>
where
    P: rusqlite::Params,
    F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
{
    c.prepare_cached(sql)?.query_row(params, f)
}

/// One SQLite database holding every embedded port's tables.
#[derive(Clone)]
pub struct Database {
    jobs: mpsc::Sender<Job>,
    sent: Arc<Mutex<HashMap<String, Arc<tokio::sync::Notify>>>>,
    taken: Arc<tokio::sync::Notify>,
    schedule: Arc<Mutex<Schedule>>,
    webhook_writes: Arc<std::sync::atomic::AtomicU64>,
}

/// Wraps a SQLite error as a retryable port error.
pub(crate) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::Unavailable(Box::new(e))
}

impl Database {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, PortError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        Self::init(conn, false).map(|(db, _)| db)
    }

    /// Opens the file as its only owner (the caller holds the store's lock, as `hookline
    /// serve` does): whatever a previous owner held when it stopped is let go at once, so a
    /// crash costs no lease. Event claims are released and messages hidden by a receive are
    /// visible again; messages a retry delayed keep their time.
    pub fn open_owned(path: &Path) -> Result<(Self, Recovered), PortError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        Self::init(conn, true)
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn open_in_memory() -> Result<Self, PortError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?, false).map(|(db, _)| db)
    }

    fn init(mut conn: Connection, owned: bool) -> Result<(Self, Recovered), PortError> {
        // WAL + synchronous=FULL: every commit is fsync'd before any caller of its group
        // hears success, so an event answered 202 survives power loss, not only a process
        // crash. Group commit (below) makes that one fsync per group, not per call.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(unavailable)?;
        // Checkpoints every 4 000 pages (default 1 000) cost a quarter as many fsyncs. The
        // page cache stays at SQLite's 2 MiB: a 32 MiB one made every commit's cache
        // truncation scan slower (pcache1TruncateUnsafe, profiled) and gained nothing.
        conn.pragma_update(None, "wal_autocheckpoint", 4_000)
            .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        // Every statement is prepared once and reused: parsing SQL was a tenth of the
        // delivery path's CPU (`hookline bench`, profiled).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let applied: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(unavailable)?;
        if applied > MIGRATIONS.len() {
            return Err(PortError::Corrupt(format!(
                "database schema version {applied} is newer than this build ({})",
                MIGRATIONS.len()
            )));
        }
        let tx = conn.transaction().map_err(unavailable)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.execute_batch(sql).map_err(unavailable)?;
            tx.pragma_update(None, "user_version", i + 1)
                .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        // Released before the schedule is built from the table, so it sees them visible.
        let recovered = if owned {
            recover_in_flight(&conn).map_err(unavailable)?
        } else {
            Recovered::default()
        };
        let mut schedule = Schedule::from_rows(queue_rows(&conn).map_err(unavailable)?);
        schedule.data_version_moved(data_version(&conn).map_err(unavailable)?);
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hookline-sqlite".into())
            .spawn(move || group_commit(&mut conn, &inbox))
            .map_err(|e| {
                PortError::Unavailable(format!("starting the SQLite thread: {e}").into())
            })?;
        let db = Self {
            jobs,
            sent: Arc::default(),
            taken: Arc::new(tokio::sync::Notify::new()),
            schedule: Arc::new(Mutex::new(schedule)),
            webhook_writes: Arc::default(),
        };
        Ok((db, recovered))
    }

    /// Runs a webhook write like [`Self::with_conn`], then counts it once it committed (or
    /// failed: counting one too many only costs a deliverer a read).
    async fn write_webhooks<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, PortError> + Send + 'static,
    {
        let written = self.with_conn(f).await;
        self.webhook_writes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        written
    }

    /// The embedded queues' visibility schedule (the index over `queue_messages`).
    pub(crate) fn schedule(&self) -> &Arc<Mutex<Schedule>> {
        &self.schedule
    }

    /// Queue `queue`'s wake-up: one waiting consumer is woken (or the next to wait finds it
    /// set) when a message is sent to it, or one becomes receivable that a consumer asleep
    /// until the next due message would not see (a group's next member).
    pub fn message_sent(&self, queue: &str) -> Arc<tokio::sync::Notify> {
        let mut by_queue = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = by_queue.get(queue) {
            return notify.clone();
        }
        by_queue.entry(queue.to_owned()).or_default().clone()
    }

    /// Wakes every consumer waiting on any queue (the table changed under them).
    pub fn wake_consumers(&self) {
        let by_queue = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        for notify in by_queue.values() {
            notify.notify_waiters();
        }
    }

    /// Looks whether another process (`hookline dlq replay`) committed to the file since the
    /// last look; if so, the queue schedule is rebuilt before the next receive and every
    /// consumer is woken to make it. One read of `PRAGMA data_version`: `hookline serve` runs
    /// it every second, so idle consumers need not poll the table.
    pub async fn check_other_writers(&self) -> Result<(), PortError> {
        let version = self
            .with_conn(|c| data_version(c).map_err(unavailable))
            .await?;
        let moved = {
            let mut s = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
            s.checked(unix_ms(time::OffsetDateTime::now_utc()));
            let moved = s.data_version_moved(version);
            if moved {
                s.mark_stale();
            }
            moved
        };
        if moved {
            tracing::info!("another process wrote to the store: the queues are read again");
            self.wake_consumers();
        }
        Ok(())
    }

    /// Woken whenever a consumer takes messages from any embedded queue (intake's
    /// backpressure waits on it).
    pub fn messages_taken(&self) -> &tokio::sync::Notify {
        &self.taken
    }

    /// Runs `f` on the connection's thread, inside a savepoint of the group transaction it
    /// joins; returns once that group is committed (or with the commit's error).
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, PortError> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // A panic in one call must not take the connection's thread with it; its open
            // savepoint is rolled back as it unwinds.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(PortError::Corrupt("a SQLite call panicked".into())));
            Box::new(move |committed: Result<(), String>| {
                let _ = done.send(
                    committed
                        .map_err(|e| PortError::Unavailable(e.into()))
                        .and(outcome),
                );
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| PortError::Unavailable("the SQLite thread has stopped".into()))?;
        result
            .await
            .map_err(|_| PortError::Unavailable("the SQLite thread dropped a call".into()))?
    }

    /// Reads a local setting, storing `make()` first if it is not there yet.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String + Send + 'static,
    ) -> Result<String, PortError> {
        let key = key.to_owned();
        self.with_conn(move |c| {
            let tx = c.savepoint().map_err(unavailable)?;
            let found: Option<String> = query_row(
                &tx,
                "SELECT value FROM local_settings WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(unavailable)?;
            let value = match found {
                Some(v) => v,
                None => {
                    let v = make();
                    exec(
                        &tx,
                        "INSERT INTO local_settings (key, value) VALUES (?1, ?2)",
                        params![key, v],
                    )
                    .map_err(unavailable)?;
                    v
                }
            };
            tx.commit().map_err(unavailable)?;
            Ok(value)
        })
        .await
    }

    /// Checks the file's integrity (`PRAGMA integrity_check`); `Ok` holds SQLite's report.
    pub async fn integrity_check(&self) -> Result<String, PortError> {
        self.with_conn(|c| {
            query_row(c, "PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
                .map_err(unavailable)
        })
        .await
    }
}

fn version_param(v: u64) -> Result<i64, PortError> {
    i64::try_from(v).map_err(|_| PortError::Corrupt(format!("version {v} out of range")))
}

fn from_epoch_ms(ms: i64) -> Result<time::OffsetDateTime, PortError> {
    from_unix_ms(ms).ok_or_else(|| PortError::Corrupt(format!("stored time {ms} is out of range")))
}

/// Every port on the embedded store: webhooks, grants, the event and attempt logs in `db`,
/// the queues of `queues`, the in-memory rate limiter (one process sends everything), and
/// `keys` (from the key file or `HOOKLINE_MASTER_KEY`).
pub fn ports(
    db: &Database,
    queues: &Queues,
    keys: Arc<crate::sealed::Keyring>,
    namespace: crate::urn::Namespace,
) -> crate::ports::Ports {
    crate::ports::Ports {
        webhooks: Arc::new(db.clone()),
        grants: Arc::new(db.clone()),
        events: Arc::new(db.clone()),
        attempts: Arc::new(db.clone()),
        jobs: Arc::new(db.clone()),
        event_queue: Arc::new(queues.events.clone()),
        deliveries: Arc::new(queues.deliveries.clone()),
        fan_out_commit: Some(Arc::new(queues.deliveries.clone())),
        rate_limiter: Arc::new(crate::adapters::memory::MemoryRateLimiter::default()),
        vault: Arc::new(crate::ports::FixedVault(keys)),
        // `hookline serve` adds its own (`AwsDestinations::lazy`).
        destinations: None,
        namespace,
    }
}

//! The embedded adapter: every port on one SQLite file (rusqlite, bundled, WAL), durable
//! across restarts. `hookline serve` runs on it.
//!
//! rusqlite is blocking, so the one connection lives on a thread of its own and every call is
//! handed to it over a channel: SQLite serialises writers anyway, one connection keeps
//! transactions simple, and a dedicated thread costs no blocking-pool hand-off or mutex
//! contention per call (measured with `hookline bench`).

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{from_document, to_document};
use crate::event::{Event, EventId};
use crate::lifecycle::FailureRun;
use crate::millis::{from_unix_ms, unix_ms};
use crate::ports::{
    Attempt, AttemptLog, AttemptStatus, Cursor, DeliveryId, EventClaim, EventLog, GrantStore, Page,
    PortError, RevokedGrant, WebhookStore,
};
use crate::queue::schedule::{Row, Schedule};
use crate::webhook::{Route, Webhook, WebhookId};

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
    sent: Arc<tokio::sync::Notify>,
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
        Self::init(conn)
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn open_in_memory() -> Result<Self, PortError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn init(mut conn: Connection) -> Result<Self, PortError> {
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
        let mut schedule = Schedule::from_rows(queue_rows(&conn).map_err(unavailable)?);
        schedule.data_version_moved(data_version(&conn).map_err(unavailable)?);
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hookline-sqlite".into())
            .spawn(move || group_commit(&mut conn, &inbox))
            .map_err(|e| {
                PortError::Unavailable(format!("starting the SQLite thread: {e}").into())
            })?;
        Ok(Self {
            jobs,
            sent: Arc::new(tokio::sync::Notify::new()),
            taken: Arc::new(tokio::sync::Notify::new()),
            schedule: Arc::new(Mutex::new(schedule)),
            webhook_writes: Arc::default(),
        })
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

    /// Woken whenever a message is sent to any embedded queue (consumers wait on it).
    pub fn message_sent(&self) -> &tokio::sync::Notify {
        &self.sent
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

fn write_routes(tx: &Connection, webhook: &Webhook) -> Result<(), PortError> {
    bump_app_versions(tx, webhook.id.as_str())?;
    exec(
        tx,
        "DELETE FROM webhook_routes WHERE webhook_id = ?1",
        params![webhook.id.as_str()],
    )
    .map_err(unavailable)?;
    for app in webhook.spec.app_ids() {
        exec(
            tx,
            "INSERT INTO webhook_routes (app_id, webhook_id) VALUES (?1, ?2)",
            params![app, webhook.id.as_str()],
        )
        .map_err(unavailable)?;
    }
    bump_app_versions(tx, webhook.id.as_str())
}

/// Moves the route version of every App the webhook's route rows name; called before and
/// after they change, so the Apps it leaves and the Apps it joins both move.
fn bump_app_versions(tx: &Connection, webhook_id: &str) -> Result<(), PortError> {
    exec(
        tx,
        "INSERT INTO app_versions (app_id, version)
         SELECT app_id, 1 FROM webhook_routes WHERE webhook_id = ?1
         ON CONFLICT (app_id) DO UPDATE SET version = version + 1",
        params![webhook_id],
    )
    .map_err(unavailable)
    .map(|_| ())
}

fn stored_version(tx: &Connection, id: &str) -> Result<Option<u64>, PortError> {
    query_row(
        tx,
        "SELECT version FROM webhooks WHERE id = ?1",
        params![id],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map_err(unavailable)
    .map(|v| v.map(|v| u64::try_from(v).unwrap_or(0)))
}

/// The failure run kept in a webhook row's columns, if one is going on.
fn failure_run(
    since: Option<i64>,
    failures: i64,
    last_error: Option<String>,
) -> Result<Option<FailureRun>, PortError> {
    let Some(since) = since else {
        return Ok(None);
    };
    Ok(Some(FailureRun {
        since: from_epoch_ms(since)?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_error,
    }))
}

fn version_param(v: u64) -> Result<i64, PortError> {
    i64::try_from(v).map_err(|_| PortError::Corrupt(format!("version {v} out of range")))
}

fn from_epoch_ms(ms: i64) -> Result<time::OffsetDateTime, PortError> {
    from_unix_ms(ms).ok_or_else(|| PortError::Corrupt(format!("stored time {ms} is out of range")))
}

#[async_trait]
impl EventLog for Database {
    async fn claim(
        &self,
        event: &Event,
        expires_at: time::OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<EventClaim, PortError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let id = event.id.to_string();
        let doc = String::from_utf8(
            event
                .delivery_body()
                .map_err(|e| PortError::Corrupt(e.to_string()))?,
        )
        .map_err(|e| PortError::Corrupt(e.to_string()))?;
        let now = unix_ms(time::OffsetDateTime::now_utc());
        let expires = unix_ms(expires_at);
        self.with_conn(move |c| {
            let tx = c
                .savepoint()
                .map_err(unavailable)?;
            // An expired entry is as good as absent (TTL).
            let found: Option<(bool, i64, i64)> = query_row(
                &tx,
                    "SELECT fanned_out, expires_at, claimed_until FROM events WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let claim = match found {
                Some((true, exp, _)) if exp > now => EventClaim::Done,
                Some((false, exp, until)) if exp > now && until > now => EventClaim::InProgress,
                Some((false, exp, _)) if exp > now => {
                    exec(&tx,
                        "UPDATE events SET claimed_until = ?2 WHERE id = ?1",
                        params![id, now.saturating_add(lease_ms)],
                    )
                    .map_err(unavailable)?;
                    EventClaim::Unfinished
                }
                _ => {
                    exec(&tx,
                        "INSERT OR REPLACE INTO events (id, doc, fanned_out, claimed_until, received_at, expires_at)
                         VALUES (?1, ?2, 0, ?3, ?4, ?5)",
                        params![id, doc, now.saturating_add(lease_ms), now, expires],
                    )
                    .map_err(unavailable)?;
                    EventClaim::New
                }
            };
            tx.commit().map_err(unavailable)?;
            Ok(claim)
        })
        .await
    }

    async fn release(&self, id: &EventId) -> Result<(), PortError> {
        let id = id.to_string();
        self.with_conn(move |c| {
            exec(
                c,
                "UPDATE events SET claimed_until = 0 WHERE id = ?1 AND fanned_out = 0",
                params![id],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn mark_fanned_out(&self, id: &EventId) -> Result<(), PortError> {
        let id = id.to_string();
        self.with_conn(move |c| {
            exec(
                c,
                "UPDATE events SET fanned_out = 1 WHERE id = ?1",
                params![id],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn get(&self, id: &EventId) -> Result<Option<Event>, PortError> {
        let id = id.to_string();
        let now = unix_ms(time::OffsetDateTime::now_utc());
        let doc: Option<String> = self
            .with_conn(move |c| {
                query_row(
                    c,
                    "SELECT doc FROM events WHERE id = ?1 AND expires_at > ?2",
                    params![id, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        doc.map(|d| Event::from_stored(&d).map_err(PortError::Corrupt))
            .transpose()
    }
}

impl Database {
    /// Deletes logged events and attempts past their expiry (DynamoDB's TTL does this in AWS).
    pub async fn purge_expired(&self) -> Result<usize, PortError> {
        let now = unix_ms(time::OffsetDateTime::now_utc());
        self.with_conn(move |c| {
            let events = c
                .execute("DELETE FROM events WHERE expires_at <= ?1", params![now])
                .map_err(unavailable)?;
            let attempts = c
                .execute("DELETE FROM attempts WHERE expires_at <= ?1", params![now])
                .map_err(unavailable)?;
            Ok(events + attempts)
        })
        .await
    }
}

fn status_name(status: AttemptStatus) -> String {
    status.as_str().to_owned()
}

#[async_trait]
impl AttemptLog for Database {
    async fn record_many(
        &self,
        attempts: &[Attempt],
        expires_at: time::OffsetDateTime,
    ) -> Result<(), PortError> {
        let rows = attempts
            .iter()
            .map(|a| {
                let doc =
                    serde_json::to_string(a).map_err(|e| PortError::Corrupt(e.to_string()))?;
                Ok((
                    a.webhook_id.to_string(),
                    a.attempt_id.clone(),
                    status_name(a.status),
                    a.delivery_id.to_string(),
                    a.event_id.to_string(),
                    doc,
                ))
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        let expires = unix_ms(expires_at);
        self.with_conn(move |c| {
            let tx = c
                .savepoint()
                .map_err(unavailable)?;
            for (webhook, id, status, delivery, event, doc) in &rows {
                exec(
                    &tx,
                    "INSERT OR REPLACE INTO attempts (webhook_id, attempt_id, status, delivery_id, event_id, doc, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![webhook, id, status, delivery, event, doc, expires],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn record(
        &self,
        attempt: &Attempt,
        expires_at: time::OffsetDateTime,
    ) -> Result<(), PortError> {
        self.record_many(std::slice::from_ref(attempt), expires_at)
            .await
    }

    async fn last_attempt(
        &self,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> Result<Option<(EventId, u32)>, PortError> {
        let (webhook, delivery) = (webhook.to_string(), delivery.to_string());
        let found: Option<(String, u32)> = self
            .with_conn(move |c| {
                query_row(
                    c,
                    "SELECT event_id, json_extract(doc, '$.attempt') AS n FROM attempts
                     WHERE webhook_id = ?1 AND delivery_id = ?2 ORDER BY n DESC LIMIT 1",
                    params![webhook, delivery],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        found
            .map(|(id, n)| {
                EventId::parse(&id)
                    .map(|id| (id, n))
                    .map_err(PortError::Corrupt)
            })
            .transpose()
    }

    async fn list(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Attempt>, PortError> {
        let webhook = webhook.to_string();
        let status = status.map(status_name);
        // Attempt ids are ULIDs; "~" sorts after every one of them.
        let before = cursor
            .map(|c| c.0.clone())
            .unwrap_or_else(|| "~".to_owned());
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let now = unix_ms(time::OffsetDateTime::now_utc());
        let docs: Vec<String> = self
            .with_conn(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT doc FROM attempts WHERE webhook_id = ?1 AND attempt_id < ?2
                         AND (?3 IS NULL OR status = ?3) AND expires_at > ?4
                         ORDER BY attempt_id DESC LIMIT ?5",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![webhook, before, status, now, fetch], |r| r.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<String>, _>>()
                    .map_err(unavailable)
            })
            .await?;
        let items = docs
            .iter()
            .map(|d| {
                serde_json::from_str::<Attempt>(d).map_err(|e| PortError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |a| a.attempt_id.clone()))
    }

    async fn count(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
    ) -> Result<u64, PortError> {
        let webhook = webhook.to_string();
        let status = status.map(status_name);
        let now = unix_ms(time::OffsetDateTime::now_utc());
        let n: i64 = self
            .with_conn(move |c| {
                query_row(
                    c,
                    "SELECT COUNT(*) FROM attempts WHERE webhook_id = ?1
                     AND (?2 IS NULL OR status = ?2) AND expires_at > ?3",
                    params![webhook, status, now],
                    |r| r.get(0),
                )
                .map_err(unavailable)
            })
            .await?;
        u64::try_from(n).map_err(|e| PortError::Corrupt(e.to_string()))
    }
}

#[async_trait]
impl WebhookStore for Database {
    fn change_counter(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        Some(self.webhook_writes.clone())
    }

    async fn create(&self, webhook: &Webhook) -> Result<(), PortError> {
        let webhook = webhook.clone();
        let doc = to_document(&webhook)?;
        self.write_webhooks(move |c| {
            let tx = c.savepoint().map_err(unavailable)?;
            if stored_version(&tx, webhook.id.as_str())?.is_some() {
                return Err(PortError::AlreadyExists(webhook.id.to_string()));
            }
            write_webhook(
                &tx,
                "INSERT INTO webhooks (id, version, doc) VALUES (?1, ?2, ?3)",
                &webhook,
                &doc,
            )?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn get(&self, id: &WebhookId) -> Result<Option<Webhook>, PortError> {
        let id = id.clone();
        let row: Option<(String, Option<i64>, i64, Option<String>)> = self
            .with_conn(move |c| {
                query_row(
                    c,
                    "SELECT doc, failing_since, failures, last_failure FROM webhooks WHERE id = ?1",
                    params![id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        let Some((doc, since, failures, last_error)) = row else {
            return Ok(None);
        };
        let mut webhook = from_document(&doc)?;
        webhook.state.failures = failure_run(since, failures, last_error)?;
        Ok(Some(webhook))
    }

    async fn record_failure(
        &self,
        id: &WebhookId,
        at: time::OffsetDateTime,
        error: &str,
    ) -> Result<Option<FailureRun>, PortError> {
        let (id, error, at) = (id.to_string(), error.to_owned(), unix_ms(at));
        let row: Option<(Option<i64>, i64, Option<String>)> = self
            .write_webhooks(move |c| {
                query_row(
                    c,
                    "UPDATE webhooks SET failures = failures + 1,
                         failing_since = COALESCE(failing_since, ?2), last_failure = ?3
                     WHERE id = ?1 RETURNING failing_since, failures, last_failure",
                    params![id, at, error],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        match row {
            Some((since, failures, last_error)) => failure_run(since, failures, last_error),
            None => Ok(None),
        }
    }

    async fn clear_failures(&self, id: &WebhookId) -> Result<(), PortError> {
        let id = id.to_string();
        self.write_webhooks(move |c| {
            exec(
                c,
                "UPDATE webhooks SET failures = 0, failing_since = NULL, last_failure = NULL
                 WHERE id = ?1 AND failing_since IS NOT NULL",
                params![id],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn update(&self, webhook: &Webhook, expected_version: u64) -> Result<(), PortError> {
        let webhook = webhook.clone();
        let doc = to_document(&webhook)?;
        self.write_webhooks(move |c| {
            let tx = c.savepoint().map_err(unavailable)?;
            match stored_version(&tx, webhook.id.as_str())? {
                None => return Err(PortError::NotFound(webhook.id.to_string())),
                Some(v) if v != expected_version => {
                    return Err(PortError::VersionConflict {
                        expected: expected_version,
                    })
                }
                Some(_) => {}
            }
            write_webhook(
                &tx,
                "UPDATE webhooks SET version = ?2, doc = ?3 WHERE id = ?1",
                &webhook,
                &doc,
            )?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn delete(&self, id: &WebhookId, expected_version: u64) -> Result<(), PortError> {
        let id = id.clone();
        self.write_webhooks(move |c| {
            let tx = c.savepoint().map_err(unavailable)?;
            match stored_version(&tx, id.as_str())? {
                None => return Err(PortError::NotFound(id.to_string())),
                Some(v) if v != expected_version => {
                    return Err(PortError::VersionConflict {
                        expected: expected_version,
                    })
                }
                Some(_) => {}
            }
            bump_app_versions(&tx, id.as_str())?;
            exec(
                &tx,
                "DELETE FROM webhook_routes WHERE webhook_id = ?1",
                params![id.as_str()],
            )
            .map_err(unavailable)?;
            exec(
                &tx,
                "DELETE FROM webhooks WHERE id = ?1",
                params![id.as_str()],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn list_for_app(
        &self,
        app_id: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Webhook>, PortError> {
        let app_id = app_id.to_owned();
        let after = cursor.map(|c| c.0.clone()).unwrap_or_default();
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let docs: Vec<String> = self
            .with_conn(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT w.doc FROM webhook_routes r JOIN webhooks w ON w.id = r.webhook_id
                         WHERE r.app_id = ?1 AND r.webhook_id > ?2
                         ORDER BY r.webhook_id LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![app_id, after, fetch], |r| r.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<String>, _>>()
                    .map_err(unavailable)
            })
            .await?;
        let items = docs
            .iter()
            .map(|d| from_document(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |w| w.id.to_string()))
    }

    async fn routes_for_app(&self, app_id: &str) -> Result<Vec<Route>, PortError> {
        let app = app_id.to_owned();
        let docs: Vec<String> = self
            .with_conn(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT w.doc FROM webhook_routes r JOIN webhooks w ON w.id = r.webhook_id
                         WHERE r.app_id = ?1 ORDER BY r.webhook_id",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![app], |r| r.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<String>, _>>()
                    .map_err(unavailable)
            })
            .await?;
        let mut routes = Vec::with_capacity(docs.len());
        for doc in &docs {
            let webhook = from_document(doc)?;
            routes.extend(webhook.routes().into_iter().filter(|r| r.app_id == app_id));
        }
        Ok(routes)
    }

    async fn routes_version(&self, app_id: &str) -> Result<u64, PortError> {
        let app = app_id.to_owned();
        let version: Option<i64> = self
            .with_conn(move |c| {
                query_row(
                    c,
                    "SELECT version FROM app_versions WHERE app_id = ?1",
                    params![app],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        Ok(version.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    }
}

#[async_trait]
impl GrantStore for Database {
    async fn revoke(
        &self,
        sub: &str,
        app_id: &str,
        at: time::OffsetDateTime,
    ) -> Result<(), PortError> {
        let (sub, app, at) = (sub.to_owned(), app_id.to_owned(), unix_ms(at));
        self.with_conn(move |c| {
            exec(
                c,
                "INSERT OR IGNORE INTO revoked_grants (sub, app_id, since) VALUES (?1, ?2, ?3)",
                params![sub, app, at],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn restore(&self, sub: &str, app_id: &str) -> Result<(), PortError> {
        let (sub, app) = (sub.to_owned(), app_id.to_owned());
        self.with_conn(move |c| {
            exec(
                c,
                "DELETE FROM revoked_grants WHERE sub = ?1 AND app_id = ?2",
                params![sub, app],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
    }

    async fn revoked(&self, sub: &str) -> Result<Vec<RevokedGrant>, PortError> {
        let owner = sub.to_owned();
        let rows: Vec<(String, i64)> = self
            .with_conn(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT app_id, since FROM revoked_grants WHERE sub = ?1 ORDER BY app_id",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![owner], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
            })
            .await?;
        rows.into_iter()
            .map(|(app_id, since)| {
                Ok(RevokedGrant {
                    sub: sub.to_owned(),
                    app_id,
                    since: from_epoch_ms(since)?,
                })
            })
            .collect()
    }
}

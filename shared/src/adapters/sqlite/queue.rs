//! The embedded queue: SQS semantics on one SQLite table, so the consumers' code is the same
//! on both paths. A received message is hidden for its visibility timeout and comes back
//! with its receive count + 1 unless deleted; once received `max_receive_count` times, the
//! next receive moves it to the dead-letter queue instead (SQS redrive, applied lazily as
//! moto does). Every send is durable: a crash loses no sent message.
//!
//! A message is one row, inserted when sent and deleted when handled. Which message is
//! visible, hidden or heads its ordering group is kept in memory ([`Schedule`]), rebuilt from
//! the table on start, and again when another process (`hookline dlq replay`) writes to the
//! file. What only memory knows is lost in a crash and harmless to lose: hidden messages are
//! visible again after a restart (delivered at least once, as always), and a receive that
//! had not been written back is not counted. Receives of messages found in the table on
//! start are counted in it, so a message that crashes the process still reaches the DLQ.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::schedule::{Body, Picked, Schedule};
use super::{data_version, exec, query_row, queue_rows, unavailable, Database};
use crate::delivery::{DeliveryId, DeliveryMessage, ReceiptHandle, ReceivedMessage};
use crate::event::Event;
use crate::job::JobChunk;
use crate::ports::{Cursor, DeadLetters, DeliveryQueue, EventQueue, PortError};
use crate::retry::RetryPolicy;
use crate::webhook::WebhookId;

/// Queue names, as in `template.yaml` and `hookline-bootstrap` (after the prefix).
pub mod names {
    /// Intake.
    pub const EVENTS: &str = "events";
    /// Intake messages that could not be processed.
    pub const EVENTS_DLQ: &str = "events-dlq";
    /// One message per (event, webhook).
    pub const DELIVERIES: &str = "deliveries";
    /// Deliveries that exhausted their retries.
    pub const DELIVERIES_DLQ: &str = "deliveries-dlq";
}

/// The four embedded queues, with SQS's redrive to their DLQs.
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
    /// The four queues in `db`: events redrive after the retry policy's `maxReceiveCount`;
    /// the deliverer dead-letters deliveries by each webhook's policy, and their redrive is
    /// a backstop above any webhook's attempts.
    pub fn new(db: &Database, policy: &RetryPolicy) -> Self {
        let max = policy.max_receive_count();
        Self {
            events: SqliteQueue::new(db.clone(), names::EVENTS, Some((names::EVENTS_DLQ, max))),
            events_dlq: SqliteQueue::new(db.clone(), names::EVENTS_DLQ, None),
            deliveries: SqliteQueue::new(
                db.clone(),
                names::DELIVERIES,
                Some((
                    names::DELIVERIES_DLQ,
                    crate::rules::backstop_receive_count(policy),
                )),
            ),
            deliveries_dlq: SqliteQueue::new(db.clone(), names::DELIVERIES_DLQ, None),
        }
    }
}

/// One named queue in the database, with an optional redrive policy.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Database,
    name: String,
    redrive: Option<(String, u32)>,
    /// This queue's wake-up ([`Database::message_sent`]), looked up once.
    wakeup: Arc<tokio::sync::Notify>,
}

/// A message sitting in a queue, as `hookline dlq list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Message id.
    pub message_id: String,
    /// Body.
    pub body: String,
    /// Why it was dead-lettered, if it was.
    pub reason: Option<String>,
    /// Times received so far.
    pub receive_count: u32,
}

pub(super) fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Carries out what a receive picked, in one savepoint: rows moved to the DLQ, bodies read
/// (those not in memory), receive counts written back for recovered messages. Rows found
/// gone (deleted after the pick) are forgotten.
fn resolve(
    c: &mut rusqlite::Connection,
    schedule: &Mutex<Schedule>,
    queue: &str,
    redrive: Option<&(String, u32)>,
    picked: Vec<Picked>,
    now: i64,
    visibility_ms: i64,
) -> Result<Vec<ReceivedMessage>, PortError> {
    let tx = c.savepoint().map_err(unavailable)?;
    let mut out = Vec::with_capacity(picked.len());
    let mut missing = Vec::new();
    for pick in picked {
        match pick {
            Picked::Redrive { seq, receive_count } => {
                let Some((dlq, max_receive)) = redrive else {
                    continue;
                };
                exec(&tx,
                    "UPDATE queue_messages
                     SET queue = ?1, visible_at = ?3, receive_count = ?4, leased = 0,
                         reason = COALESCE(reason, 'received ' || ?4 || ' times without success (maxReceiveCount ' || ?5 || ')')
                     WHERE seq = ?2",
                    params![dlq, seq, now, receive_count, max_receive],
                )
                .map_err(unavailable)?;
            }
            Picked::Receive {
                seq,
                receive_count,
                receipt,
                persist_count,
                body,
            } => {
                let found: Option<(String, String)> = match body {
                    Some((id, body)) => Some((id.to_string(), body.to_string())),
                    None => query_row(
                        &tx,
                        "SELECT message_id, body FROM queue_messages WHERE seq = ?1 AND queue = ?2",
                        params![seq, queue],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(unavailable)?,
                };
                let Some((message_id, body)) = found else {
                    // Deleted after the schedule picked it (its delete had committed, its
                    // forget not yet run).
                    missing.push(seq);
                    continue;
                };
                if persist_count {
                    exec(&tx,
                        "UPDATE queue_messages SET receive_count = ?2, visible_at = ?3, leased = 1 WHERE seq = ?1",
                        params![seq, receive_count, now.saturating_add(visibility_ms)],
                    )
                    .map_err(unavailable)?;
                }
                out.push(ReceivedMessage {
                    message_id,
                    body,
                    receive_count,
                    receipt: ReceiptHandle(receipt),
                    replay_of: None,
                });
            }
        }
    }
    tx.commit().map_err(unavailable)?;
    let mut s = lock(schedule);
    for seq in missing {
        s.forget(queue, seq);
    }
    Ok(out)
}

/// Rebuilds the schedule from the table when another process wrote to the file since it was
/// last read, or when a failed write may have left it out of step.
fn resync(c: &rusqlite::Connection, schedule: &Mutex<Schedule>) -> Result<(), PortError> {
    let version = data_version(c).map_err(unavailable)?;
    let mut s = lock(schedule);
    s.checked(now_ms());
    if s.data_version_moved(version) || s.is_stale() {
        let rows = queue_rows(c).map_err(unavailable)?;
        tracing::info!(
            messages = rows.len(),
            "queue schedule rebuilt from the table"
        );
        s.rebuild(rows);
    }
    Ok(())
}

/// The schedule, even if a thread panicked holding it (its state is still consistent:
/// every change to it is a few in-memory steps that do not panic).
fn lock(schedule: &Mutex<Schedule>) -> MutexGuard<'_, Schedule> {
    schedule.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteQueue {
    /// The queue `name`; with `redrive = Some((dlq, max_receive_count))` it dead-letters.
    pub fn new(db: Database, name: &str, redrive: Option<(&str, u32)>) -> Self {
        Self {
            wakeup: db.message_sent(name),
            db,
            name: name.to_owned(),
            redrive: redrive.map(|(dlq, max)| (dlq.to_owned(), max)),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database the queue lives in.
    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    fn schedule(&self) -> &Arc<Mutex<Schedule>> {
        self.db.schedule()
    }

    /// A failed write may have left memory out of step with the table: rebuild it from the
    /// table before the next receive.
    pub(super) fn on_failure<T>(&self, result: Result<T, PortError>) -> Result<T, PortError> {
        if result.is_err() {
            lock(self.schedule()).mark_stale();
        }
        result
    }

    /// Sends one message, visible after `delay`; returns its id.
    pub async fn send(
        &self,
        body: &str,
        delay: Duration,
        reason: Option<&str>,
    ) -> Result<String, PortError> {
        self.send_many(&[body.to_owned()], delay, reason)
            .await
            .map(|mut ids| ids.remove(0))
    }

    /// Sends several messages in one transaction.
    pub async fn send_many(
        &self,
        bodies: &[String],
        delay: Duration,
        reason: Option<&str>,
    ) -> Result<Vec<String>, PortError> {
        let entries: Vec<(String, Option<String>)> =
            bodies.iter().map(|b| (b.clone(), None)).collect();
        self.send_grouped(&self.name, entries, delay, reason).await
    }

    /// Sends `(body, ordering group)` entries to queue `queue` in one transaction. Of a
    /// group, only the oldest message can be received, and not while it is in flight.
    async fn send_grouped(
        &self,
        queue: &str,
        bodies: Vec<(String, Option<String>)>,
        delay: Duration,
        reason: Option<&str>,
    ) -> Result<Vec<String>, PortError> {
        let queue_name = queue.to_owned();
        let reason = reason.map(str::to_owned);
        let now = now_ms();
        let visible_at = now.saturating_add(ms(delay));
        let sent = self
            .db
            .with_conn(move |c| {
                let tx = c.savepoint().map_err(unavailable)?;
                let sent =
                    insert_messages(&tx, &queue_name, bodies, reason.as_deref(), now, visible_at)?;
                tx.commit().map_err(unavailable)?;
                Ok(sent)
            })
            .await;
        let sent = self.on_failure(sent)?;
        Ok(self.scheduled(queue, visible_at, sent))
    }

    /// Puts messages [`insert_messages`] wrote (and their transaction committed) into the
    /// schedule of `queue`, and wakes one of its consumers; returns their ids.
    pub(super) fn scheduled(
        &self,
        queue: &str,
        visible_at: i64,
        sent: Vec<Inserted>,
    ) -> Vec<String> {
        let mut ids = Vec::with_capacity(sent.len());
        {
            let mut schedule = lock(self.schedule());
            for (seq, id, body, group) in sent {
                let kept: Body = (Arc::from(id.as_str()), Arc::from(body));
                schedule.sent_with_body(queue, seq, visible_at, group, Some(kept));
                ids.push(id);
            }
        }
        // One consumer wakes; if it finds a full batch it wakes the next ([`Self::receive`]).
        self.notify(queue);
        ids
    }

    /// Wakes one consumer of `queue` (this queue's wake-up without a lookup).
    fn notify(&self, queue: &str) {
        if queue == self.name {
            self.wakeup.notify_one();
        } else {
            self.db.message_sent(queue).notify_one();
        }
    }

    /// Receives up to `max` visible messages and hides them for `visibility`. Messages
    /// already received `max_receive_count` times move to the DLQ first.
    ///
    /// Messages whose bodies are in memory are received without the table: a busy queue
    /// costs its consumers no round trip to the database thread. The table is read when a
    /// body is not in memory, when nothing is visible, and at least every
    /// [`super::schedule::CHECK_EVERY_MS`] (to see other processes' writes).
    pub async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        let now = now_ms();
        let picked = {
            let mut s = lock(self.schedule());
            if s.needs_check(now) {
                None
            } else {
                Some(s.receive(&self.name, now, max, ms(visibility), self.redrive_policy()))
            }
        };
        let received = match picked {
            None => self.receive_from_table(max, visibility).await,
            // Memory knows every message of this process's sends, and other processes'
            // writes are looked for apart (`check_other_writers`): an empty answer is true.
            Some(picked) if picked.is_empty() => Ok(Vec::new()),
            Some(picked) => {
                let mut out = Vec::with_capacity(picked.len());
                let mut rest = Vec::new();
                for pick in picked {
                    match pick {
                        Picked::Receive {
                            receive_count,
                            receipt,
                            persist_count: false,
                            body: Some((id, body)),
                            ..
                        } => out.push(ReceivedMessage {
                            message_id: id.to_string(),
                            body: body.to_string(),
                            receive_count,
                            receipt: ReceiptHandle(receipt),
                            replay_of: None,
                        }),
                        other => rest.push(other),
                    }
                }
                if !rest.is_empty() {
                    let (queue, redrive, schedule) = (
                        self.name.clone(),
                        self.redrive.clone(),
                        self.schedule().clone(),
                    );
                    let more = self
                        .db
                        .with_conn(move |c| {
                            resolve(
                                c,
                                &schedule,
                                &queue,
                                redrive.as_ref(),
                                rest,
                                now,
                                ms(visibility),
                            )
                        })
                        .await;
                    out.extend(self.on_failure(more)?);
                }
                Ok(out)
            }
        };
        let received = received?;
        if !received.is_empty() {
            self.db.messages_taken().notify_waiters();
            if received.len() >= max {
                // There may be more: hand the wake-up on to another consumer.
                self.wakeup.notify_one();
            }
        }
        Ok(received)
    }

    fn redrive_policy(&self) -> Option<(&str, u32)> {
        self.redrive.as_ref().map(|(dlq, n)| (dlq.as_str(), *n))
    }

    /// A receive through the database thread: catch up with the table, pick, read bodies.
    async fn receive_from_table(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        let queue = self.name.clone();
        let redrive = self.redrive.clone();
        let schedule = self.schedule().clone();
        let received = self
            .db
            .with_conn(move |c| {
                resync(c, &schedule)?;
                let now = now_ms();
                let picked = lock(&schedule).receive(
                    &queue,
                    now,
                    max,
                    ms(visibility),
                    redrive.as_ref().map(|(dlq, n)| (dlq.as_str(), *n)),
                );
                if picked.is_empty() {
                    return Ok(Vec::new());
                }
                resolve(
                    c,
                    &schedule,
                    &queue,
                    redrive.as_ref(),
                    picked,
                    now,
                    ms(visibility),
                )
            })
            .await;
        self.on_failure(received)
    }

    /// The rows behind `receipts` that still hold their messages (stale ones are ignored,
    /// as in SQS).
    fn held(&self, receipts: &[ReceiptHandle]) -> Vec<i64> {
        let schedule = lock(self.schedule());
        receipts
            .iter()
            .filter_map(|r| schedule.holder(&self.name, &r.0))
            .collect()
    }

    /// Deletes a received message (a stale receipt is ignored, as in SQS).
    pub async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError> {
        self.delete_many(std::slice::from_ref(receipt)).await
    }

    /// Deletes received messages in one transaction (stale receipts are ignored, as in SQS).
    pub async fn delete_many(&self, receipts: &[ReceiptHandle]) -> Result<(), PortError> {
        let seqs = self.held(receipts);
        if seqs.is_empty() {
            return Ok(());
        }
        let rows = seqs.clone();
        let deleted = self
            .db
            .with_conn(move |c| {
                let tx = c.savepoint().map_err(unavailable)?;
                for seq in &rows {
                    exec(
                        &tx,
                        "DELETE FROM queue_messages WHERE seq = ?1",
                        params![seq],
                    )
                    .map_err(unavailable)?;
                }
                tx.commit().map_err(unavailable)
            })
            .await;
        self.on_failure(deleted)?;
        let mut promoted = false;
        {
            let mut schedule = lock(self.schedule());
            for seq in seqs {
                // Every seq is forgotten; any one may have made its group's next receivable.
                promoted |= schedule.forget(&self.name, seq);
            }
        }
        if promoted {
            self.wakeup.notify_one();
        }
        Ok(())
    }

    /// Hides a received message for `delay` from now; its receive count is written with it,
    /// so a retry's attempt number survives a restart.
    pub async fn change_visibility(
        &self,
        receipt: &ReceiptHandle,
        delay: Duration,
    ) -> Result<(), PortError> {
        let Some(seq) = self.held(std::slice::from_ref(receipt)).pop() else {
            return Ok(());
        };
        let count = lock(self.schedule())
            .receive_count(&self.name, seq)
            .unwrap_or(0);
        let visible_at = now_ms().saturating_add(ms(delay));
        let changed = self
            .db
            .with_conn(move |c| {
                exec(
                    c,
                    "UPDATE queue_messages SET visible_at = ?2, receive_count = ?3, leased = 0 WHERE seq = ?1",
                    params![seq, visible_at, count],
                )
                .map_err(unavailable)
                .map(|_| ())
            })
            .await;
        self.on_failure(changed)?;
        lock(self.schedule()).hide_until(&self.name, seq, visible_at);
        self.wakeup.notify_one();
        Ok(())
    }

    /// Every message in the queue, oldest first (visible or not).
    pub async fn list(&self, limit: usize) -> Result<Vec<StoredMessage>, PortError> {
        let queue = self.name.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .with_conn(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT message_id, body, reason, receive_count FROM queue_messages WHERE queue = ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![queue, limit], |r| {
                        Ok(StoredMessage { message_id: r.get(0)?, body: r.get(1)?, reason: r.get(2)?, receive_count: r.get(3)? })
                    })
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)
            })
            .await
    }

    /// Moves messages from this queue to `to` with the bodies given (`(message id, body)`), as
    /// new (receive count 0, visible now, no reason): a DLQ replay, in one transaction.
    /// Returns how many moved.
    pub async fn move_messages(
        &self,
        to: &SqliteQueue,
        messages: &[(String, String)],
    ) -> Result<usize, PortError> {
        let (from, to_name, messages) = (self.name.clone(), to.name.clone(), messages.to_vec());
        let now = now_ms();
        let moved = self
            .db
            .with_conn(move |c| {
                let tx = c.savepoint().map_err(unavailable)?;
                // The queue's rows by message id: one scan for the whole replay.
                let by_id: std::collections::HashMap<String, i64> = {
                    let mut stmt = tx
                        .prepare_cached("SELECT message_id, seq FROM queue_messages WHERE queue = ?1")
                        .map_err(unavailable)?;
                    let rows = stmt
                        .query_map(params![from], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(unavailable)?;
                    rows.collect::<Result<_, _>>().map_err(unavailable)?
                };
                let mut moved = Vec::new();
                for (id, body) in &messages {
                    let Some(seq) = by_id.get(id) else { continue };
                    let group: Option<Option<String>> = query_row(
                        &tx,
                        "UPDATE queue_messages SET queue = ?1, body = ?4, receive_count = 0, visible_at = ?2, reason = NULL, leased = 0,
                             group_id = CASE WHEN json_valid(?4) THEN json_extract(?4, '$.group') END
                         WHERE seq = ?3 RETURNING group_id",
                        params![to_name, now, seq, body],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(unavailable)?;
                    if let Some(group) = group {
                        moved.push((*seq, group));
                    }
                }
                tx.commit().map_err(unavailable)?;
                Ok(moved)
            })
            .await;
        let moved = self.on_failure(moved)?;
        lock(self.schedule()).moved(&self.name, &to.name, &moved, now);
        to.wakeup.notify_one();
        Ok(moved.len())
    }

    /// How many messages the queue holds (after catching up with other processes' writes).
    pub async fn len(&self) -> Result<usize, PortError> {
        let schedule = self.schedule().clone();
        self.db.with_conn(move |c| resync(c, &schedule)).await?;
        Ok(self.backlog())
    }

    /// How many messages the queue holds and when its oldest was sent (ms since the epoch),
    /// for the queue gauges: a memory read and at most one row read by key.
    pub async fn depth_and_oldest(&self) -> Result<(usize, Option<i64>), PortError> {
        let (len, oldest) = {
            let schedule = lock(self.schedule());
            (schedule.len(&self.name), schedule.oldest(&self.name))
        };
        let Some(seq) = oldest else {
            return Ok((len, None));
        };
        let sent_at = self
            .db
            .with_conn(move |c| {
                query_row(
                    c,
                    "SELECT sent_at FROM queue_messages WHERE seq = ?1",
                    [seq],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        Ok((len, sent_at))
    }

    /// How many messages the queue holds, as this process knows it (a memory read).
    pub fn backlog(&self) -> usize {
        lock(self.schedule()).len(&self.name)
    }

    /// How many of its messages were never received: work waiting for a first attempt, as
    /// this process knows it (a memory read, for intake's backpressure).
    pub fn unreceived(&self) -> usize {
        lock(self.schedule()).unreceived(&self.name)
    }

    /// When the queue's next message becomes receivable (ms since the epoch; at or before
    /// now when one is), `None` when it holds none: how long an idle consumer may sleep.
    pub fn next_due(&self) -> Option<i64> {
        lock(self.schedule()).next_due(&self.name)
    }

    /// The queue's wake-up ([`Database::message_sent`]).
    pub fn wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.wakeup.clone()
    }

    /// Woken whenever a consumer takes messages from any queue of this database.
    pub fn taken(&self) -> &tokio::sync::Notify {
        self.db.messages_taken()
    }

    /// True when the queue holds no message.
    pub async fn is_empty(&self) -> Result<bool, PortError> {
        self.len().await.map(|n| n == 0)
    }
}

#[async_trait]
impl EventQueue for SqliteQueue {
    async fn send_event(&self, event: &Event) -> Result<(), PortError> {
        let body = event
            .stored_doc()
            .map_err(|e| PortError::Corrupt(e.to_string()))?;
        self.send(&body, Duration::ZERO, None).await.map(|_| ())
    }

    async fn send_job_chunk(&self, chunk: &JobChunk, delay: Duration) -> Result<(), PortError> {
        self.send(&chunk.to_body(), delay, None).await.map(|_| ())
    }
}

#[async_trait]
impl DeliveryQueue for SqliteQueue {
    async fn send_deliveries(
        &self,
        messages: &[DeliveryMessage],
    ) -> Result<Vec<DeliveryId>, PortError> {
        let entries = messages
            .iter()
            .map(|m| Ok((body_of(m)?, m.group.clone())))
            .collect::<Result<Vec<_>, PortError>>()?;
        // One transaction: all or nothing, so nothing is "partly failed" here.
        self.send_grouped(&self.name, entries, Duration::ZERO, None)
            .await
            .map(|_| Vec::new())
    }

    async fn retry_later(
        &self,
        _delivery: &DeliveryMessage,
        receipt: &ReceiptHandle,
        delay: Duration,
    ) -> Result<(), PortError> {
        self.change_visibility(receipt, delay).await
    }

    async fn send_later(
        &self,
        delivery: &DeliveryMessage,
        delay: Duration,
    ) -> Result<(), PortError> {
        let entry = (body_of(delivery)?, delivery.group.clone());
        self.send_grouped(&self.name, vec![entry], delay, None)
            .await
            .map(|_| ())
    }

    async fn erase_app(
        &self,
        app_id: &str,
        webhooks: &[WebhookId],
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(u64, Option<Cursor>), PortError> {
        self.erase_app_messages(app_id, webhooks, cursor, limit)
            .await
    }

    async fn dead_letter(&self, delivery: &DeliveryMessage, reason: &str) -> Result<(), PortError> {
        let Some((dlq, _)) = &self.redrive else {
            return Err(PortError::Corrupt(format!(
                "queue {} has no dead-letter queue",
                self.name
            )));
        };
        self.send_grouped(
            dlq,
            vec![(body_of(delivery)?, None)],
            Duration::ZERO,
            Some(reason),
        )
        .await
        .map(|_| ())
    }
}

/// The App of a URN's text (`urn:<nid>:app:<appId>…`), if it names one.
fn app_of_urn(urn: &str) -> Option<&str> {
    let mut parts = urn.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("urn"), Some(_), Some("app"), Some(app)) => Some(app),
        _ => None,
    }
}

/// What a queued body says of itself for an App purge: the App of the event it is or
/// carries, the event it names, and the webhook it goes to.
fn purge_keys(body: &str) -> (Option<String>, Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return (None, None, None);
    };
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let urn = value
        .get("urn")
        .or_else(|| value.get("event").and_then(|e| e.get("urn")));
    let app = urn
        .and_then(|u| u.as_str())
        .and_then(app_of_urn)
        .map(str::to_owned);
    (
        app,
        text(value.get("eventId")),
        text(value.get("webhookId")),
    )
}

impl SqliteQueue {
    /// [`DeliveryQueue::erase_app`] over every queue of the store (one table holds them).
    async fn erase_app_messages(
        &self,
        app_id: &str,
        webhooks: &[WebhookId],
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(u64, Option<Cursor>), PortError> {
        let after: i64 = match cursor {
            Some(c) => {
                c.0.parse()
                    .map_err(|_| PortError::Corrupt(format!("queue cursor {}", c.0)))?
            }
            None => 0,
        };
        let app = app_id.to_owned();
        let webhooks: std::collections::HashSet<String> =
            webhooks.iter().map(ToString::to_string).collect();
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX);
        let erased = self
            .db
            .with_conn(move |c| {
                let walked: Vec<(i64, String, String)> = {
                    let mut stmt = c
                        .prepare_cached(
                            "SELECT seq, queue, body FROM queue_messages WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                        )
                        .map_err(unavailable)?;
                    let rows = stmt
                        .query_map(params![after, fetch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .map_err(unavailable)?;
                    rows.collect::<Result<_, _>>().map_err(unavailable)?
                };
                let mut erased = Vec::new();
                for (seq, queue, body) in &walked {
                    let (urn_app, event, webhook) = purge_keys(body);
                    let of_app = match (urn_app, event) {
                        (Some(a), _) => a == app,
                        // A delivery without its event: the event log says whose it is.
                        (None, Some(event)) => query_row(
                            c,
                            "SELECT app_id FROM events WHERE id = ?1",
                            params![event],
                            |r| r.get::<_, Option<String>>(0),
                        )
                        .optional()
                        .map_err(unavailable)?
                        .flatten()
                        .is_some_and(|a| a == app),
                        (None, None) => false,
                    };
                    if of_app || webhook.is_some_and(|w| webhooks.contains(&w)) {
                        exec(c, "DELETE FROM queue_messages WHERE seq = ?1", params![seq])
                            .map_err(unavailable)?;
                        erased.push((queue.clone(), *seq));
                    }
                }
                let next = (walked.len() >= limit)
                    .then(|| walked.last().map(|(seq, _, _)| Cursor(seq.to_string())))
                    .flatten();
                Ok((erased, next))
            })
            .await;
        let (erased, next) = self.on_failure(erased)?;
        let promoted: Vec<&String> = {
            let mut schedule = lock(self.schedule());
            erased
                .iter()
                .filter(|(queue, seq)| schedule.forget(queue, *seq))
                .map(|(queue, _)| queue)
                .collect()
        };
        for queue in promoted {
            self.notify(queue);
        }
        Ok((erased.len() as u64, next))
    }
}

/// A message as [`insert_messages`] wrote it: its row's seq, its id, body and group.
pub(super) type Inserted = (i64, String, String, Option<String>);

/// Inserts `(body, ordering group)` messages into `queue` on `c` (inside the caller's
/// transaction), sent at `now` and visible at `visible_at`. The schedule learns of them from
/// [`SqliteQueue::scheduled`] once the transaction committed.
pub(super) fn insert_messages(
    c: &rusqlite::Connection,
    queue: &str,
    bodies: Vec<(String, Option<String>)>,
    reason: Option<&str>,
    now: i64,
    visible_at: i64,
) -> Result<Vec<Inserted>, PortError> {
    let mut insert = c
        .prepare_cached(
            "INSERT INTO queue_messages (queue, message_id, body, reason, sent_at, visible_at, group_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(unavailable)?;
    let mut sent = Vec::with_capacity(bodies.len());
    for (body, group) in bodies {
        let id = ulid::Ulid::new().to_string();
        insert
            .execute(params![queue, id, body, reason, now, visible_at, group])
            .map_err(unavailable)?;
        sent.push((c.last_insert_rowid(), id, body, group));
    }
    Ok(sent)
}

/// The stored body of a delivery message.
pub(super) fn body_of(m: &DeliveryMessage) -> Result<String, PortError> {
    serde_json::to_string(m).map_err(|e| PortError::Corrupt(e.to_string()))
}

#[async_trait]
impl DeadLetters for SqliteQueue {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), PortError> {
        self.send(body, Duration::ZERO, Some(reason))
            .await
            .map(|_| ())
    }
}

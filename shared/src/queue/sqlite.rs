//! The embedded queue: SQS semantics on one SQLite table, so the consumers' code is the same
//! on both paths. A received message is hidden for its visibility timeout and comes back
//! with its receive count + 1 unless deleted; once received `max_receive_count` times, the
//! next receive moves it to the dead-letter queue instead (SQS redrive, applied lazily as
//! moto does). Everything is durable: a crash loses no sent message.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;

use crate::event::Event;
use crate::ports::{
    DeadLetters, DeliveryId, DeliveryMessage, DeliveryQueue, EventQueue, PortError, ReceiptHandle,
    ReceivedMessage,
};
use crate::store::sqlite::{exec, query_row, unavailable, Database};

/// One named queue in the database, with an optional redrive policy.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Database,
    name: String,
    redrive: Option<(String, u32)>,
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

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SqliteQueue {
    /// The queue `name`; with `redrive = Some((dlq, max_receive_count))` it dead-letters.
    pub fn new(db: Database, name: &str, redrive: Option<(&str, u32)>) -> Self {
        Self {
            db,
            name: name.to_owned(),
            redrive: redrive.map(|(dlq, max)| (dlq.to_owned(), max)),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
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
        let queue = queue.to_owned();
        let reason = reason.map(str::to_owned);
        let ids = self
            .db
            .with_conn(move |c| {
                let now = now_ms();
                let tx = c
                    .savepoint()
                    .map_err(unavailable)?;
                let mut ids = Vec::with_capacity(bodies.len());
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO queue_messages (queue, message_id, body, reason, sent_at, visible_at, group_id)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )
                        .map_err(unavailable)?;
                    for (body, group) in &bodies {
                        let id = ulid::Ulid::new().to_string();
                        insert
                            .execute(params![queue, id, body, reason, now, now + ms(delay), group])
                            .map_err(unavailable)?;
                        ids.push(id);
                    }
                }
                tx.commit().map_err(unavailable)?;
                Ok(ids)
            })
            .await?;
        self.db.message_sent().notify_waiters();
        Ok(ids)
    }

    /// Receives up to `max` visible messages and hides them for `visibility`. Messages
    /// already received `max_receive_count` times move to the DLQ first.
    pub async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        let queue = self.name.clone();
        let redrive = self.redrive.clone();
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.db
            .with_conn(move |c| {
                let now = now_ms();
                let tx = c
                    .savepoint()
                    .map_err(unavailable)?;
                if let Some((dlq, max_receive)) = &redrive {
                    exec(&tx,
                        "UPDATE queue_messages
                         SET queue = ?1, visible_at = ?3, receipt = NULL,
                             reason = COALESCE(reason, 'received ' || receive_count || ' times without success (maxReceiveCount ' || ?4 || ')')
                         WHERE queue = ?2 AND visible_at <= ?3 AND receive_count >= ?4",
                        params![dlq, queue, now, max_receive],
                    )
                    .map_err(unavailable)?;
                }
                let picked: Vec<(i64, String, String, u32)> = {
                    let mut select = tx
                        .prepare_cached(
                            "SELECT seq, message_id, body, receive_count FROM queue_messages q
                             WHERE queue = ?1 AND visible_at <= ?2
                               AND (group_id IS NULL OR seq = (SELECT MIN(seq) FROM queue_messages g
                                                               WHERE g.queue = ?1 AND g.group_id = q.group_id))
                             ORDER BY visible_at, seq LIMIT ?3",
                        )
                        .map_err(unavailable)?;
                    let rows = select
                        .query_map(params![queue, now, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                        .map_err(unavailable)?;
                    rows.collect::<Result<_, _>>().map_err(unavailable)?
                };
                let mut out = Vec::with_capacity(picked.len());
                {
                    let mut hide = tx
                        .prepare_cached(
                            "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3 WHERE seq = ?1",
                        )
                        .map_err(unavailable)?;
                    for (seq, message_id, body, count) in picked {
                        let receipt = format!("{message_id}:{}", ulid::Ulid::new());
                        hide.execute(params![seq, now + ms(visibility), receipt]).map_err(unavailable)?;
                        out.push(ReceivedMessage {
                            message_id,
                            body,
                            receive_count: count + 1,
                            receipt: ReceiptHandle(receipt),
                        });
                    }
                }
                tx.commit().map_err(unavailable)?;
                Ok(out)
            })
            .await
    }

    /// Deletes a received message (a stale receipt is ignored, as in SQS).
    pub async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError> {
        let receipt = receipt.0.clone();
        self.db
            .with_conn(move |c| {
                exec(
                    c,
                    "DELETE FROM queue_messages WHERE receipt = ?1",
                    params![receipt],
                )
                .map_err(unavailable)
                .map(|_| ())
            })
            .await
    }

    /// Deletes received messages in one transaction (stale receipts are ignored, as in SQS).
    pub async fn delete_many(&self, receipts: &[ReceiptHandle]) -> Result<(), PortError> {
        let receipts: Vec<String> = receipts.iter().map(|r| r.0.clone()).collect();
        self.db
            .with_conn(move |c| {
                let tx = c.savepoint().map_err(unavailable)?;
                for receipt in &receipts {
                    exec(
                        &tx,
                        "DELETE FROM queue_messages WHERE receipt = ?1",
                        params![receipt],
                    )
                    .map_err(unavailable)?;
                }
                tx.commit().map_err(unavailable)
            })
            .await
    }

    /// Hides a received message for `delay` from now.
    pub async fn change_visibility(
        &self,
        receipt: &ReceiptHandle,
        delay: Duration,
    ) -> Result<(), PortError> {
        let receipt = receipt.0.clone();
        self.db
            .with_conn(move |c| {
                exec(
                    c,
                    "UPDATE queue_messages SET visible_at = ?2 WHERE receipt = ?1",
                    params![receipt, now_ms() + ms(delay)],
                )
                .map_err(unavailable)
                .map(|_| ())
            })
            .await?;
        self.db.message_sent().notify_waiters();
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
        let moved = self
            .db
            .with_conn(move |c| {
                let tx = c
                    .savepoint()
                    .map_err(unavailable)?;
                let now = now_ms();
                let mut moved = 0;
                for (id, body) in &messages {
                    moved += tx
                        .execute(
                            "UPDATE queue_messages SET queue = ?1, body = ?5, receive_count = 0, visible_at = ?2, reason = NULL, receipt = NULL,
                                 group_id = CASE WHEN json_valid(?5) THEN json_extract(?5, '$.group') END
                             WHERE queue = ?3 AND message_id = ?4",
                            params![to_name, now, from, id, body],
                        )
                        .map_err(unavailable)?;
                }
                tx.commit().map_err(unavailable)?;
                Ok(moved)
            })
            .await?;
        self.db.message_sent().notify_waiters();
        Ok(moved)
    }

    /// How many messages the queue holds.
    pub async fn len(&self) -> Result<usize, PortError> {
        let queue = self.name.clone();
        self.db
            .with_conn(move |c| {
                query_row(
                    c,
                    "SELECT COUNT(*) FROM queue_messages WHERE queue = ?1",
                    params![queue],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(unavailable)
                .map(|n| usize::try_from(n).unwrap_or(0))
            })
            .await
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
            .delivery_body()
            .map_err(|e| PortError::Corrupt(e.to_string()))?;
        let body = String::from_utf8(body).map_err(|e| PortError::Corrupt(e.to_string()))?;
        self.send(&body, Duration::ZERO, None).await.map(|_| ())
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

fn body_of(m: &DeliveryMessage) -> Result<String, PortError> {
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

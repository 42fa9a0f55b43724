//! The attempt log, and the purge of expired events and attempts.

use super::*;

impl Database {
    /// Deletes up to `limit` logged events and up to `limit` attempts past their expiry, and
    /// up to `limit` jobs finished longer than [`crate::job::FINISHED_KEPT`] ago, in one short
    /// transaction (DynamoDB's TTL does this in AWS): the sweeper calls it until fewer than
    /// `limit` of each went, so a large backlog never holds the writer for long. Returns
    /// (events, attempts) deleted.
    pub async fn purge_expired(&self, limit: usize) -> Result<(usize, usize), PortError> {
        let now = unix_ms(time::OffsetDateTime::now_utc());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let kept_days = crate::job::FINISHED_KEPT.whole_days();
        self.with_conn(move |c| {
            c.execute(
                "DELETE FROM jobs WHERE rowid IN
                   (SELECT rowid FROM jobs WHERE active = 0
                      AND julianday(json_extract(doc, '$.finishedAt')) < julianday('now', ?1)
                    LIMIT ?2)",
                params![format!("-{kept_days} days"), limit],
            )
            .map_err(unavailable)?;
            let events = c
                .execute(
                    "DELETE FROM events WHERE rowid IN
                       (SELECT rowid FROM events WHERE expires_at <= ?1 LIMIT ?2)",
                    params![now, limit],
                )
                .map_err(unavailable)?;
            let attempts = c
                .execute(
                    "DELETE FROM attempts WHERE (webhook_id, attempt_id) IN
                       (SELECT webhook_id, attempt_id FROM attempts WHERE expires_at <= ?1 LIMIT ?2)",
                    params![now, limit],
                )
                .map_err(unavailable)?;
            Ok((events, attempts))
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
                    a.app_id.clone(),
                ))
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        let expires = unix_ms(expires_at);
        self.with_conn(move |c| {
            let tx = c
                .savepoint()
                .map_err(unavailable)?;
            for (webhook, id, status, delivery, event, doc, app) in &rows {
                exec(
                    &tx,
                    "INSERT OR REPLACE INTO attempts (webhook_id, attempt_id, status, delivery_id, event_id, doc, expires_at, app_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![webhook, id, status, delivery, event, doc, expires, app],
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

    async fn erase(
        &self,
        webhook: &WebhookId,
        app: Option<&str>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(u64, Option<Cursor>), PortError> {
        let (webhook, app) = (webhook.to_string(), app.map(str::to_owned));
        // Attempt ids are ULIDs; "" sorts before every one of them.
        let after = cursor.map(|c| c.0.clone()).unwrap_or_default();
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            let walked: Vec<(String, Option<String>)> = {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT attempt_id, app_id FROM attempts WHERE webhook_id = ?1 AND attempt_id > ?2
                         ORDER BY attempt_id LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![webhook, after, fetch], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)?
            };
            let mut erased = 0;
            for (id, of) in &walked {
                if app.is_none() || of.as_deref() == app.as_deref() {
                    erased += exec(
                        c,
                        "DELETE FROM attempts WHERE webhook_id = ?1 AND attempt_id = ?2",
                        params![webhook, id],
                    )
                    .map_err(unavailable)? as u64;
                }
            }
            let next = (walked.len() >= limit)
                .then(|| walked.last().map(|(id, _)| Cursor(id.clone())))
                .flatten();
            Ok((erased, next))
        })
        .await
    }
}

//! Webhooks and their per-App route rows, written in one transaction.

use super::*;

pub(super) fn write_routes(tx: &Connection, webhook: &Webhook) -> Result<(), PortError> {
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
/// after they change, so the Apps it leaves and the Apps it joins both move. A version
/// starts at the current time in ms, so one written after an App purge deleted its row
/// never equals a number a route cache kept from before.
fn bump_app_versions(tx: &Connection, webhook_id: &str) -> Result<(), PortError> {
    exec(
        tx,
        "INSERT INTO app_versions (app_id, version)
         SELECT app_id, ?2 FROM webhook_routes WHERE webhook_id = ?1
         ON CONFLICT (app_id) DO UPDATE SET version = version + 1",
        params![webhook_id, unix_ms(time::OffsetDateTime::now_utc())],
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

    async fn app_ids(&self) -> Result<Vec<String>, PortError> {
        self.with_conn(|c| {
            let mut stmt = c
                .prepare("SELECT DISTINCT app_id FROM webhook_routes ORDER BY app_id")
                .map_err(unavailable)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(unavailable)?;
            rows.collect::<Result<Vec<String>, _>>()
                .map_err(unavailable)
        })
        .await
    }

    async fn ids(&self) -> Result<Vec<WebhookId>, PortError> {
        let ids: Vec<String> = self
            .with_conn(|c| {
                let mut stmt = c
                    .prepare("SELECT id FROM webhooks ORDER BY id")
                    .map_err(unavailable)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(unavailable)?;
                rows.collect::<Result<Vec<String>, _>>()
                    .map_err(unavailable)
            })
            .await?;
        ids.into_iter()
            .map(|id| {
                WebhookId::parse(&id)
                    .ok_or_else(|| PortError::Corrupt(format!("stored webhook id {id}")))
            })
            .collect()
    }

    async fn forget_app(&self, app_id: &str) -> Result<(), PortError> {
        let app = app_id.to_owned();
        self.with_conn(move |c| {
            exec(
                c,
                "DELETE FROM app_versions WHERE app_id = ?1
                 AND NOT EXISTS (SELECT 1 FROM webhook_routes WHERE app_id = ?1)",
                params![app],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
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

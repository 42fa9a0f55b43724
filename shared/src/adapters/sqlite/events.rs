//! The event log: dedupe by event id, and the payload kept for redelivery.

use super::*;

#[async_trait]
impl EventLog for Database {
    async fn claim(
        &self,
        event: &Event,
        expires_at: time::OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<EventClaim, PortError> {
        let row = ClaimRow::of(event, expires_at, lease)?;
        self.with_conn(move |c| {
            let tx = c.savepoint().map_err(unavailable)?;
            let claim = row.claim(&tx)?;
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

    async fn erase(&self, ids: &[EventId]) -> Result<u64, PortError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        self.with_conn(move |c| {
            let mut erased = 0;
            for id in &ids {
                erased += exec(c, "DELETE FROM events WHERE id = ?1", params![id])
                    .map_err(unavailable)? as u64;
            }
            Ok(erased)
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

    async fn list_for_app(
        &self,
        app_id: &str,
        since: time::OffsetDateTime,
        until: time::OffsetDateTime,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, PortError> {
        let (after_ms, after_id) = match cursor {
            Some(c) => LoggedEvent::parse_position(&c.0).map(|(ms, id)| (ms, id.to_owned()))?,
            None => (unix_ms(since) - 1, String::from("~")),
        };
        let (app, until_ms, now) = (
            app_id.to_owned(),
            unix_ms(until),
            unix_ms(time::OffsetDateTime::now_utc()),
        );
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows: Vec<(String, i64)> = self
            .with_conn(move |c| {
                let mut statement = c
                    .prepare_cached(
                        "SELECT doc, received_at FROM events
                         WHERE app_id = ?1 AND (received_at > ?2 OR (received_at = ?2 AND id > ?3))
                           AND received_at < ?4 AND expires_at > ?5
                         ORDER BY received_at, id LIMIT ?6",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map(
                        params![app, after_ms, after_id, until_ms, now, fetch],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(unavailable)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unavailable);
                rows
            })
            .await?;
        let items = rows
            .into_iter()
            .map(|(doc, at)| {
                Ok(LoggedEvent {
                    event: Event::from_stored(&doc).map_err(PortError::Corrupt)?,
                    received_at: from_unix_ms(at).ok_or_else(|| {
                        PortError::Corrupt(format!("received_at {at} is not a time"))
                    })?,
                })
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        Ok(Page::from_overfetch(items, limit, LoggedEvent::position))
    }
}

/// An event's row as a claim writes it, prepared off the database thread.
pub(super) struct ClaimRow {
    id: String,
    app: String,
    doc: String,
    lease_ms: i64,
    expires: i64,
}

impl ClaimRow {
    /// The row of `event`, kept until `expires_at`, claimed for `lease`.
    pub(super) fn of(
        event: &Event,
        expires_at: time::OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<Self, PortError> {
        let doc = event
            .stored_doc()
            .map_err(|e| PortError::Corrupt(e.to_string()))?;
        Ok(Self {
            id: event.id.to_string(),
            app: event.urn.app_id().to_owned(),
            doc,
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2),
            expires: unix_ms(expires_at),
        })
    }

    /// Claims the event on `c` (inside the caller's transaction): records it unless its id
    /// is known, and says where it stands. An expired entry is as good as absent (TTL).
    pub(super) fn claim(&self, c: &Connection) -> Result<EventClaim, PortError> {
        let now = unix_ms(time::OffsetDateTime::now_utc());
        let until = now.saturating_add(self.lease_ms);
        let found: Option<(bool, i64, i64)> = query_row(
            c,
            "SELECT fanned_out, expires_at, claimed_until FROM events WHERE id = ?1",
            params![self.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(unavailable)?;
        Ok(match found {
            Some((true, exp, _)) if exp > now => EventClaim::Done,
            Some((false, exp, claimed)) if exp > now && claimed > now => EventClaim::InProgress,
            Some((false, exp, _)) if exp > now => {
                exec(
                    c,
                    "UPDATE events SET claimed_until = ?2 WHERE id = ?1",
                    params![self.id, until],
                )
                .map_err(unavailable)?;
                EventClaim::Unfinished
            }
            _ => {
                exec(
                    c,
                    "INSERT OR REPLACE INTO events (id, doc, fanned_out, claimed_until, received_at, expires_at, app_id)
                     VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
                    params![self.id, self.doc, until, now, self.expires, self.app],
                )
                .map_err(unavailable)?;
                EventClaim::New
            }
        })
    }

    /// Marks the claimed event fanned out on `c`.
    pub(super) fn mark_fanned_out(&self, c: &Connection) -> Result<(), PortError> {
        exec(
            c,
            "UPDATE events SET fanned_out = 1 WHERE id = ?1",
            params![self.id],
        )
        .map_err(unavailable)
        .map(|_| ())
    }
}

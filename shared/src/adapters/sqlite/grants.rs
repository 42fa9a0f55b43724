//! Revoked grants.

use super::*;

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

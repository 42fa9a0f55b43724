//! Background jobs: one row each, its document beside the columns the store decides on
//! (`active` under a partial unique index: one unfinished job per lock key, a webhook's id
//! or `app:<id>`).

use super::*;
use crate::job::{Job, JobId, JobLock};
use crate::ports::JobStore;

fn to_doc(job: &Job) -> Result<String, PortError> {
    serde_json::to_string(job).map_err(|e| PortError::Corrupt(e.to_string()))
}

fn from_doc(doc: &str) -> Result<Job, PortError> {
    serde_json::from_str(doc).map_err(|e| PortError::Corrupt(format!("job: {e}")))
}

fn active_job(c: &Connection, lock: &str) -> Result<Option<String>, PortError> {
    c.query_row(
        "SELECT id FROM jobs WHERE lock_key = ?1 AND active = 1",
        params![lock],
        |r| r.get(0),
    )
    .optional()
    .map_err(unavailable)
}

#[async_trait]
impl JobStore for Database {
    async fn create(&self, job: &Job) -> Result<(), PortError> {
        let doc = to_doc(job)?;
        let (id, webhook, version, active) = (
            job.id.to_string(),
            job.lock().key(),
            i64::try_from(job.version).unwrap_or(i64::MAX),
            i64::from(!job.state.is_final()),
        );
        self.with_conn(move |c| {
            let tx = c.savepoint().map_err(unavailable)?;
            if active == 1 {
                if let Some(other) = active_job(&tx, &webhook)? {
                    return Err(PortError::AlreadyExists(other));
                }
            }
            exec(
                &tx,
                "INSERT INTO jobs (id, lock_key, active, version, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, webhook, active, version, doc],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, PortError> {
        let id = id.to_string();
        let doc: Option<String> = self
            .with_conn(move |c| {
                c.query_row("SELECT doc FROM jobs WHERE id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(unavailable)
            })
            .await?;
        doc.as_deref().map(from_doc).transpose()
    }

    async fn update(&self, job: &Job, expected_version: u64) -> Result<(), PortError> {
        let doc = to_doc(job)?;
        let (id, version, active, expected) = (
            job.id.to_string(),
            i64::try_from(job.version).unwrap_or(i64::MAX),
            i64::from(!job.state.is_final()),
            i64::try_from(expected_version).unwrap_or(i64::MAX),
        );
        self.with_conn(move |c| {
            let changed = exec(
                c,
                "UPDATE jobs SET active = ?2, version = ?3, doc = ?4 WHERE id = ?1 AND version = ?5",
                params![id, active, version, doc, expected],
            )
            .map_err(unavailable)?;
            if changed == 1 {
                return Ok(());
            }
            let exists: Option<i64> = c
                .query_row("SELECT 1 FROM jobs WHERE id = ?1", params![id], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            Err(match exists {
                None => PortError::NotFound(id),
                Some(_) => PortError::VersionConflict {
                    expected: expected_version,
                },
            })
        })
        .await
    }

    async fn active_for(&self, lock: &JobLock) -> Result<Option<JobId>, PortError> {
        let key = lock.key();
        let id = self.with_conn(move |c| active_job(c, &key)).await?;
        id.map(|id| JobId::parse(&id).map_err(PortError::Corrupt))
            .transpose()
    }
}

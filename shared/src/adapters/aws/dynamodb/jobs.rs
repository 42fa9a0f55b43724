//! Background jobs: `PK=JOB#<id> SK=META` (the document, its version), and while a job is
//! unfinished a lock item `PK=WH#<webhookId> SK=JOB` (an App purge: `PK=APP#<appId>`) naming
//! it, written and removed in the same transaction as the job, so a webhook (an App) has at
//! most one unfinished job.

use super::*;
use crate::job::{Job, JobId, JobLock, FINISHED_KEPT};
use crate::ports::JobStore;

/// Sort key of a webhook's unfinished-job lock, beside its `META` item.
const JOB_LOCK: &str = "JOB";

/// The job store on one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
}

fn job_pk(id: &JobId) -> String {
    format!("JOB#{id}")
}

/// The partition of a lock's item.
fn lock_pk(lock: &JobLock) -> String {
    match lock {
        JobLock::Webhook(id) => webhook_pk(id.as_str()),
        JobLock::App(app) => app_pk(app),
    }
}

impl DynamoJobStore {
    /// The store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn put(&self, job: &Job) -> Result<PutBuilder, PortError> {
        let doc = serde_json::to_string(job).map_err(|e| PortError::Corrupt(e.to_string()))?;
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("PK", s(job_pk(&job.id)))
            .item("SK", s(META))
            .item("version", AttributeValue::N(job.version.to_string()))
            .item("doc", s(doc));
        if let Some(finished) = job.finished_at {
            put = put.item(
                "ttl",
                AttributeValue::N((finished + FINISHED_KEPT).unix_timestamp().to_string()),
            );
        }
        Ok(put)
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &Job) -> Result<(), PortError> {
        let put = self
            .put(job)?
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if !job.state.is_final() {
            let lock = Put::builder()
                .table_name(&self.table)
                .item("PK", s(lock_pk(&job.lock())))
                .item("SK", s(JOB_LOCK))
                .item("job", s(job.id.to_string()))
                .condition_expression("attribute_not_exists(PK)")
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().put(lock).build());
        }
        if transact(&self.client, items).await? {
            return Ok(());
        }
        match self.active_for(&job.lock()).await? {
            Some(other) => Err(PortError::AlreadyExists(other.to_string())),
            None => Err(PortError::AlreadyExists(job.id.to_string())),
        }
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(job_pk(id)))
            .key("SK", s(META))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        serde_json::from_str(doc_of(&item)?)
            .map(Some)
            .map_err(|e| PortError::Corrupt(format!("job {id}: {e}")))
    }

    async fn update(&self, job: &Job, expected_version: u64) -> Result<(), PortError> {
        let put = self
            .put(job)?
            .condition_expression("version = :expected")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .build()
            .map_err(build_err)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if job.state.is_final() {
            // Frees the webhook for its next job (the lock names this one, or is gone).
            let unlock = Delete::builder()
                .table_name(&self.table)
                .key("PK", s(lock_pk(&job.lock())))
                .key("SK", s(JOB_LOCK))
                .condition_expression("attribute_not_exists(PK) OR job = :job")
                .expression_attribute_values(":job", s(job.id.to_string()))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().delete(unlock).build());
        }
        if transact(&self.client, items).await? {
            return Ok(());
        }
        match self.get(&job.id).await? {
            None => Err(PortError::NotFound(job.id.to_string())),
            Some(_) => Err(PortError::VersionConflict {
                expected: expected_version,
            }),
        }
    }

    async fn active_for(&self, lock: &JobLock) -> Result<Option<JobId>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(lock_pk(lock)))
            .key("SK", s(JOB_LOCK))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item.as_ref().and_then(|i| i.get("job")) {
            Some(AttributeValue::S(id)) => JobId::parse(id).map(Some).map_err(PortError::Corrupt),
            Some(_) => Err(PortError::Corrupt(format!("job lock of {lock}"))),
            None => Ok(None),
        }
    }
}

//! Recover a webhook's failed deliveries in bulk (`POST /v1/webhooks/{id}/recover`), send it
//! past events (`POST /v1/webhooks/{id}/backfill`) and purge an App's data
//! (`DELETE /v1/apps/{appId}`), each as a background job, and the jobs themselves
//! (`GET /v1/jobs/{id}`, `POST .../cancel`).

use hookline_core::auth::{Action, Principal};
use hookline_core::job::{window, Job, JobId, JobKind, JobState};
use hookline_core::jobs::{JobError, Jobs};
use hookline_core::timestamp::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ServiceError;
use crate::service::WebhookService;

/// Body of `POST /v1/webhooks/{id}/recover` and `.../backfill`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowInput {
    /// The window's start (RFC 3339): not in the future, not before the retention horizon.
    #[schema(format = DateTime)]
    pub since: String,
    /// The window's end (RFC 3339; default: now): not before `since`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Only count what would be sent; start nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a recover matched, and the job sending it (none for a dry run or when nothing
/// matched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Deliveries whose last attempt failed for good inside the window.
    pub matched: u64,
    /// The job redelivering them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub job_id: Option<JobId>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// The job.
    #[schema(value_type = String)]
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// The webhook it works on (recover, backfill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The App it works on (purge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Where it stands.
    pub state: JobState,
    /// Items handled so far.
    pub done: u64,
    /// Items it matched when it started (a purge: what it has found so far; it grows).
    pub total: u64,
    /// The window's start.
    #[schema(format = DateTime)]
    pub since: String,
    /// The window's end.
    #[schema(format = DateTime)]
    pub until: String,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its first chunk ran.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// When it ended.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a purge deleted and changed so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge: Option<PurgeView>,
}

/// What a purge deleted and changed so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeView {
    /// Webhooks deleted (they named only the App).
    pub deleted_webhooks: Vec<String>,
    /// Webhooks that lost the App's URNs and keep working for their other Apps.
    pub changed_webhooks: Vec<String>,
    /// Events deleted.
    pub events: u64,
    /// Attempts deleted.
    pub attempts: u64,
    /// Queued messages deleted (embedded store; on SQS deliverers drop them instead).
    pub messages: u64,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id.clone(),
            kind: job.kind,
            webhook_id: job.webhook_id.as_ref().map(ToString::to_string),
            app_id: job.app_id.clone(),
            state: job.state,
            done: job.done,
            total: job.total,
            since: rfc3339(job.since),
            until: rfc3339(job.until),
            created_at: rfc3339(job.created_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            error: job.error.clone(),
            purge: job.purge.as_ref().map(|p| PurgeView {
                deleted_webhooks: p.deleted.iter().map(ToString::to_string).collect(),
                changed_webhooks: p.stripped.iter().map(ToString::to_string).collect(),
                events: p.events,
                attempts: p.attempts,
                messages: p.messages,
            }),
        }
    }
}

/// Recover and jobs, over the webhook service (who may touch which webhook) and the jobs.
#[derive(Clone)]
pub struct RecoveryService {
    webhooks: WebhookService,
    jobs: Jobs,
}

impl RecoveryService {
    /// The service over `webhooks` and `jobs`.
    pub fn new(webhooks: WebhookService, jobs: Jobs) -> Self {
        Self { webhooks, jobs }
    }

    /// Counts the deliveries of the webhook whose last attempt failed for good in the window
    /// and, unless it is a dry run or nothing matched, starts a job redelivering them.
    pub async fn recover(
        &self,
        principal: &Principal,
        webhook_id: &str,
        input: &WindowInput,
    ) -> Result<Recovery, ServiceError> {
        self.start(principal, webhook_id, input, JobKind::Recover)
            .await
    }

    /// Counts the logged events of the window the webhook would have been sent (from the
    /// Apps the caller may edit and whose grant to the webhook's owner stands) and, unless it
    /// is a dry run or nothing matched, starts a job sending them, marked as backfill.
    pub async fn backfill(
        &self,
        principal: &Principal,
        webhook_id: &str,
        input: &WindowInput,
    ) -> Result<Recovery, ServiceError> {
        self.start(principal, webhook_id, input, JobKind::Backfill)
            .await
    }

    async fn start(
        &self,
        principal: &Principal,
        webhook_id: &str,
        input: &WindowInput,
        kind: JobKind,
    ) -> Result<Recovery, ServiceError> {
        let webhook = self.webhooks.load_visible(principal, webhook_id).await?;
        let (since, until) = window(
            &input.since,
            input.until.as_deref(),
            OffsetDateTime::now_utc(),
            self.webhooks.settings().retention,
        )
        .map_err(ServiceError::Invalid)?;
        let started = match kind {
            JobKind::Recover => {
                self.jobs
                    .recover(&webhook, since, until, input.dry_run, &principal.sub)
                    .await
            }
            JobKind::Backfill => {
                let apps = webhook
                    .spec
                    .app_ids()
                    .into_iter()
                    .filter(|app| {
                        principal.may(Action::EditApp, app) && webhook.suspended_for(app).is_none()
                    })
                    .map(str::to_owned)
                    .collect();
                self.jobs
                    .backfill(&webhook, apps, since, until, input.dry_run, &principal.sub)
                    .await
            }
            JobKind::Purge => {
                return Err(ServiceError::BadRequest(
                    "a purge is started with DELETE /v1/apps/{appId}".into(),
                ))
            }
        }
        .map_err(job_error)?;
        Ok(Recovery {
            matched: started.matched,
            job_id: started.job.map(|j| j.id),
        })
    }

    /// Starts purging App `app_id` (needs `manage-apps` on it), or answers the purge of it
    /// under way; the bool says whether this call started it.
    pub async fn purge_app(
        &self,
        principal: &Principal,
        app_id: &str,
    ) -> Result<(Job, bool), ServiceError> {
        self.webhooks.check_app_id(app_id)?;
        if !principal.may(Action::ManageApps, app_id) {
            return Err(ServiceError::Forbidden(format!(
                "purging App {app_id} needs manage-apps on it (the platform's permission)"
            )));
        }
        let (job, started) = self
            .jobs
            .purge(app_id, &principal.sub)
            .await
            .map_err(job_error)?;
        if started {
            tracing::info!(app_id, job_id = %job.id, sub = %principal.sub, "App purge started");
        }
        Ok((job, started))
    }

    /// A job the caller may see: one it started, one on a webhook it may manage, or a purge
    /// of an App it may purge.
    pub async fn job(&self, principal: &Principal, id: &str) -> Result<Job, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("job {id}"));
        let id = JobId::parse(id).map_err(|_| not_found())?;
        let job = self.jobs.get(&id).await?.ok_or_else(not_found)?;
        if job.created_by == principal.sub {
            return Ok(job);
        }
        match (&job.webhook_id, &job.app_id) {
            (Some(webhook), _) => match self
                .webhooks
                .load_visible(principal, webhook.as_str())
                .await
            {
                Ok(_) => Ok(job),
                Err(ServiceError::NotFound(_)) => Err(not_found()),
                Err(e) => Err(e),
            },
            (None, Some(app)) if principal.may(Action::ManageApps, app) => Ok(job),
            _ => Err(not_found()),
        }
    }

    /// Cancels an unfinished job the caller may see; 409 when it has ended.
    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<Job, ServiceError> {
        let job = self.job(principal, id).await?;
        self.jobs.cancel(&job.id).await.map_err(job_error)
    }
}

fn job_error(e: JobError) -> ServiceError {
    match e {
        JobError::Busy { .. } | JobError::Ended(..) | JobError::Disabled(..) => {
            ServiceError::Conflict(e.to_string())
        }
        JobError::NotFound(id) => ServiceError::NotFound(format!("job {id}")),
        JobError::Port(p) => ServiceError::Store(p),
    }
}
